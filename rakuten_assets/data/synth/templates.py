"""The small template language the vocabulary is written in.

A template is plain text with placeholders:

- ``{slot}``: a random value of the slot (class slots first, then the common slots);
  values may themselves contain placeholders, expanded recursively.
- ``{slot?}``: the same, but present only half of the time.
- ``{int:A:B}``: an integer in [A, B]; ``{dec:A:B}``: a decimal with one digit ("2,5").
- ``{year:A:B}``: a year in [A, B]; ``{date}``: a date "28/09/2001" (1950-2018).
- ``{model}``: a model number such as "XR-350", "GX4500" or "A1234B".
- ``{dims}``: "120 x 60 x 75 cm"; ``{dims2}``: "45x45 cm"; ``{cm}``: "35 cm".
- ``{isbn}``: "978-2-0704-0850-4" (13 digits); ``{ean}``: a 13-digit barcode.
- ``{coined}``: a coined reseller brand name ("Zaivox", "Kooberly").
"""

from __future__ import annotations

import random
import re
import string
from collections.abc import Mapping, Sequence
from functools import cache

PLACEHOLDER = re.compile(r"\{([a-z_0-9]+)(\?)?(?::(-?\d+):(-?\d+))?\}")
_SPACES = re.compile(r"[ \t]{2,}")
_SPACE_BEFORE_PUNCT = re.compile(r" +([,.)])")
MAX_DEPTH = 6


class TemplateError(ValueError):
    """A template names a slot that does not exist, or nests too deeply."""


def _model(rng: random.Random) -> str:
    letters = "".join(rng.choices(string.ascii_uppercase, k=rng.randint(1, 3)))
    digits = str(rng.randint(1, 9999))
    style = rng.random()
    if style < 0.4:
        return f"{letters}-{digits}"
    if style < 0.8:
        return f"{letters}{digits}"
    return f"{letters}{digits}{rng.choice(string.ascii_uppercase)}"


def _isbn(rng: random.Random) -> str:
    """A French ISBN-13 (978-2, publisher and title in 8 digits, a check digit)."""
    digits = [9, 7, 8, 2, *(rng.randint(0, 9) for _ in range(8))]
    check = (10 - sum(d * (3 if i % 2 else 1) for i, d in enumerate(digits)) % 10) % 10
    body = "".join(map(str, digits))
    return f"{body[:3]}-{body[3]}-{body[4:8]}-{body[8:12]}-{check}"


_ONSETS = (
    "b",
    "br",
    "c",
    "ch",
    "d",
    "f",
    "g",
    "h",
    "j",
    "k",
    "l",
    "m",
    "n",
    "p",
    "qu",
    "r",
    "s",
    "sh",
    "t",
    "tr",
    "v",
    "w",
    "x",
    "y",
    "z",
    "",
)
_NUCLEI = ("a", "e", "i", "o", "u", "oo", "ee", "ai", "y", "ia", "ou")
_CODAS = ("", "", "n", "r", "x", "s", "l", "m", "k", "ng", "ck", "z")
_ENDINGS = ("", "", "", "er", "ly", "go", "fy", "box", "tek", "life", "mall", "ier", "io")


def _coined(rng: random.Random) -> str:
    """A coined reseller brand ("Kokobuy", "Vbestlife" style): a word in no dictionary,
    met in every class of real listings, so unfamiliar words signal no class."""
    word = "".join(
        rng.choice(_ONSETS) + rng.choice(_NUCLEI) + rng.choice(_CODAS)
        for _ in range(rng.randint(1, 3))
    )
    return (word + rng.choice(_ENDINGS)).capitalize()


def _builtin(name: str, low: int | None, high: int | None, rng: random.Random) -> str:
    if name == "int":
        return str(rng.randint(low or 0, high if high is not None else 100))
    if name == "dec":
        value = rng.uniform(low or 0, high if high is not None else 10)
        return f"{value:.1f}".replace(".", ",")
    if name == "year":
        return str(rng.randint(low or 1950, high or 2019))
    if name == "date":
        return f"{rng.randint(1, 28):02d}/{rng.randint(1, 12):02d}/{rng.randint(1950, 2018)}"
    if name == "model":
        return _model(rng)
    if name == "dims":
        return f"{rng.randint(20, 220)} x {rng.randint(20, 120)} x {rng.randint(5, 200)} cm"
    if name == "dims2":
        side = rng.choice([30, 35, 40, 45, 50, 60, 65, 80, 100, 120, 140, 160, 200, 240])
        other = rng.choice([side, side, rng.randint(20, 260)])
        return f"{side}x{other} cm"
    if name == "cm":
        return f"{rng.randint(5, 250)} cm"
    if name == "isbn":
        return _isbn(rng)
    if name == "ean":
        return "".join(str(rng.randint(0, 9)) for _ in range(13))
    if name == "coined":
        return _coined(rng)
    raise TemplateError(f"unknown built-in {{{name}}}")


BUILTINS = frozenset(
    {"int", "dec", "year", "date", "model", "dims", "dims2", "cm", "isbn", "ean", "coined"}
)


Part = tuple[str, str | None, bool, int | None, int | None]  # literal, slot, optional, low, high


@cache
def compile_template(template: str) -> tuple[Part, ...]:
    """Split a template once into literal text and placeholders (rendering is a hot loop)."""
    parts: list[Part] = []
    position = 0
    for match in PLACEHOLDER.finditer(template):
        name, optional, low, high = match.groups()
        parts.append(
            (
                template[position : match.start()],
                name,
                bool(optional),
                int(low) if low else None,
                int(high) if high else None,
            )
        )
        position = match.end()
    parts.append((template[position:], None, False, None, None))
    return tuple(parts)


class Renderer:
    """Expands templates against class slots layered over common slots.

    Slots named in `sticky` keep the value first drawn for them in a listing (pass the same
    `memo` dict for the designation and the description), so that a description talks about
    the product and brand of its own designation.
    """

    def __init__(
        self,
        slots: Mapping[str, Sequence[str]],
        common: Mapping[str, Sequence[str]],
        sticky: frozenset[str] = frozenset(),
    ):
        self.slots = slots
        self.common = common
        self.sticky = sticky

    def values(self, name: str) -> Sequence[str]:
        if name in self.slots:
            return self.slots[name]
        if name in self.common:
            return self.common[name]
        raise TemplateError(f"unknown slot {{{name}}}")

    def render(self, template: str, rng: random.Random, memo: dict[str, str] | None = None) -> str:
        return tidy(self._expand(template, rng, 0, memo))

    def _expand(
        self, template: str, rng: random.Random, depth: int, memo: dict[str, str] | None
    ) -> str:
        if depth > MAX_DEPTH:
            raise TemplateError(f"templates nest deeper than {MAX_DEPTH}: {template!r}")
        pieces: list[str] = []
        for literal, name, optional, low, high in compile_template(template):
            pieces.append(literal)
            if name is None or (optional and rng.random() < 0.5):
                continue
            if name in BUILTINS:
                pieces.append(_builtin(name, low, high, rng))
            elif memo is not None and name in memo:
                pieces.append(memo[name])
            else:
                value = self._expand(rng.choice(self.values(name)), rng, depth + 1, memo)
                if memo is not None and name in self.sticky:
                    memo[name] = value
                pieces.append(value)
        return "".join(pieces)


def tidy(text: str) -> str:
    """Collapse the double spaces and stray separators left by omitted optional slots."""
    text = _SPACES.sub(" ", text)
    text = _SPACE_BEFORE_PUNCT.sub(r"\1", text)
    text = text.replace("( ", "(").replace("()", "").replace(" - -", " -")
    return text.strip(" -,")


def placeholders(template: str) -> list[str]:
    """Names of the slots a template refers to (built-ins excluded)."""
    return [m.group(1) for m in PLACEHOLDER.finditer(template) if m.group(1) not in BUILTINS]
