# Rakuten product classification on Dagster. `make help` lists the targets.
# Every target runs from the repository root with the project's locked environment (.venv).

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
# uv installs and locks the environment; bootstrapped into .rakuten/tools when not on PATH.
UV := $(shell command -v uv 2>/dev/null || echo $(CURDIR)/.rakuten/tools/bin/uv)
VENV := $(CURDIR)/.venv
BIN := $(VENV)/bin
RUN := $(BIN)/rakuten

# One persistent Dagster instance for the CLI, make and `dagster dev`: the top-level dagster.yaml.
export DAGSTER_HOME := $(CURDIR)
DATA_DIR := $(or $(RAKUTEN_DATA_DIR),data/raw)

# Ports of the local stack (make demo / start): override like `make demo SERVING_PORT=8080`.
DAGSTER_PORT ?= 3000
MLFLOW_PORT ?= 5000
SERVING_PORT ?= 8000
WORKERS ?= 2
PORTS := --dagster-port $(DAGSTER_PORT) --mlflow-port $(MLFLOW_PORT) --serving-port $(SERVING_PORT) \
         --workers $(WORKERS)

.PHONY: help setup install synth-data synth-report generate-data init-db load-data status generate-dataset \
        train-model train-model-promote models evaluations mlflow-ui demo demo-stop start stop restart ps \
        check-health logs logs-api logs-mlflow logs-dagster test-api run-ui test test-fast check-defs lint \
        format bench bench-ingest bench-train bench-serve bench-drift serve export-inference-log \
        drift simulate-traffic compose-config clean

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[1m%-22s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(CURDIR)/.rakuten/tools/bin/uv:
	$(PYTHON) -m venv $(CURDIR)/.rakuten/tools
	$(CURDIR)/.rakuten/tools/bin/pip install --quiet uv

$(VENV)/.installed: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen
	@touch $@

install: $(VENV)/.installed ## Install the locked environment into .venv (uv)

.env:
	@printf 'DAGSTER_HOME=%s\n' "$(CURDIR)" > .env
	@echo "wrote .env (DAGSTER_HOME for plain \`dagster dev\`)"

setup: install .env ## Install, and write .env so plain `dagster dev` uses the project instance

synth-data: install ## Generate the default data (84,916 + 13,812 listings, seed 42) into data/raw
	$(RUN) synth

generate-data: synth-data ## Same as synth-data

synth-report: install ## Realism report of data/raw: figures beside the real set's, shortcuts, probe
	$(RUN) synth --report

$(DATA_DIR)/X_train_update.csv: | $(VENV)/.installed
	$(RUN) synth

init-db: install $(DATA_DIR)/X_train_update.csv ## Create the schema and load 40% (partition 040) through Dagster
	$(RUN) init-db

load-data: install ## Load the next +3% partition through Dagster
	$(RUN) load-data

status: install ## Loaded percentage, rows per class, load history
	$(RUN) status

generate-dataset: install ## Build the balanced dataset of the latest loaded partition
	$(RUN) dataset

train-model: install ## Train on the latest loaded partition; register as challenger (PRESET=seed)
	$(RUN) train --preset $(or $(PRESET),default)

train-model-promote: install ## Train, then promote if the champion/challenger rule says so
	$(RUN) train --promote --preset $(or $(PRESET),default)

models: install ## Registered model versions, aliases, metrics, production history
	$(RUN) models

evaluations: install ## The production model graded on each new partition (before training on it)
	$(RUN) evaluations

mlflow-ui: install ## MLflow UI in the foreground (`make start` runs it in the background)
	$(BIN)/mlflow server --backend-store-uri sqlite:///$(CURDIR)/.rakuten/mlflow.db \
		--host 127.0.0.1 --port $(MLFLOW_PORT) --workers 1

demo: setup ## THE main job: data, 040, a production model, then Dagster :3000, MLflow :5000, API :8000
	$(RUN) demo $(PORTS)

demo-stop: stop ## Stop what `make demo` started

start: install ## Start Dagster UI, MLflow UI and the model server in the background
	$(RUN) stack start $(PORTS)

stop: install ## Stop the background services (by pid, with every process they started)
	$(RUN) stack stop

restart: install ## Stop, then start the background services
	$(RUN) stack start --restart $(PORTS)

ps: install ## The background services: pid, URL, health
	$(RUN) stack ps

check-health: install ## Ask each service's health endpoint (exit 1 when one is down)
	$(RUN) stack health

logs: install ## Last lines of every service's log (FOLLOW=1 to keep printing)
	$(RUN) stack logs $(if $(FOLLOW),--follow)

logs-api: install ## Last lines of the model server's log
	$(RUN) stack logs serving $(if $(FOLLOW),--follow)

logs-mlflow: install ## Last lines of the MLflow UI's log
	$(RUN) stack logs mlflow $(if $(FOLLOW),--follow)

logs-dagster: install ## Last lines of dagster dev's log
	$(RUN) stack logs dagster $(if $(FOLLOW),--follow)

test-api: install ## Check the running model server: health, info, predictions, bad input, metrics
	$(RUN) test-api --url http://127.0.0.1:$(SERVING_PORT)

serve: install ## Serve the production model in the foreground on :8000 (/docs, /metrics)
	$(RUN) serve --host 127.0.0.1 --port $(SERVING_PORT) --workers $(WORKERS)

export-inference-log: install ## Write the inference log to data/monitoring/inference_log.csv
	$(RUN) export-inference-log

drift: install ## Materialize drift_metrics: live traffic vs the production model's training data
	$(RUN) drift

simulate-traffic: install ## Send 500 requests to the server (SHIFT=none|length|category|language, FEEDBACK=0-1: share corrected)
	$(RUN) simulate-traffic --shift $(or $(SHIFT),none) --feedback $(or $(FEEDBACK),0)

run-ui: setup ## The Dagster UI (dagster dev) in the foreground on http://127.0.0.1:3000
	$(BIN)/dagster dev -h 127.0.0.1 -p $(DAGSTER_PORT)

test: install ## Every test tier (CI); installs the Debian tools the e2e tests start (needs PostgreSQL)
	deploy/install-test-tools.sh
	$(BIN)/pytest

test-fast: install ## Unit and database tests only (no servers, no browser): under 2 minutes
	$(BIN)/pytest rakuten_assets_tests/unit rakuten_assets_tests/db

check-defs: install ## dg check defs, then dg list defs: the code location loads, and what it holds
	$(BIN)/dg check defs
	$(BIN)/dg list defs

lint: install ## ruff lint and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install ## Format and fix with ruff
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: bench-ingest bench-train bench-serve bench-drift ## Every benchmark, one after the other

compose-config: install ## Validate deploy/docker-compose.yml with Docker Compose v2 (no daemon needed)
	$(BIN)/docker-compose -f deploy/docker-compose.yml --env-file deploy/.env.example config --quiet
	@echo "deploy/docker-compose.yml is valid"

bench-ingest: install ## Benchmark loading 100% into PostgreSQL vs one INSERT at a time
	$(BIN)/python -m rakuten_assets.benchmarks.ingest

bench-train: install ## Benchmark dataset + training on 100% vs the seed configuration
	$(BIN)/python -m rakuten_assets.benchmarks.train

bench-serve: install ## Load-test the server with wrk (c=1/8/32, batch) vs plain FastAPI + uvicorn
	$(BIN)/python -m rakuten_assets.benchmarks.serve

bench-drift: install ## Drift computation over 100,000 logged predictions vs a row-by-row version
	$(BIN)/python -m rakuten_assets.benchmarks.drift

clean: ## Stop the services, remove the embedded databases, Dagster/MLflow storage, generated data
	-@[ -x $(RUN) ] && $(RUN) stack stop
	rm -rf .rakuten/dagster .rakuten/rakuten.db* .rakuten/mlflow.db .rakuten/mlartifacts \
		.rakuten/bench .rakuten/run .rakuten/logs .rakuten/serving data/raw data/monitoring
