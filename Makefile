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

.PHONY: help setup install synth-data init-db load-data status generate-dataset train-model \
        train-model-promote models mlflow-ui demo run-ui test test-fast lint format bench-ingest \
        bench-train bench-serve bench-drift serve export-inference-log drift simulate-traffic clean

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[1m%-18s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

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

train-model: install ## Train on the latest loaded partition; register as challenger
	$(RUN) train

train-model-promote: install ## Train, then promote if the champion/challenger rule says so
	$(RUN) train --promote

models: install ## Registered model versions, aliases, metrics, production history
	$(RUN) models

mlflow-ui: install ## MLflow UI of the embedded store on http://127.0.0.1:5000
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/.rakuten/mlflow.db \
		--host 127.0.0.1 --port 5000

demo: setup init-db ## The main job: install, generate data, load 40%, train, promote
	$(RUN) train --promote
	$(RUN) status
	$(RUN) models

serve: install ## Serve the production model (LitServe) on http://127.0.0.1:8000 (/docs, /metrics)
	$(RUN) serve --host 127.0.0.1 --port 8000 --workers $(or $(WORKERS),2)

export-inference-log: install ## Write the inference log to data/monitoring/inference_log.csv
	$(RUN) export-inference-log

drift: install ## Materialize drift_metrics: live traffic vs the production model's training data
	$(RUN) drift

simulate-traffic: install ## Send 500 requests to the server (SHIFT=none|length|category|language)
	$(RUN) simulate-traffic --shift $(or $(SHIFT),none)

run-ui: setup ## Start the Dagster UI (dagster dev) on http://127.0.0.1:3000
	$(BIN)/dagster dev -h 127.0.0.1 -p 3000

test: install ## Run the whole test suite (needs PostgreSQL at 127.0.0.1:5432)
	$(BIN)/pytest

test-fast: install ## Tests without the slow end-to-end ones
	$(BIN)/pytest -m "not slow"

lint: install ## ruff lint and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install ## Format and fix with ruff
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench-ingest: install ## Benchmark loading 100% into PostgreSQL vs one INSERT at a time
	$(BIN)/python -m rakuten_assets.benchmarks.ingest

bench-train: install ## Benchmark dataset + training on 100% vs the seed configuration
	$(BIN)/python -m rakuten_assets.benchmarks.train

bench-serve: install ## Load-test the server with wrk (c=1/8/32, batch) vs plain FastAPI + uvicorn
	$(BIN)/python -m rakuten_assets.benchmarks.serve

bench-drift: install ## Drift computation over 100,000 logged predictions vs a row-by-row version
	$(BIN)/python -m rakuten_assets.benchmarks.drift

clean: ## Remove the embedded databases, Dagster and MLflow storage, generated data (not .venv)
	rm -rf .rakuten/dagster .rakuten/rakuten.db* .rakuten/mlflow.db .rakuten/mlartifacts \
		.rakuten/bench data/raw
