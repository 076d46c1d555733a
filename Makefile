# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
WORKERS ?= 2
SHARED_DATA ?= $(abspath ../shared/data)
export CAD_DATABASE_URL ?= postgresql://postgres@127.0.0.1:5432/cad
export CAD_REDIS_URL ?= redis://127.0.0.1:6379/0

.PHONY: run test setup services venv console-deps chromium migrate seed lint fmt bench loadtest clean

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -e '.[dev]'
	touch $@

venv: $(BIN)/.installed

services:
	@bash scripts/ensure-services.sh

console-deps:
	@bash scripts/console-deps.sh

chromium:
	@bash scripts/ensure-chromium.sh

migrate: venv services
	$(BIN)/cad migrate

seed: migrate
	$(BIN)/cad seed-demo

setup: venv services console-deps migrate

# API + consoles + relay + engine on http://$(HOST):$(PORT), with simulated units driving.
run: setup seed
	@HOST=$(HOST) PORT=$(PORT) WORKERS=$(WORKERS) BIN=$(BIN) bash scripts/run.sh

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

fmt: venv
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Two processes, a file each at a time: most tests wait on servers, sockets and stores
# (each test has its own database, Redis prefix and ports), so two share the two cores;
# serial, the suite took ~13 minutes here, in two ~9.
test: setup chromium lint
	$(BIN)/pytest -p no:cacheprovider -q -ra --durations=15 -n 2 --dist loadfile < /dev/null

bench: setup
	$(BIN)/python -m bench.run

loadtest: setup seed
	$(BIN)/python -m loadtests.run --duration 120

clean:
	rm -rf $(VENV) console_ui/node_modules console_ui/static/vendor
