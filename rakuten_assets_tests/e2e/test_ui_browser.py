"""`make demo` end to end, and the UIs it starts in a real browser.

An isolated project in a temporary folder, laid out like the repository (its own
`dagster.yaml` and `workspace.yaml`, DAGSTER_HOME at its root, the embedded SQLite MLflow
store under its RAKUTEN_HOME) with the project database on the real PostgreSQL, as the README
says `make demo` can run. `rakuten demo` generates the data, loads 040, trains and promotes
v1, and starts `dagster dev`, the MLflow UI and the model server on free ports.

Then headless Chromium (Debian's, driven by playwright) checks the registered model and its
`production` alias in the MLflow UI, the six assets in Dagster's global lineage, the 21
partitions of `products` with 040 materialized, and launches the load of partition 043 from
the UI, waiting for its run to succeed and for the project database to hold it. `rakuten
demo` runs a second time and redoes nothing; `rakuten stack stop` leaves no process behind.
Every step leaves a screenshot in test-artifacts/ui/ (failures too), with the services' logs.

60,000 generated rows: the blocking check wants 20 test rows in the smallest class (0.9%) at
40% with a 15% test share.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, Page, expect, sync_playwright

from rakuten_assets.benchmarks.processes import free_port, http, wait_until
from rakuten_assets.stack.services import (
    LocalStack,
    StackPorts,
    descendants,
    group_members,
    process_start_time,
    service_specs,
)
from rakuten_assets_tests.support import ROOT
from rakuten_assets_tests.support.processes import run_rakuten

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

REPO = ROOT
ARTIFACTS = REPO / "test-artifacts" / "ui"
CHROMIUM = "/usr/bin/chromium"
MODEL_NAME = "rakuten-product-classifier"
ASSETS = (
    "raw_products",
    "products",
    "balanced_dataset",
    "trained_model",
    "registered_model_version",
    "drift_metrics",
)
ROWS, TEST_ROWS = 60_000, 300
# Generous: a 2-core machine, often shared with other test runs, serves both UIs.
UI_TIMEOUT_MS = 120_000
SERVER_START_S = 300
RUN_TIMEOUT_S = 420
# Wide enough for Dagster to draw full asset nodes (names not truncated) in the global lineage.
VIEWPORT = {"width": 2400, "height": 1300}
# Dagster's "Join the Dagster community" dialog, shown once per browser profile.
DAGSTER_NO_NUX = "window.localStorage.setItem('communityNux', '\"1\"')"


def chromium_path() -> str:
    path = os.environ.get("RAKUTEN_CHROMIUM", CHROMIUM)
    if not (Path(path).is_file() and os.access(path, os.X_OK)):
        pytest.fail(
            f"the browser test needs Chromium at {path} (playwright cannot download browsers "
            "here): install it with `apt-get install chromium`, or point RAKUTEN_CHROMIUM at "
            "a Chromium binary.",
            pytrace=False,
        )
    return path


@pytest.fixture
def chromium() -> str:
    """Checked before the project is built: no point building it without a browser."""
    return chromium_path()


@dataclass
class Stack:
    project: Path
    env: dict[str, str]
    services: LocalStack  # `dagster dev` and the MLflow UI, as `make start` runs them
    dagster_url: str
    mlflow_url: str
    serving_url: str
    demo_args: tuple[str, ...]
    first_demo: str  # what the first `rakuten demo` printed

    def rakuten(self, *args: str, timeout: float = 900) -> str:
        return run_rakuten(self.project, self.env, *args, timeout=timeout)


def project_environment(project: Path, mlflow_url: str) -> dict[str, str]:
    """The environment of every process of the project: nothing inherited from the caller's
    RAKUTEN_*, MLFLOW_* or DAGSTER_* settings, so the embedded defaults under the project apply."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("RAKUTEN_", "MLFLOW_", "DAGSTER_"))
    }
    env.update(
        DAGSTER_HOME=str(project),
        RAKUTEN_HOME=str(project / ".rakuten"),
        RAKUTEN_DATA_DIR=str(project / "data" / "raw"),
        RAKUTEN_MLFLOW_UI_URL=mlflow_url,
        # The UI needs none of the MLflow server's job runners (and the CPU they take).
        MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false",
        MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false",
    )
    return env


def stop_all(project: Path, env: dict[str, str], services: LocalStack) -> None:
    """`rakuten stack stop` (what `make demo-stop` runs), then assert that none of the
    services' processes is left (a run that `dagster dev`'s daemon started included)."""
    everything: set[int] = set()
    for name in services.specs:
        pid = services.running_pid(name)
        if pid is not None:
            everything |= {pid, *descendants(pid), *group_members(pid)}
    stopped = run_rakuten(project, env, "stack", "stop")
    left = {pid for pid in everything if process_start_time(pid) is not None}
    for pid in left:  # do not leak them, but fail
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    assert not left, f"processes left after `rakuten stack stop`: {left}\n{stopped}"


@pytest.fixture
def stack(tmp_path: Path, postgres_url: str) -> Iterator[Stack]:
    """The isolated project after a first `rakuten demo`: its services are up."""
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    project = tmp_path / "project"
    project.mkdir()
    # The top-level instance configuration, read from DAGSTER_HOME = the project's root (as the
    # Makefile does with the repository root); its storage goes under $RAKUTEN_HOME/dagster.
    shutil.copy(REPO / "dagster.yaml", project / "dagster.yaml")
    shutil.copy(REPO / "workspace.yaml", project / "workspace.yaml")
    ports = StackPorts(dagster=free_port(), mlflow=free_port(), serving=free_port())
    mlflow_url = f"http://127.0.0.1:{ports.mlflow}"
    env = project_environment(project, mlflow_url)
    env["RAKUTEN_DATABASE_URL"] = postgres_url
    home = project / ".rakuten"
    # The same services, read from the pid files `rakuten demo` writes.
    services = LocalStack(
        service_specs(
            tracking_uri=f"sqlite:///{home / 'mlflow.db'}",
            project_dir=project,
            dagster_home=project,
            ports=ports,
        ),
        home,
        env,
    )
    demo_args = (
        *("demo", "--rows", str(ROWS), "--test-rows", str(TEST_ROWS), "--workers", "1"),
        *(f"--{name}-port={getattr(ports, name)}" for name in ("dagster", "mlflow", "serving")),
    )
    try:
        first = run_rakuten(project, env, *demo_args, timeout=1200)
        yield Stack(
            project,
            env,
            services,
            f"http://127.0.0.1:{ports.dagster}",
            mlflow_url,
            f"http://127.0.0.1:{ports.serving}",
            demo_args,
            first,
        )
    finally:
        try:
            stop_all(project, env, services)
        finally:
            for name in services.specs:
                if services.log_path(name).exists():
                    shutil.copy(services.log_path(name), ARTIFACTS / f"{name}.log")


def check_demo_output(stack: Stack) -> None:
    """What the first `rakuten demo` printed, and that it is true."""
    out = stack.first_demo
    assert "promoted v1 to production" in out, out
    for url in (stack.dagster_url, stack.mlflow_url, f"{stack.serving_url}/docs"):
        assert url in out, url
    assert "POST /predict (batch)" in out and "FAIL" not in out, out
    assert http("GET", f"{stack.mlflow_url}/health")[0] == 200
    status, health = http("GET", f"{stack.serving_url}/health")
    assert status == 200 and health["model_version"] == "1", health
    states = json.loads(stack.rakuten("stack", "ps", "--json"))
    assert [s["name"] for s in states] == ["dagster", "mlflow", "serving"]
    assert all(s["running"] for s in states), states


def check_demo_again(stack: Stack) -> None:
    """A second `rakuten demo` redoes nothing and leaves the running services alone."""
    pids = {name: stack.services.running_pid(name) for name in stack.services.specs}
    out = stack.rakuten(*stack.demo_args, timeout=900)
    assert "challenge files found" in out
    assert "partition 040 is already loaded" in out
    assert "is production already" in out and "materializing train" not in out, out
    for name, pid in pids.items():
        assert f"{name}: already running, pid {pid}" in out, out
    assert "FAIL" not in out


class Screenshots:
    """Numbered screenshots of the steps in test-artifacts/ui/."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, page: Page, name: str) -> Path:
        self.count += 1
        path = ARTIFACTS / f"{self.count:02d}-{name}.png"
        page.screenshot(path=str(path), full_page=False)
        return path

    def failure(self, context: BrowserContext) -> None:
        for index, page in enumerate(context.pages):
            try:
                page.screenshot(path=str(ARTIFACTS / f"failure-{index}.png"), timeout=30_000)
            except Exception as error:  # keep the test's own error
                (ARTIFACTS / f"failure-{index}.txt").write_text(f"{page.url}: {error}")


def graphql(stack: Stack, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    status, answer = http(
        "POST", f"{stack.dagster_url}/graphql", {"query": query, "variables": variables or {}}
    )
    assert status == 200 and isinstance(answer, dict) and "errors" not in answer, answer
    return answer["data"]


RUNS_OF_PARTITION = """
query ($partition: String!) {
  runsOrError(filter: {tags: [{key: "dagster/partition", value: $partition}]}) {
    ... on Runs { results { runId status jobName tags { key value } } }
  }
}
"""


def runs_of_partition(stack: Stack, partition: str) -> list[dict[str, Any]]:
    return graphql(stack, RUNS_OF_PARTITION, {"partition": partition})["runsOrError"]["results"]


def wait_for_dagster(stack: Stack) -> None:
    stack.services.wait_healthy("dagster", SERVER_START_S)

    def location_loaded() -> bool:
        data = graphql(
            stack,
            "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus "
            "locationOrLoadError { __typename } } } } }",
        )
        entries = data["workspaceOrError"]["locationEntries"]
        for entry in entries:
            if entry["locationOrLoadError"]["__typename"] == "PythonError":
                raise AssertionError(f"the code location failed to load: {entry}")
        return any(e["name"] == "rakuten_assets" and e["loadStatus"] == "LOADED" for e in entries)

    wait_until(location_loaded, SERVER_START_S, "the rakuten_assets code location", interval=1)


def check_mlflow(page: Page, stack: Stack, shot: Callable[[Page, str], Path]) -> None:
    page.goto(f"{stack.mlflow_url}/#/models")
    # The registry's one-time "new Model Registry UI" announcement covers the list.
    announcement = page.get_by_role("dialog").filter(has_text="Model Registry UI")
    row = page.get_by_role("row").filter(has_text=MODEL_NAME)
    expect(row).to_be_visible(timeout=UI_TIMEOUT_MS)
    if announcement.is_visible():
        announcement.get_by_role("button", name="Close").click()
        expect(announcement).to_be_hidden(timeout=UI_TIMEOUT_MS)
    # "Aliased versions": @ production : Version 1
    expect(row).to_contain_text(re.compile(r"production\W*Version 1"), timeout=UI_TIMEOUT_MS)
    shot(page, "mlflow-registered-models")

    page.get_by_role("link", name=MODEL_NAME).first.click()
    expect(page).to_have_url(re.compile(rf"#/models/{MODEL_NAME}$"), timeout=UI_TIMEOUT_MS)
    version = page.get_by_role("row").filter(has_text="Version 1")
    expect(version).to_be_visible(timeout=UI_TIMEOUT_MS)
    expect(version).to_contain_text(re.compile(r"@\s*production"), timeout=UI_TIMEOUT_MS)
    expect(version).to_contain_text("partition", timeout=UI_TIMEOUT_MS)  # the project's tags
    shot(page, "mlflow-model-production-alias")


def check_asset_graph(page: Page, stack: Stack, shot: Callable[[Page, str], Path]) -> None:
    page.goto(f"{stack.dagster_url}/asset-groups")
    expect(page.get_by_text("Global asset lineage")).to_be_visible(timeout=UI_TIMEOUT_MS)
    for group in ("ingestion", "training", "monitoring"):
        expect(page.get_by_text(group, exact=True).first).to_be_visible(timeout=UI_TIMEOUT_MS)
    shot(page, "dagster-lineage-groups")
    # The groups start collapsed: "Expand all groups" (the graph's context menu, ⌥E).
    page.keyboard.press("Alt+e")
    for asset in ASSETS:
        expect(page.get_by_text(asset, exact=True)).to_be_visible(timeout=UI_TIMEOUT_MS)
    shot(page, "dagster-lineage-assets")


def check_partitions(
    page: Page, stack: Stack, shot: Callable[[Page, str], Path], materialized: int, name: str
) -> None:
    page.goto(f"{stack.dagster_url}/assets/products?view=partitions")
    expect(page.get_by_text("21 Partitions Selected")).to_be_visible(timeout=UI_TIMEOUT_MS)
    expect(page.get_by_text(f"Materialized ({materialized})", exact=True)).to_be_visible(
        timeout=UI_TIMEOUT_MS
    )
    expect(page.get_by_text(f"Missing ({21 - materialized})", exact=True)).to_be_visible(
        timeout=UI_TIMEOUT_MS
    )
    expect(page.get_by_text("Failed (0)", exact=True)).to_be_visible(timeout=UI_TIMEOUT_MS)
    for key in ("040", "043", "100"):
        expect(page.get_by_title(key, exact=True).first).to_be_visible(timeout=UI_TIMEOUT_MS)
    shot(page, name)


def launch_043(page: Page, stack: Stack, shot: Callable[[Page, str], Path]) -> str:
    """Materialize raw_products and products for 043 from the ingestion group's page (what
    `rakuten load-data` runs); returns the run id."""
    page.goto(f"{stack.dagster_url}/locations/rakuten_assets/asset-groups/ingestion")
    page.locator("button", has_text="Materialize all").click(timeout=UI_TIMEOUT_MS)
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_text("Launch runs to materialize 2 assets")).to_be_visible(
        timeout=UI_TIMEOUT_MS
    )
    dialog.get_by_text("Select a partition or create one").click(timeout=UI_TIMEOUT_MS)
    page.get_by_placeholder("Filter partitions").fill("043")
    page.get_by_title("043", exact=True).last.click(timeout=UI_TIMEOUT_MS)
    # Close the partition picker.
    dialog.get_by_text("Launch runs to materialize 2 assets").click()
    expect(dialog.get_by_text("1 partition", exact=True)).to_be_visible(timeout=UI_TIMEOUT_MS)
    launch = dialog.get_by_role("button", name="Launch 1 run")
    expect(launch).to_be_enabled(timeout=UI_TIMEOUT_MS)
    shot(page, "dagster-launch-043")
    launch.click()
    toast = page.get_by_text(re.compile(r"Launched run [0-9a-f]{8}"))
    expect(toast).to_be_visible(timeout=UI_TIMEOUT_MS)
    prefix = re.search(r"Launched run ([0-9a-f]{8})", toast.inner_text())
    assert prefix is not None
    shot(page, "dagster-launched-043")
    (run,) = [r for r in runs_of_partition(stack, "043") if r["runId"].startswith(prefix[1])]
    tags = {t["key"]: t["value"] for t in run["tags"]}
    assert tags.get("dagster/from_ui") == "true", tags
    return run["runId"]


def wait_for_run(stack: Stack, run_id: str) -> None:
    def finished() -> str | None:
        data = graphql(
            stack,
            "query ($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }",
            {"id": run_id},
        )
        status = data["runOrError"]["status"]
        return status if status in ("SUCCESS", "FAILURE", "CANCELED") else None

    status = wait_until(finished, RUN_TIMEOUT_S, f"run {run_id} to finish", interval=2)
    assert status == "SUCCESS", (
        f"run {run_id} ended {status}:\n{stack.services.log_tail('dagster', 60)}"
    )


def test_demo_and_its_uis_in_a_browser(chromium: str, stack: Stack) -> None:
    shot = Screenshots()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=True)
        context = browser.new_context(viewport=VIEWPORT)
        context.add_init_script(DAGSTER_NO_NUX)
        try:
            check_demo_output(stack)
            page = context.new_page()
            # MLflow first (while `dagster dev` starts): once 043 lands, the
            # train_on_new_partition sensor trains it and may move the production alias.
            check_mlflow(page, stack, shot)

            wait_for_dagster(stack)
            check_asset_graph(page, stack, shot)
            check_partitions(page, stack, shot, 1, "dagster-products-partitions")

            started_at = time.monotonic()
            run_id = launch_043(page, stack, shot)
            wait_for_run(stack, run_id)
            page.goto(f"{stack.dagster_url}/runs/{run_id}")
            expect(page.get_by_text("Success", exact=True).first).to_be_visible(
                timeout=UI_TIMEOUT_MS
            )
            shot(page, "dagster-run-043-success")
            print(f"043 loaded from the UI in {time.monotonic() - started_at:.0f} s")

            status = json.loads(stack.rakuten("status", "--json"))
            assert status["loaded_partitions"] == ["040", "043"], status["loaded_partitions"]
            (load,) = [entry for entry in status["loads"] if entry["partition_key"] == "043"]
            assert load["dagster_run_id"] == run_id
            assert load["batch_name"] == "week_2" and load["rows_added"] > 0, load

            check_partitions(page, stack, shot, 2, "dagster-products-partitions-after-043")
            check_demo_again(stack)
        except BaseException:
            shot.failure(context)
            raise
        finally:
            context.close()
            browser.close()
