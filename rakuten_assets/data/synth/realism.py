"""How close generated listings are to real ones: the figures of `rakuten synth --report`.

Two kinds of figures, computed on any labelled listings in the challenge format:
- the published figures of the real set (class shares, empty descriptions, lengths, HTML,
  languages, duplicates), printed beside what is known of the real set (`real_figures.toml`);
- shortcut measures: what lets a model score well on generated data without learning what
  transfers to real listings (titles holding one of their class's most typical words, seller
  padding, templated description sentences).

Plain functions on DataFrames; the model probe (what a model trained on the data predicts
for empty and unfamiliar input) lives in `rakuten_assets.ml.probes`.
"""

from __future__ import annotations

import html
import math
import re
import tomllib
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pandas as pd

from rakuten_assets.data.categories import REAL_CLASS_COUNTS

HERE = Path(__file__).parent
TYPICAL_WORDS = 25
_TAG = re.compile(r"<[^>]+>")
_WORD = re.compile(r"[^\W\d_]{3,}")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\s*<br\s*/?>\s*|</p>|</li>", re.IGNORECASE)
_ACCENTED = re.compile(r"[À-ÖØ-öø-ÿŒœ]")


@dataclass(frozen=True)
class Figure:
    """One measure: its value on the generated listings and, when known, on the real set."""

    key: str
    label: str
    generated: float
    real: float | None = None
    source: str = ""
    unit: str = "share"  # share (0-1), chars or words


@cache
def real_figures() -> dict[str, dict[str, object]]:
    with open(HERE / "real_figures.toml", "rb") as handle:
        return tomllib.load(handle)


@cache
def language_words() -> dict[str, frozenset[str]]:
    with open(HERE / "languages.toml", "rb") as handle:
        return {lang: frozenset(words) for lang, words in tomllib.load(handle)["words"].items()}


def fold(text: str) -> str:
    """Lower case without accents: how the measures compare words."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(char for char in decomposed if not unicodedata.combining(char))


def title_words(title: str) -> list[str]:
    return _WORD.findall(fold(html.unescape(title)))


def language_of(title: str) -> str | None:
    """The language whose function words the title holds most of (ties: None)."""
    words = set(re.findall(r"[^\W\d_]+", html.unescape(title).lower()))
    counts = {lang: len(words & vocabulary) for lang, vocabulary in language_words().items()}
    best = max(counts.values())
    winners = [lang for lang, count in counts.items() if count == best]
    return winners[0] if best >= 1 and len(winners) == 1 else None


def typical_words(
    titles: Sequence[list[str]], labels: Sequence[int], top: int = TYPICAL_WORDS
) -> dict[int, list[str]]:
    """Each class's `top` most typical title words: frequent in the class and far more
    frequent there than elsewhere (count in class x log of the lift over all titles).
    Function words ("les", "the", "der": languages.toml) are never typical: a title holding
    "les" names no category, whatever its class."""
    function_words = frozenset().union(*language_words().values())
    overall: Counter[str] = Counter()
    by_class: dict[int, Counter[str]] = {}
    sizes: Counter[int] = Counter(labels)
    for words, label in zip(titles, labels, strict=True):
        distinct = set(words)
        overall.update(distinct)
        by_class.setdefault(label, Counter()).update(distinct)
    total = len(titles)
    result = {}
    for label, counts in by_class.items():
        scored = []
        for word, count in counts.items():
            if count < 3 or word in function_words:
                continue
            lift = (count / sizes[label]) / (overall[word] / total)
            if lift > 1:
                scored.append((count * math.log(lift), word))
        result[label] = [word for _, word in sorted(scored, reverse=True)[:top]]
    return result


def _sentences(description: str) -> Iterable[str]:
    for piece in _SENTENCE_END.split(html.unescape(description)):
        sentence = " ".join(_TAG.sub(" ", piece).split())
        if len(sentence.split()) >= 3:
            yield sentence


def _first_words(text: str, count: int) -> list[str]:
    return re.findall(r"\w+", fold(html.unescape(text)))[:count]


def _starts_with(description: str, title: str) -> bool:
    """The description's first words are the title's (its first four at most)."""
    head = _first_words(title, 4)
    return bool(head) and _first_words(description, len(head)) == head


def _contains_phrase(folded_title: str, phrases: Sequence[str]) -> bool:
    padded = f" {' '.join(re.findall(r'[a-z0-9]+', folded_title))} "
    return any(f" {phrase} " in padded for phrase in phrases)


def measure(
    listings: pd.DataFrame, labels: Sequence[int], padding_phrases: Sequence[str]
) -> list[Figure]:
    """Every figure of the report for labelled listings (columns designation, description)."""
    titles = listings["designation"].fillna("").astype(str).tolist()
    descriptions = listings["description"]
    present = [str(d) for d in descriptions if isinstance(d, str) and d.strip()]
    rows = len(titles)
    known = real_figures()

    def figure(key: str, label: str, value: float, unit: str = "share") -> Figure:
        real = known.get(key, {})
        return Figure(key, label, value, real.get("value"), str(real.get("source", "")), unit)  # type: ignore[arg-type]

    shares = pd.Series(labels).value_counts(normalize=True)
    real_total = sum(REAL_CLASS_COUNTS.values())
    share_gap = max(
        abs(float(shares.get(code, 0.0)) - count / real_total)
        for code, count in REAL_CLASS_COUNTS.items()
    )
    words = [title_words(t) for t in titles]
    typical = typical_words(words, list(labels))
    holding = sum(
        bool(set(w) & set(typical.get(label, ()))) for w, label in zip(words, labels, strict=True)
    )
    phrases = [" ".join(re.findall(r"[a-z0-9]+", fold(p))) for p in padding_phrases]
    padded = [_contains_phrase(fold(html.unescape(t)), phrases) for t in titles]
    padded_by_class = pd.Series(padded).groupby(pd.Series(list(labels))).mean()
    sentences = [s for d in present for s in _sentences(d)]
    languages = Counter(language_of(t) for t in titles)
    starts_with_title = sum(
        _starts_with(_TAG.sub(" ", d), t)
        for t, d in zip(titles, descriptions, strict=True)
        if isinstance(d, str) and d.strip() and t.strip()
    )
    unique_title_words = {w for ws in words for w in ws}

    return [
        figure("class_share_gap", "largest class-share gap to the real set", share_gap),
        figure("empty_description_share", "empty descriptions", 1 - len(present) / rows),
        figure("title_chars_mean", "title length, mean", sum(map(len, titles)) / rows, "chars"),
        figure(
            "title_words_mean",
            "title length, mean",
            sum(len(t.split()) for t in titles) / rows,
            "words",
        ),
        figure(
            "description_chars_median",
            "description length when present, median",
            float(pd.Series([len(d) for d in present]).median()) if present else 0.0,
            "chars",
        ),
        figure(
            "html_description_share",
            "descriptions with HTML tags",
            sum(bool(_TAG.search(d)) for d in present) / max(len(present), 1),
        ),
        figure("mostly_english_title_share", "mostly-English titles", languages["en"] / rows),
        figure(
            "other_language_title_share",
            "German, Italian or Spanish titles",
            (languages["de"] + languages["it"] + languages["es"]) / rows,
        ),
        figure(
            "accented_title_share",
            "titles with an accented letter",
            sum(bool(_ACCENTED.search(html.unescape(t))) for t in titles) / rows,
        ),
        figure(
            "duplicate_title_share",
            "titles shared with another listing",
            float(pd.Series(titles).duplicated(keep=False).mean()),
        ),
        figure(
            "description_starts_with_title_share",
            "descriptions starting with their title",
            starts_with_title / max(len(present), 1),
        ),
        figure(
            "typical_word_title_share",
            f"titles holding one of their class's {TYPICAL_WORDS} most typical words",
            holding / rows,
        ),
        figure("seller_padding_title_share", "titles with seller padding", sum(padded) / rows),
        figure(
            "seller_padding_class_spread",
            "seller padding: highest minus lowest class share",
            float(padded_by_class.max() - padded_by_class.min()),
        ),
        figure(
            "distinct_sentence_share",
            "distinct description sentences",
            len(set(sentences)) / max(len(sentences), 1),
        ),
        figure(
            "distinct_title_words",
            "distinct title words (3+ letters)",
            float(len(unique_title_words)),
            "words",
        ),
    ]


def by_class(
    listings: pd.DataFrame, labels: Sequence[int], padding_phrases: Sequence[str]
) -> pd.DataFrame:
    """The shortcut measures of each class: typical-word share, padding share, distinct
    description sentences, empty descriptions (index: prdtypecode)."""
    titles = listings["designation"].fillna("").astype(str).tolist()
    words = [title_words(t) for t in titles]
    typical = typical_words(words, list(labels))
    phrases = [" ".join(re.findall(r"[a-z0-9]+", fold(p))) for p in padding_phrases]
    rows: dict[int, dict[str, float]] = {}
    frame = pd.DataFrame({"label": list(labels), "words": words, "title": titles})
    frame["description"] = listings["description"].to_numpy()
    for label, group in frame.groupby("label"):
        vocabulary = set(typical.get(int(label), ()))
        present = [d for d in group["description"] if isinstance(d, str) and d.strip()]
        sentences = [s for d in present for s in _sentences(d)]
        rows[int(label)] = {
            "titles": len(group),
            "typical_word_share": sum(bool(set(w) & vocabulary) for w in group["words"])
            / len(group),
            "padding_share": float(
                group["title"]
                .map(lambda t: _contains_phrase(fold(html.unescape(t)), phrases))
                .mean()
            ),
            "distinct_sentence_share": len(set(sentences)) / max(len(sentences), 1),
            "empty_description_share": 1 - len(present) / len(group),
        }
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("prdtypecode")


def typical_words_of(listings: pd.DataFrame, labels: Sequence[int]) -> Mapping[int, list[str]]:
    """The typical words the report measures, for showing them."""
    titles = listings["designation"].fillna("").astype(str)
    return typical_words([title_words(t) for t in titles], list(labels))
