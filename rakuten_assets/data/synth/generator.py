"""Generate realistic listings in the exact format of the challenge files.

Everything is drawn from one `random.Random(seed)` stream, so a seed always gives the same
files. The class shares are those of the real training set; the noise (empty descriptions,
HTML, entities, mojibake, duplicated titles, label noise) is injected at rates close to the
real data so that the cleaning and the model face the same problems as on real listings.
"""

from __future__ import annotations

import codecs
import math
import random
import unicodedata
from collections import ChainMap
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from rakuten_assets.data.categories import REAL_CLASS_COUNTS, REAL_TEST_ROWS, REAL_TRAIN_ROWS
from rakuten_assets.data.challenge_files import write_challenge_files
from rakuten_assets.data.synth import vocab
from rakuten_assets.data.synth.templates import Renderer
from rakuten_assets.data.synth.vocab.base import ClassVocabulary, LanguageVariant, TitleStyle

# Classes that real listings confuse; label noise mostly stays inside a group.
CONFUSABLE_GROUPS: tuple[tuple[int, ...], ...] = (
    (10, 2403, 2705, 2280),
    (40, 2905, 2462, 60, 50),
    (1280, 1281, 1300, 1302),
    (1140, 1160, 1180),
    (1320, 1301, 1280),
    (1560, 2582, 2060, 1920),
    (2583, 2582, 2585),
)

MAX_TITLE_WORDS = 56
MAX_DESCRIPTION_WORDS = 2000
ProgressCallback = Callable[[int], None]


@dataclass(frozen=True)
class SynthOptions:
    """What to generate. Rates are shares of listings (of titles, of descriptions)."""

    rows: int = REAL_TRAIN_ROWS
    test_rows: int = REAL_TEST_ROWS
    seed: int = 42
    label_noise: float = 0.015
    duplicate_title_rate: float = 0.04
    cross_class_duplicate_rate: float = 0.003
    mojibake_rate: float = 0.015
    description_is_title_rate: float = 0.03
    # ~29% of real descriptions start by repeating the title (the 3% above included)
    description_starts_with_title_rate: float = 0.38
    # real titles carry accents about half as often as French spelling wants
    accent_drop_rate: float = 0.2
    # padding ("Neuf", "Envoi Rapide", ...) in ~2% of real titles, in every class alike
    seller_padding_rate: float = 0.025
    reference_code_rate: float = 0.04
    # styles written without extras still get the class's extras now and then, as real
    # sellers add a size, a colour or a year to a bare name (real titles: ~70 characters)
    style_extras_rate: float = 0.4
    # sellers' boilerplate (shipping, returns, contact) carries no class: a share of the
    # sentences of every description, and the whole of some descriptions
    seller_sentence_share: float = 0.25
    # specs and marketing phrases that any product can carry ("Couleur : noir."). Real
    # descriptions add only a few points of F1 to the title; with class sentences only, a
    # model scored 0.975 on listings with a description (0.86 without), 0.94 at 0.5 / 0.25.
    generic_sentence_share: float = 0.5
    boilerplate_description_rate: float = 0.12
    # weights of the languages of foreign listings: English dominates, as on real listings
    foreign_weights: tuple[tuple[str, float], ...] = (
        ("en", 4.0),
        ("de", 1.0),
        ("it", 1.0),
        ("es", 1.0),
    )


def class_counts(rows: int, codes: Iterable[int] | None = None) -> dict[int, int]:
    """Rows per class for `rows` listings in the real shares (largest-remainder rounding),
    over all 27 classes or over `codes` only."""
    if rows < 0:
        raise ValueError("rows must be >= 0")
    shares = {c: REAL_CLASS_COUNTS[c] for c in (codes if codes is not None else REAL_CLASS_COUNTS)}
    total = sum(shares.values())
    exact = {code: rows * count / total for code, count in shares.items()}
    counts = {code: math.floor(value) for code, value in exact.items()}
    missing = rows - sum(counts.values())
    by_remainder = sorted(exact, key=lambda code: (counts[code] - exact[code], code))
    for code in by_remainder[:missing]:
        counts[code] += 1
    return counts


def _mojibake_fallback(error: UnicodeDecodeError) -> tuple[str, int]:
    return error.object[error.start : error.end].decode("latin-1"), error.end


codecs.register_error("rakuten_latin1_fallback", _mojibake_fallback)


def mojibake(text: str) -> str:
    """UTF-8 bytes read as Windows-1252, the usual marketplace mojibake ("é" -> "Ã©")."""
    return text.encode("utf-8").decode("cp1252", errors="rakuten_latin1_fallback")


_ENTITIES = {
    "é": "&eacute;",
    "è": "&egrave;",
    "ê": "&ecirc;",
    "ë": "&euml;",
    "à": "&agrave;",
    "â": "&acirc;",
    "ç": "&ccedil;",
    "î": "&icirc;",
    "ï": "&iuml;",
    "ô": "&ocirc;",
    "ù": "&ugrave;",
    "û": "&ucirc;",
    "É": "&Eacute;",
    "À": "&Agrave;",
    "°": "&deg;",
    "€": "&euro;",
    "'": "&#39;",
    '"': "&quot;",
    "œ": "&oelig;",
    "²": "&sup2;",
    "³": "&sup3;",
}


def html_entities(text: str) -> str:
    """Escape like a marketplace back office: '&' first, then accents and quotes."""
    text = text.replace("&", "&amp;")
    return "".join(_ENTITIES.get(char, char) for char in text)


def strip_accents(text: str) -> str:
    """Text without its accents ("Édition Limitée" -> "Edition Limitee"), as sellers type."""
    decomposed = unicodedata.normalize("NFD", text)
    return unicodedata.normalize(
        "NFC", "".join(char for char in decomposed if not unicodedata.combining(char))
    )


def title_case(text: str) -> str:
    """Capitalise the first letter of every word, as most Rakuten designations are."""
    return " ".join(word[:1].upper() + word[1:] for word in text.split(" "))


class ListingWriter:
    """Writes designations and descriptions for any class from its vocabulary."""

    def __init__(
        self,
        vocabularies: Mapping[int, ClassVocabulary],
        common: Mapping[str, Sequence[str]],
        rng: random.Random,
        options: SynthOptions,
    ):
        self.vocabularies = vocabularies
        self.rng = rng
        self.options = options
        self.renderers: dict[tuple[int, str], Renderer] = {}
        for code, words in vocabularies.items():
            self.renderers[(code, "fr")] = Renderer(words.slots, common, words.sticky)
            for lang, variant in words.foreign.items():
                slots = ChainMap(dict(variant.slots), dict(words.slots))
                self.renderers[(code, lang)] = Renderer(slots, common, words.sticky)
        self.previous_titles: dict[int, list[str]] = {code: [] for code in vocabularies}
        self.codes = sorted(vocabularies)
        self.language_weights = dict(options.foreign_weights)
        self.common_renderer = Renderer({}, common)

    def listing(self, code: int) -> tuple[str, str | None]:
        vocab = self.vocabularies[code]
        rng = self.rng
        lang = "fr"
        variant: LanguageVariant | None = None
        if vocab.foreign and rng.random() < vocab.foreign_rate:
            languages = sorted(vocab.foreign)
            weights = [self.language_weights.get(code, 1.0) for code in languages]
            lang = rng.choices(languages, weights)[0]
            variant = vocab.foreign[lang]
        renderer = self.renderers[(code, lang)]
        memo: dict[str, str] = {}
        title = self._title(code, vocab, variant, renderer, memo)
        description = self._description(vocab, variant, lang, renderer, memo, title)
        if rng.random() < self.options.mojibake_rate:
            if description and rng.random() < 0.7:
                description = mojibake(description)
            else:
                title = mojibake(title)
        return title, description

    def label(self, code: int) -> int:
        """The label written for a listing of `code`: usually `code`, sometimes noise."""
        rng = self.rng
        others = [c for c in self.codes if c != code]
        if not others or rng.random() >= self.options.label_noise:
            return code
        neighbours = [c for g in CONFUSABLE_GROUPS if code in g for c in g if c in others]
        if neighbours and rng.random() < 0.7:
            return rng.choice(neighbours)
        return rng.choice(others)

    def _title(
        self,
        code: int,
        vocab: ClassVocabulary,
        variant: LanguageVariant | None,
        renderer: Renderer,
        memo: dict[str, str],
    ) -> str:
        rng = self.rng
        options = self.options
        draw = rng.random()
        if draw < options.cross_class_duplicate_rate:
            others = [c for c in self.codes if c != code and self.previous_titles[c]]
            if others:
                return rng.choice(self.previous_titles[rng.choice(others)])
        elif (
            draw < options.cross_class_duplicate_rate + options.duplicate_title_rate
            and self.previous_titles[code]
        ):
            return rng.choice(self.previous_titles[code])

        style = self._style(vocab) if variant is None else None
        if style is not None:
            title = renderer.render(rng.choice(style.templates), rng, memo)
            if style.extras or rng.random() < options.style_extras_rate:
                title = self._pad(title, vocab, renderer, memo)
            case = style.case
        else:
            title = renderer.render(
                rng.choice(variant.titles if variant else vocab.titles), rng, memo
            )
            if variant is None:
                title = self._pad(title, vocab, renderer, memo)
            case = "mixed"
        title = self._seller_touches(title)
        words = title.split()
        if len(words) > MAX_TITLE_WORDS:
            title = " ".join(words[:MAX_TITLE_WORDS])
        if case == "upper":
            title = title.upper()
        elif case == "mixed":
            style_draw = rng.random()
            if style_draw < 0.62:
                title = title_case(title)
            elif style_draw < 0.66:
                title = title.upper()
            elif style_draw < 0.68:
                title = title.replace("'", "&#39;").replace(" & ", " &amp; ")
        if rng.random() < options.accent_drop_rate:
            title = strip_accents(title)

        history = self.previous_titles[code]
        if len(history) < 2000:
            history.append(title)
        else:
            history[rng.randrange(len(history))] = title
        return title

    def _style(self, vocab: ClassVocabulary) -> TitleStyle | None:
        """A title style of the class for this listing, or None for its plain titles."""
        draw = self.rng.random()
        for style in vocab.title_styles:
            if draw < style.share:
                return style
            draw -= style.share
        return None

    def _pad(
        self, title: str, vocab: ClassVocabulary, renderer: Renderer, memo: dict[str, str]
    ) -> str:
        """Append title extras until the title reaches a length drawn around the median."""
        rng = self.rng
        if not vocab.title_extras:
            return title
        target = min(
            MAX_TITLE_WORDS, round(rng.lognormvariate(math.log(vocab.title_median_words), 0.4))
        )
        for template in rng.sample(vocab.title_extras, min(3, len(vocab.title_extras))):
            if len(title.split()) >= target:
                break
            extra = renderer.render(template, rng, memo)
            if extra and extra not in title:
                title = f"{title}{rng.choice((' ', ' ', ' - ', ', '))}{extra}"
        return title

    def _seller_touches(self, title: str) -> str:
        """Padding and reference codes, at the same rates in every class."""
        rng = self.rng
        if rng.random() < self.options.reference_code_rate:
            title = f"{title} {self.common_renderer.render('{reference_code}', rng)}"
        if rng.random() < self.options.seller_padding_rate:
            padding = self.common_renderer.render("{seller_padding}", rng)
            title = f"{title}{rng.choice((' ', ' - ', ', ', ' * '))}{padding}"
        return title

    def _description(
        self,
        vocab: ClassVocabulary,
        variant: LanguageVariant | None,
        lang: str,
        renderer: Renderer,
        memo: dict[str, str],
        title: str,
    ) -> str | None:
        rng = self.rng
        options = self.options
        if rng.random() < vocab.empty_description_rate:
            return None
        if rng.random() < options.description_is_title_rate:
            return title
        seller = "seller_sentence" if variant is None else f"seller_sentence_{lang}"
        generic = "generic_sentence" if variant is None else f"generic_sentence_{lang}"
        if rng.random() < options.boilerplate_description_rate:
            lines = [renderer.render(f"{{{seller}}}", rng, memo) for _ in range(rng.randint(1, 4))]
            return " ".join(dict.fromkeys(lines))

        sentences = (variant.sentences if variant else vocab.sentences) or vocab.sentences
        specs = variant.specs if variant else vocab.specs
        target = min(
            MAX_DESCRIPTION_WORDS,
            max(3, round(rng.lognormvariate(math.log(vocab.description_median_words), 0.85))),
        )
        if rng.random() < 0.004:  # the long tail of pasted manuals and book excerpts
            target = rng.randint(800, MAX_DESCRIPTION_WORDS)

        paragraphs: list[list[str]] = (
            [[title]] if rng.random() < (options.description_starts_with_title_rate) else [[]]
        )
        spec_lines: list[str] = []
        use_specs = bool(specs) and rng.random() < 0.55
        sentence_deck = _Deck(sentences, rng)
        spec_deck = _Deck(specs, rng)
        words = 0
        while words < target:
            draw = rng.random()
            if use_specs and draw < 0.3 and len(spec_lines) < 30:
                text = renderer.render(spec_deck.draw(), rng, memo)
                spec_lines.append(text)
            elif draw > 1 - options.seller_sentence_share:
                text = renderer.render(f"{{{seller}}}", rng, memo)
                paragraphs[-1].append(text)
            elif draw > 1 - options.seller_sentence_share - options.generic_sentence_share and (
                lang in ("fr", "en")
            ):
                text = renderer.render(f"{{{generic}}}", rng, memo)
                paragraphs[-1].append(text)
            else:
                text = renderer.render(sentence_deck.draw(), rng, memo)
                if paragraphs[-1] and rng.random() < 0.3:
                    paragraphs.append([])
                paragraphs[-1].append(text)
            words += len(text.split())

        blocks = [" ".join(p) for p in paragraphs if p]
        if rng.random() < vocab.html_rate:
            return self._as_html(blocks, spec_lines)
        text = " ".join(blocks)
        if spec_lines:
            joiner = rng.choice((" - ", ". ", " ; ", " "))
            specs_text = joiner.join(spec_lines)
            text = f"{text} {specs_text}" if rng.random() < 0.7 else f"{specs_text} {text}"
        if rng.random() < 0.03:
            text = html_entities(text)
        return text.strip()

    def _as_html(self, blocks: list[str], spec_lines: list[str]) -> str:
        rng = self.rng
        if rng.random() < 0.55:
            body = "".join(f"<p>{block}</p>" for block in blocks)
        else:
            body = "<br />".join(blocks)
        if spec_lines:
            header = rng.choice(
                (
                    "<b>Caractéristiques :</b>",
                    "<strong>Caractéristiques</strong>",
                    "<b>Descriptif technique :</b>",
                    "<p><strong>Points forts :</strong></p>",
                    "",
                )
            )
            if rng.random() < 0.6:
                items = "".join(f"<li>{line}</li>" for line in spec_lines)
                specs_html = f"{header}<ul>{items}</ul>"
            else:
                specs_html = header + "".join(f"<br />- {line}" for line in spec_lines)
            body = body + specs_html if rng.random() < 0.75 else specs_html + body
        if rng.random() < 0.5:
            body = html_entities(body)  # tags carry no attributes, so only the text changes
        return body


class _Deck:
    """Draws templates without replacement, reshuffling when all have been used."""

    def __init__(self, items: Sequence[str], rng: random.Random):
        self.items = list(items)
        self.rng = rng
        self.remaining: list[str] = []

    def draw(self) -> str:
        if not self.remaining:
            self.remaining = self.items[:]
            self.rng.shuffle(self.remaining)
        return self.remaining.pop()


@dataclass(frozen=True)
class GeneratedData:
    x_train: pd.DataFrame
    y_train: pd.DataFrame
    x_test: pd.DataFrame


def generate(
    options: SynthOptions,
    vocabularies: Mapping[int, ClassVocabulary] | None = None,
    common: Mapping[str, Sequence[str]] | None = None,
    progress: ProgressCallback | None = None,
) -> GeneratedData:
    """Generate the training listings, their labels and the unlabelled test listings."""
    if vocabularies is None:
        vocabularies = vocab.vocabularies()
    if common is None:
        common = vocab.common_slots()
    rng = random.Random(options.seed)
    writer = ListingWriter(vocabularies, common, rng, options)

    def plan(rows: int) -> list[int]:
        codes = [code for code, n in class_counts(rows, vocabularies).items() for _ in range(n)]
        rng.shuffle(codes)
        return codes

    total = options.rows + options.test_rows
    productids = rng.sample(range(100_000, 4_300_000_000), total)
    imageids = rng.sample(range(100_000, 1_330_000_000), total)
    designations: list[str] = []
    descriptions: list[str | None] = []
    labels: list[int] = []
    done = 0
    for part_rows, labelled in ((options.rows, True), (options.test_rows, False)):
        for code in plan(part_rows):
            title, description = writer.listing(code)
            designations.append(title)
            descriptions.append(description)
            if labelled:
                labels.append(writer.label(code))
            done += 1
            if progress is not None and (done % 1000 == 0 or done == total):
                progress(done)

    frame = pd.DataFrame(
        {
            "designation": designations,
            "description": descriptions,
            "productid": productids,
            "imageid": imageids,
        }
    )
    x_train = frame.iloc[: options.rows]
    x_test = frame.iloc[options.rows :]
    y_train = pd.DataFrame({"prdtypecode": labels}, index=x_train.index)
    return GeneratedData(x_train=x_train, y_train=y_train, x_test=x_test)


def synthesize(
    out_dir: Path,
    options: SynthOptions,
    progress: ProgressCallback | None = None,
) -> dict[str, Path]:
    """Generate and write `X_train_update.csv`, `Y_train_CVw08PX.csv` and `X_test_update.csv`."""
    data = generate(options, progress=progress)
    return write_challenge_files(out_dir, data.x_train, data.y_train, data.x_test)
