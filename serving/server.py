"""Build and run the LitServe server: /predict (LitServe), plus /feedback, /health, /info and
/metrics.

Process layout: this process starts N inference workers (each with its model, poller and
inference-log writer) and N HTTP processes (uvicorn); requests go from an HTTP process to a
worker through LitServe's queues and are batched there. SIGTERM or SIGINT stops them all.

prometheus-client reads PROMETHEUS_MULTIPROC_DIR when it is imported, so `run()` calls
`prepare_environment()` before importing anything that records metrics.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path
from typing import Any

from rakuten_assets.settings import Settings, get_settings, mask_credentials

METRICS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"


def prepare_environment(settings: Settings, port: int) -> Path:
    """Fresh folders for multiprocess metrics and worker states (one set per port, so two
    servers never mix); returns the state folder."""
    base = settings.home_dir / "serving" / str(port)
    metrics_dir = base / "metrics"
    state_dir = base / "state"
    for folder in (metrics_dir, state_dir):
        shutil.rmtree(folder, ignore_errors=True)  # metrics of a previous run would add up
        folder.mkdir(parents=True, exist_ok=True)
    os.environ[METRICS_DIR_ENV] = str(metrics_dir)
    from serving.api import STATE_DIR_ENV

    os.environ[STATE_DIR_ENV] = str(state_dir)
    return state_dir


def _health(settings: Settings, state_dir: Path) -> tuple[int, dict[str, Any]]:
    from serving.model_holder import read_states

    states = read_states(state_dir)
    now = time.time()
    stale_after = 2 * settings.reload_seconds
    errors = [mask_credentials(s.error) if s.error else None for s in states]
    workers = [
        {
            "pid": s.pid,
            "version": s.version,
            "stale_seconds": round(now - s.last_success_at, 1) if s.last_success_at else None,
            "error": error,
        }
        for s, error in zip(states, errors, strict=True)
    ]
    versions = sorted({s.version for s in states if s.version})
    body: dict[str, Any] = {"model_name": settings.model_name, "workers": workers}
    if not states:
        body.update(status="starting", reason="no inference worker has reported yet")
        return 503, body
    if not all(s.version for s in states):
        reasons = {e for s, e in zip(states, errors, strict=True) if not s.version and e}
        body.update(
            status="unavailable",
            reason="; ".join(sorted(reasons)) or "the production model is loading",
        )
        return 503, body
    stale = [w for w in workers if w["stale_seconds"] is None or w["stale_seconds"] > stale_after]
    # Production names a version the workers refused or failed to load: still serving the
    # previous one, but an operator must know.
    failed = sorted({e for s, e in zip(states, errors, strict=True) if s.failed_version and e})
    body.update(
        status="stale" if stale else "degraded" if failed else "ok",
        model_version=versions[-1] if len(versions) == 1 else versions,
        stale=bool(stale),
    )
    reasons = []
    if stale:
        reasons.append(
            f"model registry not reached for more than {stale_after:.0f} s; serving the "
            f"last loaded version ({', '.join(versions)})"
        )
    reasons.extend(failed)
    if reasons:
        body["reason"] = "; ".join(reasons)
    return 200, body


def _server_class() -> type:
    """LitServer with manager-free queues (see serving.transport for why)."""
    import litserve as ls

    from serving.transport import PipeTransport, new_queue

    class ProjectLitServer(ls.LitServer):
        def _init_manager(self, num_api_servers: int) -> Any:
            manager = super()._init_manager(num_api_servers)
            for path in self.litapi_request_queues:
                self.litapi_request_queues[path] = new_queue()
            self._transport = PipeTransport.create(num_api_servers)
            return manager

    return ProjectLitServer


def build_server(settings: Settings, state_dir: Path, workers: int = 1) -> Any:
    from fastapi import Response
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse

    from serving import metrics
    from serving.api import ProductClassifierAPI
    from serving.feedback import add_feedback_route
    from serving.http_metrics import HttpMetricsMiddleware
    from serving.request_limits import BodySizeLimitMiddleware, max_body_bytes, validation_error

    server = _server_class()(
        ProductClassifierAPI(settings),
        accelerator="cpu",
        workers_per_device=workers,
        timeout=30,
        # LitServe's own routes move aside; ours report the model, not only the workers.
        healthcheck_path="/litserve/health",
        info_path="/litserve/info",
        middlewares=[
            HttpMetricsMiddleware,
            (BodySizeLimitMiddleware, {"max_bytes": max_body_bytes(settings)}),
        ],
    )
    app = server.app
    app.add_exception_handler(RequestValidationError, validation_error)
    add_feedback_route(app, settings)
    app.title = "Rakuten product classifier"
    app.description = (
        "Classifies Rakuten France listings into the 27 product-type codes with the model "
        "aliased `production` in the MLflow registry (hot-reloaded)."
    )

    # Routes carry no return annotation: FastAPI would read it as a response model.
    @app.get("/health", tags=["operations"], response_class=JSONResponse)
    def health():  # type: ignore[no-untyped-def]
        """200 with the model version once a production model is loaded (`status` ok, stale
        or degraded, with the reason), 503 with why not."""
        code, body = _health(settings, state_dir)
        return JSONResponse(body, status_code=code)

    @app.get("/info", tags=["operations"], response_class=JSONResponse)
    def info():  # type: ignore[no-untyped-def]
        """Model name, version, run id, training partition and load time of each worker."""
        from serving.model_holder import read_states

        return JSONResponse(
            {
                "model_name": settings.model_name,
                "tracking_uri": mask_credentials(settings.resolved_mlflow_tracking_uri),
                "reload_seconds": settings.reload_seconds,
                "workers": [
                    {
                        "pid": s.pid,
                        "version": s.version,
                        "run_id": s.run_id,
                        "partition": s.partition,
                        "loaded_at": s.loaded_at,
                    }
                    for s in read_states(state_dir)
                ],
            }
        )

    @app.get("/metrics", tags=["operations"], include_in_schema=False)
    def prometheus_metrics():  # type: ignore[no-untyped-def]
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    return server


def run(
    host: str = "127.0.0.1", port: int = 8000, workers: int = 1, api_servers: int | None = None
) -> None:
    settings = get_settings()
    from rakuten_assets.db.engine import connect

    connect(settings.resolved_database_url).dispose()  # migrate once, before the workers
    state_dir = prepare_environment(settings, port)
    server = build_server(settings, state_dir, workers)
    main_pid = os.getpid()

    def stop(signum: int, frame: object) -> None:
        if os.getpid() == main_pid:
            raise KeyboardInterrupt  # LitServe shuts every process down on KeyboardInterrupt
        raise SystemExit(0)  # an HTTP process forked from here, which inherited the handler

    signal.signal(signal.SIGTERM, stop)
    server.run(
        host=host,
        port=port,
        num_api_servers=api_servers or workers,
        generate_client_file=False,
        log_level="warning",
    )
