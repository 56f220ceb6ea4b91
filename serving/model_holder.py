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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from sklearn.pipeline import Pipeline

from rakuten_assets.ml.inference import PipelineClassifier, compile_pipeline
from rakuten_assets.ml.model_loader import UntrustedModelError, load_model
from rakuten_assets.settings import mask_credentials

log = logging.getLogger(__name__)
PRODUCTION = "production"
_HTTP_TIMEOUT = "MLFLOW_HTTP_REQUEST_TIMEOUT"
_HTTP_RETRIES = "MLFLOW_HTTP_REQUEST_MAX_RETRIES"


@contextmanager
def bounded_registry_calls(timeout: float) -> Iterator[None]:
    """MLflow HTTP calls made inside: `timeout` seconds each, no retries.

    MLflow reads both variables at every call; in a serving worker only the poller thread
    talks to MLflow, so setting them around its lookups bounds those calls and no other
    (the model download after a lookup keeps MLflow's patient defaults)."""
    saved = {
        _HTTP_TIMEOUT: os.environ.get(_HTTP_TIMEOUT),
        _HTTP_RETRIES: os.environ.get(_HTTP_RETRIES),
    }
    os.environ[_HTTP_TIMEOUT] = str(max(1, round(timeout)))
    os.environ[_HTTP_RETRIES] = "0"
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


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
    error: str | None = None  # credentials masked: /health shows it to anyone
    failed_version: str | None = None  # production names it, but it could not be loaded


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
        self._started_at = time.time()
        self._attempted = ""  # the version being loaded, for the error handlers
        self._refused: dict[str, str] = {}
        # The alias lookup must end well within one interval, or staleness would stay 0 for
        # minutes inside MLflow's retries while the registry is down.
        self.poll_timeout = max(1.0, min(5.0, reload_seconds))

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
        """Look the alias up once; load and swap if it moved. Never raises, never blocks for
        long: the lookup has a short timeout and no retries (the next poll is the retry)."""
        started = time.time()
        self.state.last_poll_at = started
        try:
            with bounded_registry_calls(self.poll_timeout):
                version = self._production_version()
                run_tags = (
                    self._client.get_run(version.run_id).data.tags
                    if version is not None and version.run_id and self._needs_load(version)
                    else {}
                )
            self.state.last_success_at = time.time()
            if version is None:
                self.state.failed_version = None
                self.state.error = (
                    None
                    if self.current
                    else f"no version of {self.model_name} is aliased 'production' yet"
                )
            elif str(version.version) in self._refused:
                self._keep_current(str(version.version), self._refused[str(version.version)])
            elif self._needs_load(version):
                self._load(str(version.version), version.run_id, run_tags.get("partition"))
            else:
                self.state.failed_version = None
                self.state.error = None
        except UntrustedModelError as error:  # never retried: the artifact will not change
            reason = mask_credentials(f"refused: {error}")
            self._refused[self._attempted] = reason
            self._on_reload("refused")
            log.error("model v%s %s", self._attempted, reason)
            self._keep_current(self._attempted, reason)
        except Exception as error:  # registry down or model unloadable: keep serving
            reason = mask_credentials(f"registry unreachable or model not loadable: {error}")
            self._on_reload("error")
            log.warning("model poll failed: %s", reason)
            if self._attempted:
                self._keep_current(self._attempted, reason[:500])
            else:
                self.state.error = reason[:500]
        finally:
            self._attempted = ""
        self._on_poll(self.staleness())
        self._write_state()

    def staleness(self) -> float:
        """Seconds since the registry last answered (since start-up when it never did)."""
        return time.time() - (self.state.last_success_at or self._started_at)

    def _production_version(self) -> ModelVersion | None:
        try:
            return self._client.get_model_version_by_alias(self.model_name, PRODUCTION)
        except MlflowException as error:
            if error.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                return None  # registry reachable, no production version (yet)
            raise

    def _needs_load(self, version: ModelVersion) -> bool:
        return self.current is None or str(version.version) != self.current.version

    def _keep_current(self, version: str, reason: str) -> None:
        """Production names a version that cannot be served: say so, serve the current one."""
        self.state.failed_version = version
        self.state.error = (
            f"production v{version} cannot be served ({reason})"
            + (f"; still serving v{self.current.version}" if self.current else "")
        )[:600]

    def _load(self, version: str, run_id: str | None, partition: str | None) -> None:
        self._attempted = version
        pipeline = load_model(f"models:/{self.model_name}/{version}", self.tracking_uri)
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
        self.state.failed_version = None
        self.state.error = None
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
