"""Each launchpad config exposes every field of its plain parameter dataclass, with the same
type and default (one test per parameter set)."""

from __future__ import annotations

import dataclasses
import typing

import pytest

from rakuten_assets.defs.monitoring import DriftConfig
from rakuten_assets.defs.training import SplitConfig, TrainingConfig
from rakuten_assets.ml.dataset import SplitParams
from rakuten_assets.ml.model import PRESETS, SEED_PARAMS, TrainingParams
from rakuten_assets.monitoring.drift_report import DriftThresholds


def test_drift_config_matches_thresholds() -> None:
    hints = typing.get_type_hints(DriftThresholds)
    thresholds = {item.name: item for item in dataclasses.fields(DriftThresholds)}
    fields = DriftConfig.model_fields

    assert set(fields) == {*thresholds, "window_hours", "last_n"}
    for name, item in thresholds.items():
        assert fields[name].annotation is hints[name], name
        assert fields[name].default == item.default, name
        assert fields[name].description == item.metadata["description"], name
    # What the launchpad shows: Dagster's config schema, with the dataclass's defaults.
    schema = DriftConfig.to_config_schema().as_field().config_type.fields
    assert {name: schema[name].default_value for name in thresholds} == {
        name: item.default for name, item in thresholds.items()
    }
    assert DriftConfig().to_params() == DriftThresholds()
    changed = DriftConfig(psi=0.3, min_samples=50, last_n=10).to_params()
    assert changed == DriftThresholds(psi=0.3, min_samples=50)


def config_defaults(config: type) -> dict[str, object]:
    return {name: field.default for name, field in config.model_fields.items()}


def test_split_config_matches_split_params() -> None:
    params = {item.name: item.default for item in dataclasses.fields(SplitParams)}
    assert config_defaults(SplitConfig) == params
    assert SplitConfig().to_params() == SplitParams()
    assert SplitConfig(test_share=0.2, seed=7).to_params() == SplitParams(test_share=0.2, seed=7)
    with pytest.raises(ValueError, match="test_share must be in"):
        SplitConfig(test_share=1.5)  # the dataclass's own check, shown by the launchpad


def test_training_config_matches_training_params() -> None:
    fields = {item.name for item in dataclasses.fields(TrainingParams)}
    defaults = config_defaults(TrainingConfig)
    assert set(defaults) == fields
    # Empty means the preset's value; the preset's own default is the dataclass's.
    assert defaults.pop("preset") == TrainingParams().preset
    assert set(defaults.values()) == {None}
    assert TrainingConfig().to_params() == TrainingParams()
    for preset, params in PRESETS.items():
        assert TrainingConfig(preset=preset).to_params() == params
    changed = TrainingConfig(preset="seed", ngram_range=[1, 3], C=2.0).to_params()
    assert changed == dataclasses.replace(SEED_PARAMS, ngram_range=(1, 3), C=2.0)
    with pytest.raises(ValueError, match="ngram_range must be"):
        TrainingConfig(char_ngram_range=[5, 3])
