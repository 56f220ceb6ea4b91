"""Products, categories and the audit trail (data_loads, products_history).

The two high-volume tables have no foreign keys (see rakuten_assets/db/schema.py): a CHECK
keeps labels within the 27 codes.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

AutoId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

# The 27 codes as of this migration; later renames belong in a new migration.
CATEGORIES = [
    (10, "Livres d'occasion", "Used books"),
    (40, "Jeux vidéo", "Video games"),
    (50, "Accessoires de jeux vidéo", "Video game accessories"),
    (60, "Consoles de jeux", "Game consoles"),
    (1140, "Figurines et objets pop culture", "Figurines and pop-culture collectibles"),
    (1160, "Cartes à collectionner", "Trading cards"),
    (1180, "Figurines de jeux de rôle et wargames", "Role-play and wargame miniatures"),
    (1280, "Jouets pour enfants", "Children's toys"),
    (1281, "Jeux de société", "Board games"),
    (1300, "Modélisme, radiocommande et drones", "RC models and drones"),
    (1301, "Chaussettes et accessoires bébé", "Baby socks and accessories"),
    (1302, "Jeux d'extérieur", "Outdoor games"),
    (1320, "Puériculture", "Childcare"),
    (1560, "Mobilier", "Furniture"),
    (1920, "Linge de maison", "Household linen"),
    (1940, "Épicerie", "Food and drink"),
    (2060, "Décoration", "Home decoration"),
    (2220, "Animalerie", "Pet supplies"),
    (2280, "Magazines et revues", "Magazines"),
    (2403, "Livres, BD et mangas", "Books, comics and manga"),
    (2462, "Lots consoles et jeux vidéo", "Console and game bundles"),
    (2522, "Papeterie", "Stationery"),
    (2582, "Mobilier de jardin", "Garden furniture"),
    (2583, "Piscine et spa", "Pool and spa equipment"),
    (2585, "Outillage et jardinage", "Tools and gardening"),
    (2705, "Livres neufs", "New books"),
    (2905, "Jeux PC en téléchargement", "PC download games"),
]


def upgrade() -> None:
    categories = op.create_table(
        "categories",
        sa.Column("prdtypecode", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("name_fr", sa.String(120), nullable=False),
        sa.Column("name_en", sa.String(120), nullable=False),
    )
    op.bulk_insert(
        categories,
        [{"prdtypecode": c, "name_fr": fr, "name_en": en} for c, fr, en in CATEGORIES],
    )

    op.create_table(
        "data_loads",
        sa.Column("id", AutoId, primary_key=True, autoincrement=True),
        sa.Column("batch_name", sa.String(32), nullable=False),
        sa.Column("partition_key", sa.String(8), nullable=False),
        sa.Column("percentage", sa.Integer(), nullable=False),
        sa.Column("rows_added", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("rows_updated", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("rows_deleted", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("rows_unchanged", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("total_rows", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("source_hashes", sa.JSON(), nullable=False),
        sa.Column("dagster_run_id", sa.String(64), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.CheckConstraint("status IN ('running', 'completed')", name="ck_data_loads_status"),
    )
    op.create_index("ix_data_loads_partition_key", "data_loads", ["partition_key"])

    op.create_table(
        "products",
        sa.Column("productid", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("imageid", sa.BigInteger(), nullable=False),
        sa.Column("designation", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("prdtypecode", sa.Integer(), nullable=False),
        sa.Column("partition_key", sa.String(8), nullable=False),
        sa.Column("source_row", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("load_id", AutoId, nullable=False),
        sa.CheckConstraint(
            f"prdtypecode IN ({', '.join(str(code) for code, _, _ in CATEGORIES)})",
            name="ck_products_label",
        ),
    )
    op.create_index("ix_products_partition_key", "products", ["partition_key"])
    op.create_index("ix_products_load_id", "products", ["load_id"])

    op.create_table(
        "products_history",
        sa.Column("id", AutoId, primary_key=True, autoincrement=True),
        sa.Column("operation", sa.String(6), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("load_id", AutoId, nullable=False),
        sa.Column("productid", sa.BigInteger(), nullable=False),
        sa.Column("partition_key", sa.String(8), nullable=False),
        sa.Column("source_row", sa.Integer(), nullable=False),
        sa.Column("old_imageid", sa.BigInteger(), nullable=True),
        sa.Column("old_designation", sa.Text(), nullable=True),
        sa.Column("old_description", sa.Text(), nullable=True),
        sa.Column("old_prdtypecode", sa.Integer(), nullable=True),
        sa.Column("new_imageid", sa.BigInteger(), nullable=True),
        sa.Column("new_designation", sa.Text(), nullable=True),
        sa.Column("new_description", sa.Text(), nullable=True),
        sa.Column("new_prdtypecode", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "operation IN ('INSERT', 'UPDATE', 'DELETE')", name="ck_products_history_operation"
        ),
    )
    op.create_index(
        "ix_products_history_productid_id", "products_history", ["productid", "id"]
    )


def downgrade() -> None:
    op.drop_table("products_history")
    op.drop_table("products")
    op.drop_table("data_loads")
    op.drop_table("categories")
