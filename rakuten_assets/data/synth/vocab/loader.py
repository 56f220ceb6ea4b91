"""Read the vocabulary from its TOML files and check it, so that a mistake fails at load time
with the file and the key at fault rather than as a `TemplateError` halfway through a run.

A vocabulary folder holds:

- ``classes/c<code>.toml``: one class, the fields of `ClassVocabulary` (``[slots]``,
  ``[foreign.<lang>]`` with its own ``titles``/``sentences``/``specs``/``[...slots]``);
- ``shared/*.toml`` and ``names/*.toml``: one ``[slots]`` table each, merged into the common
  slots every class may use; a slot defined in two of these files is an error.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Collection, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from rakuten_assets.data.categories import CODES
from rakuten_assets.data.synth.templates import BUILTINS, PLACEHOLDER

from .base import CASES, ClassVocabulary, LanguageVariant, TitleStyle

LANGUAGES = frozenset({"en", "de", "it", "es"})
GENERATOR_SLOTS = ("seller_padding", "reference_code", "generic_sentence", "generic_sentence_en")
COMMON_FOLDERS = ("shared", "names")
RATES = ("empty_description_rate", "html_rate", "foreign_rate")
MEDIANS = ("title_median_words", "description_median_words")
TEMPLATE_LISTS = ("titles", "title_extras", "sentences", "specs")
CLASS_REQUIRED = frozenset({"code", *RATES, *MEDIANS, "sticky", *TEMPLATE_LISTS, "slots"})
CLASS_KEYS = CLASS_REQUIRED | {"foreign", "title_styles"}
STYLE_REQUIRED = frozenset({"name", "share", "templates"})
STYLE_KEYS = STYLE_REQUIRED | {"extras", "case"}
VARIANT_KEYS = frozenset({"titles", "sentences", "specs", "slots"})
_SLOT_NAME = re.compile(r"[a-z_0-9]+")  # what a `{placeholder}` can name

Slots = dict[str, tuple[str, ...]]


class VocabularyError(ValueError):
    """A vocabulary file is unreadable or malformed: the message starts with the file (relative
    to the vocabulary folder) and the key, e.g. ``classes/c1160.toml: slots.pkmn_name: ...``."""

    def __init__(self, file: str, key: str | None, problem: str):
        super().__init__(f"{file}: {key}: {problem}" if key else f"{file}: {problem}")
        self.file = file
        self.key = key


def load_common(folder: Path) -> Slots:
    """The common slots: every ``shared/*.toml`` then every ``names/*.toml`` of `folder`."""
    merged: Slots = {}
    origin: dict[str, str] = {}
    for sub in COMMON_FOLDERS:
        for path in sorted((folder / sub).glob("*.toml")):
            file, data = _read(path, folder)
            _check_keys(file, None, data, required={"slots"}, allowed={"slots"})
            for name, values in _slots(file, "slots", data["slots"]).items():
                if name in origin:
                    raise VocabularyError(
                        file, f"slots.{name}", f"already defined in {origin[name]}"
                    )
                merged[name] = values
                origin[name] = file
    for name in GENERATOR_SLOTS:  # the generator appends these to titles itself
        if name not in merged:
            raise VocabularyError("shared", f"slots.{name}", "missing (the generator needs it)")
    # common values are expanded for every class, so they may only use common slots
    for name, values in merged.items():
        _check_templates(origin[name], f"slots.{name}", values, (merged,))
    return merged


def load_classes(
    folder: Path, common: Mapping[str, Sequence[str]], codes: Iterable[int] = CODES
) -> dict[int, ClassVocabulary]:
    """The vocabulary of each class of `codes`, in that order, from ``classes/c<code>.toml``."""
    expected = {f"c{code}.toml" for code in CODES}
    for path in sorted((folder / "classes").glob("*.toml")):
        if path.name not in expected:  # a typo in a file name would silently drop a class
            raise VocabularyError(
                f"classes/{path.name}", None, "not a class file (expected c<code>.toml)"
            )
    return {code: load_class(folder, code, common) for code in codes}


def load_class(folder: Path, code: int, common: Mapping[str, Sequence[str]]) -> ClassVocabulary:
    """One class from ``classes/c<code>.toml``, its templates checked against `common`."""
    file, data = _read(folder / "classes" / f"c{code}.toml", folder)
    _check_keys(file, None, data, required=CLASS_REQUIRED, allowed=CLASS_KEYS)
    if type(data["code"]) is not int or data["code"] != code:
        raise VocabularyError(file, "code", f"expected {code} (the code in the file name)")
    for key in RATES:
        _number(file, key, data[key], rate=True)
    for key in MEDIANS:
        _number(file, key, data[key], rate=False)
    sticky = _strings(file, "sticky", data["sticky"], allow_empty=True)
    lists = {
        key: _strings(file, key, data[key], allow_empty=key in ("title_extras", "specs"))
        for key in TEMPLATE_LISTS
    }
    slots = _slots(file, "slots", data["slots"])
    foreign = _foreign(file, data.get("foreign", {}))
    styles = _title_styles(file, data.get("title_styles", []))

    scope = (slots, common)
    for key in TEMPLATE_LISTS:
        _check_templates(file, key, lists[key], scope)
    for index, style in enumerate(styles):
        _check_templates(file, f"title_styles[{index}].templates", style.templates, scope)
    for name, values in slots.items():
        _check_templates(file, f"slots.{name}", values, scope)
    _check_seller(file, None, "seller_sentence", scope)
    for name in sticky:
        if not _known(name, scope):
            raise VocabularyError(file, "sticky", f"unknown slot {name!r}")
    for lang, variant in foreign.items():
        where = f"foreign.{lang}"
        inner = (variant.slots, *scope)
        for key in ("titles", "sentences", "specs"):
            _check_templates(file, f"{where}.{key}", getattr(variant, key), inner)
        for name, values in variant.slots.items():
            _check_templates(file, f"{where}.slots.{name}", values, inner)
        _check_seller(file, where, f"seller_sentence_{lang}", inner)

    return ClassVocabulary(
        code=code,
        slots=slots,
        **lists,
        empty_description_rate=float(data["empty_description_rate"]),
        html_rate=float(data["html_rate"]),
        foreign=foreign,
        foreign_rate=float(data["foreign_rate"]),
        title_median_words=float(data["title_median_words"]),
        description_median_words=float(data["description_median_words"]),
        sticky=frozenset(sticky),
        title_styles=styles,
    )


def _read(path: Path, folder: Path) -> tuple[str, dict[str, Any]]:
    file = path.relative_to(folder).as_posix()
    try:
        return file, tomllib.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise VocabularyError(file, None, "no such file") from None
    except UnicodeDecodeError as error:
        raise VocabularyError(file, None, f"not UTF-8 text ({error.reason})") from None
    except tomllib.TOMLDecodeError as error:  # its message ends with "(at line L, column C)"
        raise VocabularyError(file, None, f"invalid TOML: {error}") from None


def _check_keys(
    file: str,
    where: str | None,
    table: dict[str, Any],
    required: Collection[str],
    allowed: Collection[str],
) -> None:
    prefix = f"{where}." if where else ""
    for key in table:
        if key not in allowed:
            raise VocabularyError(
                file, prefix + key, f"unknown key (expected one of {', '.join(sorted(allowed))})"
            )
    for key in sorted(required):
        if key not in table:
            raise VocabularyError(file, prefix + key, "missing key")


def _number(file: str, key: str, value: Any, rate: bool) -> None:
    if type(value) not in (int, float):  # bool is an int subclass: excluded on purpose
        raise VocabularyError(file, key, "expected a number")
    if rate and not 0 <= value <= 1:
        raise VocabularyError(file, key, f"expected a rate in [0, 1], got {value}")
    if not rate and not 0 < value < math.inf:
        raise VocabularyError(file, key, f"expected a positive number, got {value}")


def _strings(file: str, key: str, value: Any, allow_empty: bool = False) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise VocabularyError(file, key, "expected a list of strings")
    if not value and not allow_empty:  # the generator draws from it: it needs one value
        raise VocabularyError(file, key, "expected at least one value")
    return tuple(value)


def _slots(file: str, key: str, value: Any) -> Slots:
    if not isinstance(value, dict):
        raise VocabularyError(file, key, "expected a table of slots")
    slots: Slots = {}
    for name, values in value.items():
        if not _SLOT_NAME.fullmatch(name):
            raise VocabularyError(
                file, f"{key}.{name}", "a slot name is lower-case letters, digits and '_'"
            )
        if name in BUILTINS:
            raise VocabularyError(file, f"{key}.{name}", f"shadows the built-in {{{name}}}")
        slots[name] = _strings(file, f"{key}.{name}", values)
    return slots


def _foreign(file: str, value: Any) -> dict[str, LanguageVariant]:
    if not isinstance(value, dict):
        raise VocabularyError(file, "foreign", "expected a table of languages")
    variants: dict[str, LanguageVariant] = {}
    for lang, table in value.items():
        where = f"foreign.{lang}"
        if lang not in LANGUAGES:
            raise VocabularyError(
                file,
                where,
                f"unknown language code (expected one of {', '.join(sorted(LANGUAGES))})",
            )
        if not isinstance(table, dict):
            raise VocabularyError(file, where, "expected a table")
        _check_keys(file, where, table, required={"titles"}, allowed=VARIANT_KEYS)
        variants[lang] = LanguageVariant(
            slots=_slots(file, f"{where}.slots", table.get("slots", {})),
            titles=_strings(file, f"{where}.titles", table["titles"]),
            sentences=_strings(file, f"{where}.sentences", table.get("sentences", []), True),
            specs=_strings(file, f"{where}.specs", table.get("specs", []), True),
        )
    return variants


def _title_styles(file: str, value: Any) -> tuple[TitleStyle, ...]:
    if not isinstance(value, list):
        raise VocabularyError(file, "title_styles", "expected an array of tables")
    styles = []
    for index, table in enumerate(value):
        where = f"title_styles[{index}]"
        if not isinstance(table, dict):
            raise VocabularyError(file, where, "expected a table")
        _check_keys(file, where, table, required=STYLE_REQUIRED, allowed=STYLE_KEYS)
        if not isinstance(table["name"], str) or not table["name"]:
            raise VocabularyError(file, f"{where}.name", "expected a name")
        _number(file, f"{where}.share", table["share"], rate=True)
        extras = table.get("extras", False)
        if not isinstance(extras, bool):
            raise VocabularyError(file, f"{where}.extras", "expected true or false")
        case = table.get("case", "keep")
        if case not in CASES:
            raise VocabularyError(file, f"{where}.case", f"expected one of {', '.join(CASES)}")
        styles.append(
            TitleStyle(
                name=table["name"],
                share=float(table["share"]),
                templates=_strings(file, f"{where}.templates", table["templates"]),
                extras=extras,
                case=case,
            )
        )
    total = sum(style.share for style in styles)
    if total > 1 + 1e-9:
        raise VocabularyError(file, "title_styles", f"shares add up to {total:.3f} > 1")
    return tuple(styles)


Scope = tuple[Mapping[str, Sequence[str]], ...]  # slot layers a template may draw from


def _known(name: str, scope: Scope) -> bool:
    return any(name in slots for slots in scope)


def _check_templates(file: str, key: str, templates: Sequence[str], scope: Scope) -> None:
    """Every placeholder of `templates` must name a built-in or a slot of `scope`."""
    for index, template in enumerate(templates):
        if "{" not in template and "}" not in template:
            continue  # most values are plain words: skip the regex (load time)
        found = PLACEHOLDER.findall(template)
        if template.count("{") != len(found) or template.count("}") != len(found):
            raise VocabularyError(file, f"{key}[{index}]", f"malformed placeholder in {template!r}")
        for name, *_ in found:
            if name not in BUILTINS and not _known(name, scope):
                raise VocabularyError(
                    file, f"{key}[{index}]", f"unknown placeholder {{{name}}} in {template!r}"
                )


def _check_seller(file: str, key: str | None, name: str, scope: Scope) -> None:
    # the generator adds `{seller_sentence}` (`{seller_sentence_<lang>}`) to descriptions
    if not _known(name, scope):
        raise VocabularyError(file, key, f"no slot {name!r} (the generator's seller sentences)")
