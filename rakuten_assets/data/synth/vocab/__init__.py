"""Vocabulary of every class, kept as data: ``classes/c<code>.toml``, one file per product-type
code, and common slots in ``shared/*.toml`` and ``names/*.toml`` (read and checked by `loader`).

The shared files hold slots that several classes draw from on purpose (books 10/2403/2705/2280,
games 40/2905/2462, toys and licences 1140/1160/1280/1281/1300, home 1560/1920/2060): that
overlap is what makes the task hard, as on real listings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path

from rakuten_assets.data.categories import CODES

from .base import ClassVocabulary, LanguageVariant
from .loader import VocabularyError, load_classes, load_common

FOLDER = Path(__file__).parent


def common_slots(folder: Path = FOLDER) -> Mapping[str, Sequence[str]]:
    """Slots every class may use (loaded on first use)."""
    return _common(folder.resolve())


def vocabularies(
    folder: Path = FOLDER, codes: tuple[int, ...] = CODES
) -> Mapping[int, ClassVocabulary]:
    """The vocabulary of each class of `codes`, all 27 by default (loaded on first use)."""
    return _classes(folder.resolve(), tuple(codes))


# one cache entry per folder, however it was spelled
@cache
def _common(folder: Path) -> Mapping[str, Sequence[str]]:
    return load_common(folder)


@cache
def _classes(folder: Path, codes: tuple[int, ...]) -> Mapping[int, ClassVocabulary]:
    return load_classes(folder, _common(folder), codes)


__all__ = [
    "FOLDER",
    "ClassVocabulary",
    "LanguageVariant",
    "VocabularyError",
    "common_slots",
    "vocabularies",
]
