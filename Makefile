# Warden: `make help` lists the targets.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install test-tools run test unit integration chaos bench bench-quick lint up down clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; Warden needs Python 3.11" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $(STAMP)

install: $(STAMP) ## create the virtualenv and install Warden with its test tools

test-tools: ## install Debian's chromium and prometheus when missing (the browser and alert-rule tests drive them)
	@sh scripts/test-tools.sh

run: $(STAMP) ## start broker, Redis, worker and simulator; show the live enforcement feed (Ctrl-C stops all)
	$(BIN)/warden run

test: $(STAMP) test-tools ## run the whole suite: unit, then integration against an embedded Tansu broker
	$(BIN)/python -m pytest tests -q --durations=15

unit: $(STAMP) test-tools ## only the unit tests (no broker)
	$(BIN)/python -m pytest tests/unit -q

integration: $(STAMP) test-tools ## only the broker-backed tests
	$(BIN)/python -m pytest tests/integration -q

chaos: $(STAMP) ## the full chaos trials (decisions under joins, kills, pauses; both clocks), a 60 s broker stall, 10,000 fuzzed records
	$(BIN)/python -m tests.chaos
	WARDEN_STALL_SECONDS=60 WARDEN_FUZZ_RECORDS=10000 $(BIN)/python -m pytest -q tests/integration/test_faults.py

bench: $(STAMP) ## the full benchmark (figures also in bench.json)
	$(BIN)/warden bench --json bench.json

bench-quick: $(STAMP) ## the benchmark's quick mode (under 2 minutes)
	$(BIN)/warden bench --quick

lint: $(STAMP) ## ruff, mypy and the import contracts (import-linter)
	$(BIN)/pip install --quiet -e '.[test,lint]'
	$(BIN)/ruff check schemas rules tables streams agents cli stack simulator feed bench web tests
	$(BIN)/mypy schemas rules tables streams agents cli stack simulator feed bench web
	$(BIN)/lint-imports

up: $(STAMP) ## start the embedded stack in the background
	$(BIN)/warden up --detach

down: $(STAMP) ## stop what `make up` started
	$(BIN)/warden down

clean: ## remove the virtualenv and local state
	rm -rf $(VENV) .warden
