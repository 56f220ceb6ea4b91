"""Data-quality rules for loaded partitions, as plain functions.

They are applied twice: by the loader to a partition's rows before anything is written (a
breach refuses the load), and by the blocking asset checks of `products` to what is stored
after the load (a breach reverts the load). Both use the names of the checks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd

from rakuten_assets.data.categories import CODES

MAX_EXAMPLES = 10


@dataclass(frozen=True)
class RuleOutcome:
    passed: bool
    failing_rows: int
    description: str
    examples: list[int] = field(default_factory=list)  # productids


def _outcome(frame: pd.DataFrame, failing: pd.Series, what: str) -> RuleOutcome:
    bad = frame.loc[failing.to_numpy(), "productid"]
    return RuleOutcome(
        passed=bad.empty,
        failing_rows=len(bad),
        description=f"{len(bad)} row(s) {what}" if len(bad) else f"no row {what}",
        examples=[int(v) for v in bad.head(MAX_EXAMPLES)],
    )


def row_count_matches(actual: int, expected: int, what: str = "stored") -> RuleOutcome:
    return RuleOutcome(
        passed=actual == expected,
        failing_rows=abs(actual - expected),
        description=f"{actual} row(s) {what}, partition arithmetic expects {expected}",
    )


def no_empty_designation(frame: pd.DataFrame) -> RuleOutcome:
    """Every product of the partition has a designation (the model's main input)."""
    empty = frame["designation"].isna() | (frame["designation"].astype(str).str.strip() == "")
    return _outcome(frame, empty, "with an empty designation")


def labels_within_codes(frame: pd.DataFrame) -> RuleOutcome:
    """Every label of the partition is one of the 27 product-type codes."""
    return _outcome(frame, ~frame["prdtypecode"].isin(CODES), "with a label outside the 27 codes")


def productid_unique(frame: pd.DataFrame) -> RuleOutcome:
    """No productid appears twice in the whole table."""
    return _outcome(frame, frame["productid"].duplicated(keep=False), "sharing a productid")


# The blocking rules that judge a frame of listings, by the name of their asset check.
FRAME_RULES: tuple[tuple[str, Callable[[pd.DataFrame], RuleOutcome]], ...] = (
    ("no_empty_designation", no_empty_designation),
    ("labels_within_codes", labels_within_codes),
    ("productid_unique", productid_unique),
)
ROW_COUNT_RULE = "row_count_matches_partition"


def partition_breaches(
    frame: pd.DataFrame, expected_rows: int | None = None
) -> list[tuple[str, RuleOutcome]]:
    """The blocking rules a partition's rows break (empty when they break none).

    `expected_rows` is the partition arithmetic's row count, when the caller knows it.
    """
    outcomes = [(name, rule(frame)) for name, rule in FRAME_RULES]
    if expected_rows is not None:
        outcomes.append(
            (ROW_COUNT_RULE, row_count_matches(len(frame), expected_rows, "in the partition"))
        )
    return [(name, outcome) for name, outcome in outcomes if not outcome.passed]
