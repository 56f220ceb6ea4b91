"""Reverted loads: a load undone because a blocking check of `products` failed after it.

- `data_loads.status` may be `reverted`; `status_reason` says why, `reverted_at` when.
- `products_history.reverts_id`: on the rows a revert writes, the id of the row it undoes.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Batch mode: SQLite cannot alter a CHECK constraint in place (the table is copied; it
    # holds one row per load). PostgreSQL runs plain ALTER TABLE statements.
    with op.batch_alter_table("data_loads") as batch:
        batch.drop_constraint("ck_data_loads_status", type_="check")
        batch.add_column(sa.Column("status_reason", sa.Text(), nullable=True))
        batch.add_column(sa.Column("reverted_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_check_constraint(
            "ck_data_loads_status", "status IN ('running', 'completed', 'reverted')"
        )
    # A nullable column without a default: no rewrite of the (large) history table.
    op.add_column("products_history", sa.Column("reverts_id", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    connection = op.get_bind()
    reverted = connection.execute(
        sa.text("SELECT count(*) FROM data_loads WHERE status = 'reverted'")
    ).scalar_one()
    if reverted:
        raise RuntimeError(
            f"cannot downgrade below 0005: {reverted} load(s) are 'reverted', a status the "
            "earlier schema cannot represent (they would count as completed)"
        )
    op.drop_column("products_history", "reverts_id")
    with op.batch_alter_table("data_loads") as batch:
        batch.drop_constraint("ck_data_loads_status", type_="check")
        batch.drop_column("reverted_at")
        batch.drop_column("status_reason")
        batch.create_check_constraint("ck_data_loads_status", "status IN ('running', 'completed')")
