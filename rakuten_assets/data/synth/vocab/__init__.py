"""Vocabulary of every class: one module `c<code>.py` per product-type code.

The `shared_*` modules hold slots that several classes draw from on purpose (books
10/2403/2705/2280, games 40/2905/2462, toys and licences 1140/1160/1280/1281/1300,
home 1560/1920/2060): that overlap is what makes the task hard, as on real listings.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from functools import cache
from types import ModuleType

from rakuten_assets.data.categories import CODES

from .base import ClassVocabulary, LanguageVariant


def _merge_common(*modules: ModuleType) -> dict[str, Sequence[str]]:
    merged: dict[str, Sequence[str]] = {}
    for module in modules:
        clash = merged.keys() & module.SLOTS.keys()
        if clash:
            raise ValueError(f"{module.__name__} redefines common slots {sorted(clash)}")
        merged.update(module.SLOTS)
    return merged


def _load(code: int) -> ClassVocabulary:
    vocab = importlib.import_module(f"{__name__}.c{code}").VOCAB
    if vocab.code != code:
        raise ValueError(f"module c{code} describes class {vocab.code}")
    return vocab


@cache
def common_slots() -> Mapping[str, Sequence[str]]:
    """Slots every class may use (loaded on first use)."""
    from . import common, shared_books, shared_games, shared_home, shared_toys

    return _merge_common(common, shared_books, shared_games, shared_toys, shared_home)


@cache
def vocabularies() -> Mapping[int, ClassVocabulary]:
    """The vocabulary of each of the 27 classes (loaded on first use)."""
    return {code: _load(code) for code in CODES}


__all__ = ["ClassVocabulary", "LanguageVariant", "common_slots", "vocabularies"]
