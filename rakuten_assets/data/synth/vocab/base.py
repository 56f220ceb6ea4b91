"""The shape of a class vocabulary: slot values and templates written in `templates.py` syntax.

Built by `loader` from ``classes/c<code>.toml``, whose keys are the fields below.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

CASES = ("mixed", "keep", "upper")


@dataclass(frozen=True)
class TitleStyle:
    """A way a class's sellers write designations, drawn for a `share` of its French listings.

    - ``templates``: the designations of this style (e.g. a bare book title, a card name with
      its number, a machine-translated keyword string);
    - ``extras``: pad it with the class's ``title_extras`` up to the drawn length, like the
      class's plain ``titles``;
    - ``case``: ``mixed`` (mostly title case, sometimes all caps, as sellers type), ``keep``
      (as written: names keep their own case) or ``upper`` (all caps, as spare-part lists).
    """

    name: str
    share: float
    templates: Sequence[str]
    extras: bool = False
    case: str = "keep"


@dataclass(frozen=True)
class LanguageVariant:
    """Listings of a class written in another language (English, German, Italian, Spanish)."""

    slots: Mapping[str, Sequence[str]]
    titles: Sequence[str]
    sentences: Sequence[str] = ()
    specs: Sequence[str] = ()


@dataclass(frozen=True)
class ClassVocabulary:
    """Everything the generator needs to write listings of one product-type code.

    - ``slots``: class-specific slot values (product nouns, brands, attributes, ...);
      a template may also use any common slot (``shared/*.toml``, ``names/*.toml``).
    - ``titles``: designation templates; ``title_extras``: short templates appended to a
      designation when it is shorter than the length drawn for it.
    - ``title_styles``: other ways of writing a designation, each for a share of the
      listings (the plain ``titles`` take the rest).
    - ``sentences``: prose sentences for descriptions; ``specs``: "Label : value" lines that
      the generator renders as a specification list (plain text or HTML ``<li>``).
    - ``empty_description_rate``: share of listings of this class without a description.
    - ``html_rate``: share of non-empty descriptions written as HTML.
    - ``foreign``: variants by language code ("en", "de", "it", "es");
      ``foreign_rate``: share of listings of this class written in one of them.
    - ``title_median_words`` / ``description_median_words``: median lengths in words; the
      generator draws each listing's length around them (log-normal) and pads designations
      with ``title_extras`` up to the drawn length.
    - ``sticky``: slots that keep one value across a listing (the designation's product and
      brand reappear in its description).
    """

    code: int
    slots: Mapping[str, Sequence[str]]
    titles: Sequence[str]
    title_extras: Sequence[str]
    sentences: Sequence[str]
    specs: Sequence[str]
    empty_description_rate: float = 0.35
    html_rate: float = 0.3
    foreign: Mapping[str, LanguageVariant] = field(default_factory=dict)
    foreign_rate: float = 0.04
    title_median_words: float = 11.0
    description_median_words: float = 95.0
    sticky: frozenset[str] = frozenset({"product", "brand"})
    title_styles: Sequence[TitleStyle] = ()
