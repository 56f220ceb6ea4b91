"""Request and response models of the HTTP API (they make the OpenAPI page at /docs)."""

from __future__ import annotations

import re
import uuid
from functools import cache
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from rakuten_assets.data.categories import CODES
from rakuten_assets.settings import get_settings


@cache
def _limits() -> tuple[int, int]:
    """(RAKUTEN_MAX_TEXT_CHARS, RAKUTEN_MAX_BATCH_ITEMS), read at the first request a process
    validates, not when this module is imported."""
    settings = get_settings()
    return settings.max_text_chars, settings.max_batch_items


def _refuse_over_limit(size: int, limit: int, message: str) -> None:
    if size > limit:
        raise ValueError(message.format(size=size, limit=limit))


def within_text_limit(value: str) -> str:
    _refuse_over_limit(
        len(value),
        _limits()[0],
        "text has {size:,} characters, more than RAKUTEN_MAX_TEXT_CHARS ({limit:,})",
    )
    return value


def within_batch_limit(items: list) -> list:
    _refuse_over_limit(
        len(items),
        _limits()[1],
        "batch has {size:,} items, more than RAKUTEN_MAX_BATCH_ITEMS ({limit:,})",
    )
    return items


# NUL cannot be stored in PostgreSQL text, and a lone surrogate cannot be encoded as UTF-8:
# either would be refused by the inference log, so they are refused here, with a 422.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable_text(value: str) -> str:
    """Refuse text holding NUL (U+0000) or a lone surrogate (U+D800-U+DFFF)."""
    found = _UNSTORABLE.search(value)
    if found:
        raise ValueError(
            f"text must not contain U+{ord(found.group()):04X} (NUL or a lone surrogate), "
            f"found at character {found.start()}"
        )
    return value


Designation = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1),
    AfterValidator(within_text_limit),
    AfterValidator(storable_text),
]
Description = Annotated[str, AfterValidator(within_text_limit), AfterValidator(storable_text)]


class PredictRequest(BaseModel):
    """One listing to classify."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "designation": "Piscine tubulaire ronde Intex 3,66 m avec pompe",
                    "description": "<p>Piscine livrée avec pompe de filtration.</p>",
                }
            ]
        },
    )

    designation: Designation = Field(
        description="Title of the listing (required, not empty; at most RAKUTEN_MAX_TEXT_CHARS, "
        "default 10,000 characters)."
    )
    description: Description | None = Field(
        default=None, description="Description, may be HTML (at most RAKUTEN_MAX_TEXT_CHARS)."
    )


BatchRequest = Annotated[
    list[PredictRequest], Field(min_length=1), AfterValidator(within_batch_limit)
]


class ClassProbability(BaseModel):
    prdtypecode: int
    category: str
    probability: float


class Prediction(BaseModel):
    prdtypecode: int = Field(description="Predicted product-type code.")
    category: str = Field(description="Its name (French).")
    confidence: float = Field(description="Probability of the predicted code.")
    top_k: list[ClassProbability]
    model_version: str = Field(description="Registry version of the model that answered.")
    prediction_id: str = Field(
        description="Id of this prediction (uuid4): name it in POST /feedback to send the "
        "correct class."
    )


_CODE_SET = frozenset(CODES)


def known_code(value: int) -> int:
    """Refuse a code that is not one of the 27 product-type codes."""
    if value not in _CODE_SET:
        raise ValueError(
            f"prdtypecode must be one of the {len(CODES)} product-type codes "
            f"({', '.join(map(str, CODES))})"
        )
    return value


class FeedbackItem(BaseModel):
    """The correct class of a served prediction."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"prediction_id": "3f2b8c1e-6a4d-4e0b-9a57-2c1d0e9f8b7a", "prdtypecode": 2583}
            ]
        },
    )

    prediction_id: uuid.UUID = Field(description="`prediction_id` of a /predict answer.")
    prdtypecode: Annotated[int, AfterValidator(known_code)] = Field(
        description="The product-type code the listing really has (one of the 27)."
    )


FeedbackBatch = Annotated[
    list[FeedbackItem], Field(min_length=1), AfterValidator(within_batch_limit)
]


class FeedbackAnswer(BaseModel):
    prediction_id: str
    prdtypecode: int = Field(description="The correct code, as stored.")
    predicted_class: int = Field(description="The code the model answered.")
    correct: bool = Field(description="Whether the model's answer was right.")
    replaced: bool = Field(description="A correction for this prediction existed; replaced.")
