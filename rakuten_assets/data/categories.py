"""The 27 product-type codes of the Rakuten France challenge, with French and English names.

This is the single source of the category names shown anywhere (CLI, metadata, API answers);
the `categories` table in the database is seeded from it by a migration.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Category:
    code: int
    name_fr: str
    name_en: str


CATEGORIES: tuple[Category, ...] = (
    Category(10, "Livres d'occasion", "Used books"),
    Category(40, "Jeux vidéo", "Video games"),
    Category(50, "Accessoires de jeux vidéo", "Video game accessories"),
    Category(60, "Consoles de jeux", "Game consoles"),
    Category(1140, "Figurines et objets pop culture", "Figurines and pop-culture collectibles"),
    Category(1160, "Cartes à collectionner", "Trading cards"),
    Category(1180, "Figurines de jeux de rôle et wargames", "Role-play and wargame miniatures"),
    Category(1280, "Jouets pour enfants", "Children's toys"),
    Category(1281, "Jeux de société", "Board games"),
    Category(1300, "Modélisme, radiocommande et drones", "RC models and drones"),
    Category(1301, "Chaussettes et accessoires bébé", "Baby socks and accessories"),
    Category(1302, "Jeux d'extérieur", "Outdoor games"),
    Category(1320, "Puériculture", "Childcare"),
    Category(1560, "Mobilier", "Furniture"),
    Category(1920, "Linge de maison", "Household linen"),
    Category(1940, "Épicerie", "Food and drink"),
    Category(2060, "Décoration", "Home decoration"),
    Category(2220, "Animalerie", "Pet supplies"),
    Category(2280, "Magazines et revues", "Magazines"),
    Category(2403, "Livres, BD et mangas", "Books, comics and manga"),
    Category(2462, "Lots consoles et jeux vidéo", "Console and game bundles"),
    Category(2522, "Papeterie", "Stationery"),
    Category(2582, "Mobilier de jardin", "Garden furniture"),
    Category(2583, "Piscine et spa", "Pool and spa equipment"),
    Category(2585, "Outillage et jardinage", "Tools and gardening"),
    Category(2705, "Livres neufs", "New books"),
    Category(2905, "Jeux PC en téléchargement", "PC download games"),
)

CATEGORY_BY_CODE: dict[int, Category] = {c.code: c for c in CATEGORIES}
CODES: tuple[int, ...] = tuple(c.code for c in CATEGORIES)

# Row counts per class in the real training set (84,916 rows), largest first.
REAL_CLASS_COUNTS: dict[int, int] = {
    2583: 10209,
    1560: 5073,
    1300: 5045,
    2060: 4993,
    2522: 4989,
    1280: 4870,
    2403: 4774,
    2280: 4760,
    1920: 4303,
    1160: 3953,
    1320: 3241,
    10: 3116,
    2705: 2761,
    1140: 2671,
    2582: 2589,
    40: 2508,
    2585: 2496,
    1302: 2491,
    1281: 2070,
    50: 1681,
    2462: 1421,
    2905: 872,
    60: 832,
    2220: 824,
    1301: 807,
    1940: 803,
    1180: 764,
}
REAL_TRAIN_ROWS = 84_916
REAL_TEST_ROWS = 13_812


def category_name(code: int, lang: str = "fr") -> str:
    """Name of a product-type code in French (`fr`) or English (`en`)."""
    category = CATEGORY_BY_CODE.get(int(code))
    if category is None:
        raise KeyError(f"unknown prdtypecode {code}; the 27 codes are {list(CODES)}")
    return category.name_en if lang == "en" else category.name_fr
