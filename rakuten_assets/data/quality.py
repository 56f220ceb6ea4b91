"""Data-quality rules for loaded partitions, as plain functions (the asset checks call them)."""

from __future__ import annotations

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


def row_count_matches(actual: int, expected: int) -> RuleOutcome:
    return RuleOutcome(
        passed=actual == expected,
        failing_rows=abs(actual - expected),
        description=f"{actual} row(s) stored, partition arithmetic expects {expected}",
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
