"""Promotion decisions and the audited registry on a real MLflow store."""

from __future__ import annotations

import uuid

import pandas as pd
import pytest
from sqlalchemy import Engine, select

from rakuten_assets.db.schema import model_promotions
from rakuten_assets.ml.registry import (
    CHALLENGER,
    PRODUCTION,
    ModelRegistry,
    RegistryError,
    decide_promotion,
)


@pytest.mark.parametrize(
    ("candidate", "champion", "promote", "reason"),
    [
        (0.85, None, True, "no production version yet"),
        (0.86, 0.84, True, "not worse than production"),
        (0.84, 0.84, True, "not worse than production"),
        (0.83, 0.84, False, "worse than production"),
        (0.65, None, False, "< floor 0.70"),
        (0.69, 0.60, False, "< floor 0.70"),
    ],
)
def test_promotion_decision(
    candidate: float, champion: float | None, promote: bool, reason: str
) -> None:
    decision = decide_promotion(candidate, champion, min_f1=0.70, champion_version="3")
    assert decision.promote is promote
    assert any(reason in text for text in decision.reasons), decision.reasons


def test_tolerance_allows_a_slightly_worse_candidate() -> None:
    assert not decide_promotion(0.83, 0.84, 0.7).promote
    assert decide_promotion(0.83, 0.84, 0.7, tolerance=0.02).promote


@pytest.fixture
def registry(mlflow_store: dict[str, str], engine: Engine) -> ModelRegistry:
    return ModelRegistry(mlflow_store["tracking_uri"], f"model-{uuid.uuid4().hex[:8]}", engine)


def register(registry: ModelRegistry, logged: tuple[str, str]) -> str:
    return str(registry.register(logged[0], logged[1], {"partition": "040"}).version)


def test_register_sets_challenger_only(registry: ModelRegistry, logged_small_model) -> None:
    version = register(registry, logged_small_model)
    assert str(registry.alias(CHALLENGER).version) == version
    assert registry.production() is None
    rows = registry.versions()
    assert rows[0]["aliases"] == [CHALLENGER]
    assert rows[0]["weighted_f1"] > 0.8


def test_promote_force_and_rollback_are_recorded(
    registry: ModelRegistry, logged_small_model, engine: Engine, synth_frame: pd.DataFrame
) -> None:
    v1 = register(registry, logged_small_model)
    first = decide_promotion(0.9, None, 0.7)
    registry.promote(v1, first, actor="dagster run a")
    v2 = register(registry, logged_small_model)
    test = synth_frame.tail(300)
    champion_f1 = registry.weighted_f1_on(v1, test)
    assert champion_f1 > 0.8
    # same model, same test set: a tie, which is "not worse"
    second = decide_promotion(registry.weighted_f1_on(v2, test), champion_f1, 0.7, 0, v1)
    assert second.promote
    registry.promote(v2, second, actor="dagster run b")
    v3 = register(registry, logged_small_model)
    worse = decide_promotion(0.71, champion_f1, 0.7, 0, v2)
    with pytest.raises(RegistryError, match="does not promote"):
        registry.promote(v3, worse, actor="dagster run c")
    assert str(registry.production().version) == v2

    registry.force_promote(v3, actor="cli:ops", reason="hotfix")
    assert str(registry.production().version) == v3
    assert registry.rollback(actor="cli:ops").version == v2
    assert registry.rollback(actor="cli:ops").version == v1
    with pytest.raises(RegistryError, match="no earlier production version"):
        registry.rollback(actor="cli:ops")

    history = registry.history()
    assert [(e.action, e.version, e.previous_version) for e in history] == [
        ("promote", v1, None),
        ("promote", v2, v1),
        ("force", v3, v2),
        ("rollback", v2, v3),
        ("rollback", v1, v2),
    ]
    assert history[2].actor == "cli:ops" and history[2].reason == "hotfix"
    assert history[1].champion_f1 == pytest.approx(champion_f1)
    tags = registry.version(v1).tags
    assert tags["production_by"] == "cli:ops"
    assert tags["previous_production_version"] == v2
    with engine.connect() as connection:
        stored = connection.execute(select(model_promotions.c.model_name).distinct()).scalars()
        assert registry.model_name in set(stored)


def test_unknown_version_and_empty_rollback(registry: ModelRegistry, logged_small_model) -> None:
    with pytest.raises(RegistryError, match="no production version"):
        registry.rollback(actor="cli:ops")
    register(registry, logged_small_model)
    with pytest.raises(RegistryError, match="has no version 42"):
        registry.force_promote("42", actor="cli:ops", reason="typo")
    assert registry.history() == []
    assert registry.alias(PRODUCTION) is None


# -- the weighted-F1 floor guards registration and forced promotion ------------------------


def test_register_refuses_a_run_under_the_floor(
    registry: ModelRegistry, logged_small_model
) -> None:
    uri, run_id = logged_small_model
    with pytest.raises(RegistryError, match=r"under the floor 0\.99") as refused:
        registry.register(uri, run_id, {"partition": "040"}, min_weighted_f1=0.99)
    assert run_id in str(refused.value)
    assert registry.client.search_model_versions(f"name = '{registry.model_name}'") == []
    assert registry.alias(CHALLENGER) is None

    version = registry.register(uri, run_id, {"partition": "040"}, min_weighted_f1=0.70)
    assert str(registry.alias(CHALLENGER).version) == str(version.version)


def test_force_promote_refuses_a_version_under_the_floor_unless_allowed(
    registry: ModelRegistry, logged_small_model, monkeypatch: pytest.MonkeyPatch
) -> None:
    v1 = register(registry, logged_small_model)
    logged_f1 = registry.run_weighted_f1(logged_small_model[1])
    assert logged_f1 is not None and logged_f1 < 0.99
    monkeypatch.setenv("RAKUTEN_MIN_WEIGHTED_F1", "0.99")

    with pytest.raises(RegistryError, match=r"under the floor 0\.99.*--allow-below-floor"):
        registry.force_promote(v1, actor="cli:ops", reason="hotfix")
    assert registry.production() is None
    assert registry.history() == []

    event = registry.force_promote(v1, actor="cli:ops", reason="hotfix", allow_below_floor=True)
    assert str(registry.production().version) == v1
    (recorded,) = registry.history()
    assert recorded.action == "force" and recorded.reason == event.reason
    assert recorded.reason.startswith("hotfix [allowed below the floor by --allow-below-floor")
    assert f"{logged_f1:.4f} is under the floor 0.99" in recorded.reason
    assert recorded.candidate_f1 == pytest.approx(logged_f1)
    assert "--allow-below-floor" in registry.version(v1).tags["production_reason"]

    # Above the floor, no override is needed and none is written.
    monkeypatch.setenv("RAKUTEN_MIN_WEIGHTED_F1", "0.70")
    v2 = register(registry, logged_small_model)
    assert registry.force_promote(v2, actor="cli:ops", reason="hotfix").reason == "hotfix"


def test_cli_promote_needs_allow_below_floor_for_a_version_under_the_floor(
    registry: ModelRegistry,
    logged_small_model,
    database_url: str,
    mlflow_store: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path,
) -> None:  # type: ignore[no-untyped-def]
    from typer.testing import CliRunner

    from rakuten_assets.cli import app

    version = register(registry, logged_small_model)
    for name, value in {
        "RAKUTEN_HOME": str(tmp_path / "home"),
        "RAKUTEN_DATABASE_URL": database_url,
        "MLFLOW_TRACKING_URI": mlflow_store["tracking_uri"],
        "RAKUTEN_MODEL_NAME": registry.model_name,
        "RAKUTEN_MIN_WEIGHTED_F1": "0.99",
    }.items():
        monkeypatch.setenv(name, value)
    runner = CliRunner()

    refused = runner.invoke(app, ["promote", version, "--reason", "incident 42"])
    output = " ".join(refused.output.split())
    assert refused.exit_code == 1, output
    assert "under the floor 0.99" in output and "--allow-below-floor" in output
    assert registry.production() is None and registry.history() == []

    allowed = runner.invoke(
        app, ["promote", version, "--reason", "incident 42", "--allow-below-floor"]
    )
    output = " ".join(allowed.output.split())
    assert allowed.exit_code == 0, output
    assert f"production is now v{version}" in output
    (recorded,) = registry.history()
    assert recorded.actor.startswith("cli:")
    assert recorded.reason.startswith("incident 42 [allowed below the floor")
