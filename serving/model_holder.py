"""The production model of one serving worker, polled and swapped in whole.

A background thread looks up the `production` alias every `reload_seconds`. When it names a
new version, the model is loaded completely first and then swapped in with one assignment,
so a request sees either the old model or the new one, never a half-loaded one. If the
registry cannot be reached, the current model keeps serving and the staleness grows.
Each worker writes its state to a small JSON file that the HTTP processes read for /health
and /info.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from sklearn.pipeline import Pipeline

from rakuten_assets.ml.inference import PipelineClassifier, compile_pipeline

log = logging.getLogger(__name__)
PRODUCTION = "production"


@dataclass(frozen=True)
class LoadedModel:
    pipeline: Pipeline
    classifier: PipelineClassifier  # compiled fast path, or the pipeline itself
    version: str
    run_id: str | None
    partition: str | None
    loaded_at: str
    classes: tuple[int, ...]


@dataclass
class WorkerState:
    pid: int
    model_name: str
    version: str | None = None
    run_id: str | None = None
    partition: str | None = None
    loaded_at: str | None = None
    last_poll_at: float | None = None
    last_success_at: float | None = None
    error: str | None = None


class ModelHolder:
    def __init__(
        self,
        tracking_uri: str,
        model_name: str,
        reload_seconds: float,
        state_dir: Path | None = None,
        on_change: Callable[[str | None, str], None] = lambda old, new: None,
        on_poll: Callable[[float], None] = lambda staleness: None,
        on_reload: Callable[[str], None] = lambda outcome: None,
    ):
        self.tracking_uri = tracking_uri
        self.model_name = model_name
        self.reload_seconds = reload_seconds
        self.state_dir = state_dir
        self.current: LoadedModel | None = None
        self.state = WorkerState(pid=os.getpid(), model_name=model_name)
        self._client = MlflowClient(tracking_uri)
        self._on_change = on_change
        self._on_poll = on_poll
        self._on_reload = on_reload
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="model-poller", daemon=True)

    def start(self) -> ModelHolder:
        self.poll()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.wait(self.reload_seconds):
            self.poll()

    def poll(self) -> None:
        """Look the alias up once; load and swap if it moved. Never raises."""
        now = time.time()
        self.state.last_poll_at = now
        try:
            try:
                version = self._client.get_model_version_by_alias(self.model_name, PRODUCTION)
            except MlflowException as error:
                if error.error_code not in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                    raise
                version = None  # registry reachable, no production version (yet)
            self.state.last_success_at = now
            if version is None:
                self.state.error = (
                    None
                    if self.current
                    else f"no version of {self.model_name} is aliased 'production' yet"
                )
            elif self.current is None or str(version.version) != self.current.version:
                self._load(str(version.version), version.run_id)
                self.state.error = None
            else:
                self.state.error = None
        except Exception as error:  # registry down or model unloadable: keep serving
            self.state.error = f"registry unreachable or model not loadable: {error}"[:500]
            self._on_reload("error")
            log.warning("model poll failed: %s", error)
        staleness = now - (self.state.last_success_at or now)
        self._on_poll(staleness)
        self._write_state()

    def _load(self, version: str, run_id: str | None) -> None:
        mlflow.set_tracking_uri(self.tracking_uri)
        pipeline = mlflow.sklearn.load_model(f"models:/{self.model_name}/{version}")
        partition = None
        if run_id:
            partition = self._client.get_run(run_id).data.tags.get("partition")
        loaded = LoadedModel(
            pipeline=pipeline,
            classifier=compile_pipeline(pipeline),
            version=version,
            run_id=run_id,
            partition=partition,
            loaded_at=datetime.now(UTC).isoformat(timespec="seconds"),
            classes=tuple(int(c) for c in pipeline.classes_),
        )
        if not loaded.classifier.compiled:
            log.warning("v%s: pipeline not compilable, serving it uncompiled (slower)", version)
        previous = self.current.version if self.current else None
        self.current = loaded  # the swap: one reference assignment
        self.state.version = version
        self.state.run_id = run_id
        self.state.partition = partition
        self.state.loaded_at = loaded.loaded_at
        self._on_change(previous, version)
        self._on_reload("loaded")
        log.info("serving %s v%s (was v%s)", self.model_name, version, previous)

    def _write_state(self) -> None:
        if self.state_dir is None:
            return
        path = self.state_dir / f"worker-{self.state.pid}.json"
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(asdict(self.state)))
        temporary.replace(path)


def read_states(state_dir: Path) -> list[WorkerState]:
    """States of the live workers (files of dead processes are ignored)."""
    states = []
    for path in sorted(state_dir.glob("worker-*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        try:
            os.kill(int(data["pid"]), 0)
        except (OSError, ValueError):
            continue
        states.append(WorkerState(**data))
    return states
