"""The MLflow model registry, with aliases (stages are deprecated in MLflow 3).

- `challenger`: the latest registered version.
- `production`: the version served; it changes only through `promote` (a decision or a
  forced promotion) and `rollback`, and every change is a row of `model_promotions`
  (action, version, previous version, who or what, why, F1s, when).
Champion/challenger: a candidate is promoted when its weighted F1 reaches the floor AND it is
not worse than the production version evaluated on the candidate's own test set (the split is
stable across partitions, so no product of that test set was ever in a training set).
The floor (RAKUTEN_MIN_WEIGHTED_F1) also guards the other ways in: `register` refuses a run
under it when given the floor, and `force_promote` refuses a version whose run is under it
unless the operator explicitly allows it (recorded in the reason).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.store.artifact.utils.models import _parse_model_id_if_present
from sklearn.metrics import f1_score
from sqlalchemy import Engine, insert, select

from rakuten_assets.db.queries import replay_requests
from rakuten_assets.db.schema import model_promotions
from rakuten_assets.ml.model import listings
from rakuten_assets.ml.model_loader import load_model
from rakuten_assets.ml.replay import DEFAULT_REPLAY_ROWS, ReplayResult, replay, skipped
from rakuten_assets.settings import get_settings

log = logging.getLogger(__name__)

CHALLENGER = "challenger"
PRODUCTION = "production"


class RegistryError(RuntimeError):
    """A registry operation that cannot be done (unknown version, nothing to roll back to)."""


@dataclass(frozen=True)
class PromotionDecision:
    promote: bool
    reasons: list[str]
    candidate_f1: float
    champion_version: str | None = None
    champion_f1: float | None = None
    replay: dict[str, Any] | None = None  # `ReplayResult.as_dict()`, when one ran


def decide_promotion(
    candidate_f1: float,
    champion_f1: float | None,
    min_f1: float,
    tolerance: float = 0.0,
    champion_version: str | None = None,
    replay: ReplayResult | None = None,
    min_replay_agreement: float | None = None,
) -> PromotionDecision:
    """Promote when the floor is reached, the candidate is not worse than the champion and,
    when `min_replay_agreement` is set, it agrees that much with production on the replayed
    live requests (a replay that ran on no request does not block)."""
    reasons: list[str] = []
    promote = True
    if candidate_f1 >= min_f1:
        reasons.append(f"weighted F1 {candidate_f1:.4f} >= floor {min_f1:.2f}")
    else:
        promote = False
        reasons.append(f"weighted F1 {candidate_f1:.4f} < floor {min_f1:.2f}")
    if champion_f1 is None:
        reasons.append("no production version yet")
    elif candidate_f1 + tolerance >= champion_f1:
        reasons.append(
            f"not worse than production v{champion_version} on the same test set "
            f"({candidate_f1:.4f} vs {champion_f1:.4f})"
        )
    else:
        promote = False
        reasons.append(
            f"worse than production v{champion_version} on the same test set "
            f"({candidate_f1:.4f} vs {champion_f1:.4f}, tolerance {tolerance})"
        )
    if replay is not None:
        reasons.append(replay.summary())
        if min_replay_agreement is not None and replay.agreement is not None:
            if replay.agreement >= min_replay_agreement:
                reasons.append(
                    f"replay agreement {replay.agreement:.3f} >= minimum {min_replay_agreement}"
                )
            else:
                promote = False
                reasons.append(
                    f"replay agreement {replay.agreement:.3f} < minimum {min_replay_agreement}: "
                    "it would answer live traffic too differently from production"
                )
    return PromotionDecision(
        promote=promote,
        reasons=reasons,
        candidate_f1=candidate_f1,
        champion_version=champion_version,
        champion_f1=champion_f1,
        replay=replay.as_dict() if replay is not None else None,
    )


@dataclass(frozen=True)
class PromotionEvent:
    action: str
    version: str
    previous_version: str | None
    actor: str
    reason: str
    at: datetime
    candidate_f1: float | None = None
    champion_f1: float | None = None
    replay: dict[str, Any] | None = None


@dataclass
class ModelRegistry:
    """Registry operations on one registered model, audited in the project database."""

    tracking_uri: str
    model_name: str
    engine: Engine
    client: MlflowClient = field(init=False)

    def __post_init__(self) -> None:
        self.client = MlflowClient(self.tracking_uri)

    # -- the weighted-F1 floor ----------------------------------------------------------
    def run_weighted_f1(self, run_id: str | None) -> float | None:
        """The weighted F1 a training run logged (None: no run, or no such metric)."""
        if not run_id:
            return None
        value = self.client.get_run(run_id).data.metrics.get("weighted_f1")
        return float(value) if value is not None else None

    def _under_floor(self, run_id: str | None, floor: float) -> tuple[float | None, str | None]:
        """The run's weighted F1, and why it is not acceptable (None when it reaches the floor)."""
        value = self.run_weighted_f1(run_id)
        if value is None:
            return None, f"run {run_id or '(none)'} logged no weighted_f1 metric"
        if value < floor:
            return value, (
                f"run {run_id}: weighted F1 {value:.4f} is under the floor {floor:.2f} "
                "(RAKUTEN_MIN_WEIGHTED_F1)"
            )
        return value, None

    # -- versions and aliases ------------------------------------------------------------
    def register(
        self,
        model_uri: str,
        run_id: str,
        tags: dict[str, str],
        min_weighted_f1: float | None = None,
    ) -> ModelVersion:
        """Register a logged model as a new version and make it the challenger.

        With `min_weighted_f1`, a run whose logged weighted F1 is under it (or missing) is
        refused (RegistryError) before anything is registered.
        """
        if min_weighted_f1 is not None:
            _, problem = self._under_floor(run_id, min_weighted_f1)
            if problem:
                raise RegistryError(
                    f"refusing to register a model as {self.model_name}: {problem}; a model "
                    "under the floor is never registered, so no promotion can pick it"
                )
        try:
            self.client.create_registered_model(
                self.model_name,
                description="Rakuten France product-type classifier (27 prdtypecode classes).",
            )
        except MlflowException as error:
            if error.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        # MLflow 3 logs models as "logged models" (models:/m-...): a tracking server wants
        # their id alongside the source.
        version = self.client.create_model_version(
            self.model_name,
            source=model_uri,
            run_id=run_id,
            tags=tags,
            model_id=_parse_model_id_if_present(model_uri),
        )
        self.client.set_registered_model_alias(self.model_name, CHALLENGER, version.version)
        return version

    def alias(self, alias: str) -> ModelVersion | None:
        try:
            return self.client.get_model_version_by_alias(self.model_name, alias)
        except MlflowException as error:
            if error.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                return None
            raise

    def production(self) -> ModelVersion | None:
        return self.alias(PRODUCTION)

    def version(self, version: str) -> ModelVersion:
        try:
            return self.client.get_model_version(self.model_name, str(version))
        except MlflowException as error:
            raise RegistryError(
                f"{self.model_name} has no version {version}; see `rakuten models`"
            ) from error

    def versions(self) -> list[dict[str, Any]]:
        """Every version, newest first, with aliases and the headline metrics of its run."""
        found = self.client.search_model_versions(f"name = '{self.model_name}'")
        aliases: dict[str, list[str]] = {}
        if found:  # search results do not carry aliases; the registered model does
            for alias, number in self.client.get_registered_model(self.model_name).aliases.items():
                aliases.setdefault(str(number), []).append(alias)
        rows = []
        for version in sorted(found, key=lambda v: int(v.version), reverse=True):
            metrics: dict[str, float] = {}
            tags: dict[str, str] = {}
            if version.run_id:
                run = self.client.get_run(version.run_id)
                metrics = {
                    key: value
                    for key, value in run.data.metrics.items()
                    if key in ("accuracy", "weighted_f1", "macro_f1")
                }
                tags = run.data.tags
            rows.append(
                {
                    "version": str(version.version),
                    "aliases": sorted(aliases.get(str(version.version), [])),
                    "run_id": version.run_id,
                    "partition": tags.get("partition"),
                    "data_load_id": tags.get("data_load_id"),
                    "created_at": datetime.fromtimestamp(
                        version.creation_timestamp / 1000, UTC
                    ).isoformat(),
                    **metrics,
                }
            )
        return rows

    # -- evaluation ------------------------------------------------------------------------
    def load_version(self, version: str) -> Any:
        """The pipeline of a registered version (skops only, trusted types)."""
        return load_model(f"models:/{self.model_name}/{version}", self.tracking_uri)

    def weighted_f1_on(self, version: str, test: pd.DataFrame) -> float:
        """Weighted F1 of a registered version on a test set."""
        predicted = self.load_version(version).predict(listings(test))
        return float(f1_score(test["prdtypecode"], predicted, average="weighted"))

    def record_replay(self, version: str, run_id: str | None, result: ReplayResult) -> None:
        """The replay's numbers on the challenger's MLflow run (metrics) and version (tags)."""
        if run_id:
            for key, value in result.mlflow_metrics().items():
                self.client.log_metric(run_id, key, value)
        # the headline numbers on the version too: the registry page shows tags, not metrics
        tags = {"replay": result.summary()[:4000], "replay_rows": str(result.rows)}
        if result.agreement is not None:
            tags["replay_agreement"] = f"{result.agreement:.4f}"
        for key, value in tags.items():
            self.client.set_model_version_tag(self.model_name, str(version), key, value)

    def replay_challenger(
        self,
        version: str,
        run_id: str | None,
        champion_version: str,
        rows: int = DEFAULT_REPLAY_ROWS,
        challenger: Any | None = None,
    ) -> ReplayResult:
        """Replay `version` on the last `rows` requests production (`champion_version`)
        answered, and record the result on its MLflow run and version.

        The challenger is the registered version as serving would load it, unless the caller
        passes its pipeline (`challenger`). Nothing to replay (rows 0, an empty log) gives a
        skipped result that says why; it is recorded all the same.
        """
        if rows <= 0:
            result = skipped("replay_rows is 0 (replay turned off)")
        else:
            requests = replay_requests(self.engine, champion_version, rows)
            if requests.empty:
                result = skipped(f"no logged request of production v{champion_version}")
            else:
                model = challenger if challenger is not None else self.load_version(version)
                result = replay(model, requests)
        self.record_replay(version, run_id, result)
        return result

    # -- production alias changes, audited -------------------------------------------------
    def _record(self, event: PromotionEvent) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                insert(model_promotions).values(
                    model_name=self.model_name,
                    action=event.action,
                    version=event.version,
                    previous_version=event.previous_version,
                    actor=event.actor,
                    reason=event.reason,
                    candidate_f1=event.candidate_f1,
                    champion_f1=event.champion_f1,
                    at=event.at,
                    replay=event.replay,
                )
            )

    def _set_production(
        self,
        version: str,
        action: str,
        actor: str,
        reason: str,
        candidate_f1: float | None = None,
        champion_f1: float | None = None,
        replay: dict[str, Any] | None = None,
    ) -> PromotionEvent:
        self.version(version)  # fails clearly when it does not exist
        current = self.production()
        event = PromotionEvent(
            action=action,
            version=str(version),
            previous_version=str(current.version) if current else None,
            actor=actor,
            reason=reason,
            at=datetime.now(UTC),
            candidate_f1=candidate_f1,
            champion_f1=champion_f1,
            replay=replay,
        )
        # Audit first: a row without an alias change is visible and harmless; an alias
        # change without its row would not be auditable.
        self._record(event)
        self.client.set_registered_model_alias(self.model_name, PRODUCTION, str(version))
        for key, value in (
            ("production_since", event.at.isoformat()),
            ("production_by", actor),
            ("production_reason", reason[:4000]),
            ("previous_production_version", event.previous_version or ""),
        ):
            self.client.set_model_version_tag(self.model_name, str(version), key, value)
        return event

    def promote(self, version: str, decision: PromotionDecision, actor: str) -> PromotionEvent:
        """Apply a promotion decision that says promote."""
        if not decision.promote:
            raise RegistryError("the decision does not promote: " + "; ".join(decision.reasons))
        return self._set_production(
            version,
            "promote",
            actor,
            "; ".join(decision.reasons),
            decision.candidate_f1,
            decision.champion_f1,
            decision.replay,
        )

    def force_promote(
        self,
        version: str,
        actor: str,
        reason: str,
        allow_below_floor: bool = False,
        min_weighted_f1: float | None = None,
    ) -> PromotionEvent:
        """Make a version production without a decision (an operator's call, recorded).

        A version whose run's weighted F1 is under the floor (`min_weighted_f1`, default
        RAKUTEN_MIN_WEIGHTED_F1) or unknown is refused unless `allow_below_floor`; the override
        is then written into the recorded reason.
        """
        floor = get_settings().min_weighted_f1 if min_weighted_f1 is None else min_weighted_f1
        found = self.version(version)  # fails clearly when it does not exist
        value, problem = self._under_floor(found.run_id, floor)
        if problem:
            if not allow_below_floor:
                raise RegistryError(
                    f"refusing to force {self.model_name} v{version} to production: {problem}. "
                    "Pass --allow-below-floor (allow_below_floor=True) to promote it anyway; "
                    "the override is recorded"
                )
            reason = f"{reason} [allowed below the floor by --allow-below-floor: {problem}]"
        return self._set_production(version, "force", actor, reason, candidate_f1=value)

    def history(self) -> list[PromotionEvent]:
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(model_promotions)
                .where(model_promotions.c.model_name == self.model_name)
                .order_by(model_promotions.c.id)
            ).all()
        return [
            PromotionEvent(
                action=row.action,
                version=row.version,
                previous_version=row.previous_version,
                actor=row.actor,
                reason=row.reason,
                at=row.at if row.at.tzinfo else row.at.replace(tzinfo=UTC),
                candidate_f1=row.candidate_f1,
                champion_f1=row.champion_f1,
                replay=row.replay,
            )
            for row in rows
        ]

    def rollback(self, actor: str, reason: str = "rollback") -> PromotionEvent:
        """Production back to the version that was production before the current one."""
        stack: list[str] = []
        for event in self.history():
            if event.action == "rollback":
                if stack:
                    stack.pop()
            else:
                stack.append(event.version)
        current = self.production()
        if current is None:
            raise RegistryError(f"{self.model_name} has no production version to roll back")
        while stack and stack[-1] == str(current.version):
            stack.pop()
        if not stack:
            raise RegistryError(
                f"no earlier production version of {self.model_name} to roll back to "
                f"(production is v{current.version})"
            )
        return self._set_production(stack[-1], "rollback", actor, reason)
