# NHS trust league tables — `make report` runs the demo quarter; `make test` runs the tests.
# Both set up everything they need first (virtual environment, locked dependencies, Jupyter kernel).
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
KERNEL := $(VENV)/share/jupyter/kernels/leaguetables/kernel.json
QUARTER ?= 2025-26-Q4
DEMO   := data/demo/observations.csv

.PHONY: help setup report test test-unit test-e2e lint format lock mutation-gaps demo-data bench bench-rerun bench-small bench-records clean browser-deps spark-deps validate

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-13s %s\n", $$1, $$2}'

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

$(KERNEL): $(STAMP)
	$(BIN)/python -m ipykernel install --sys-prefix --name leaguetables --display-name "Python (leaguetables)" >/dev/null

setup: $(STAMP) $(KERNEL)  ## create .venv, install the locked dependencies, register the Jupyter kernel

$(DEMO): $(STAMP) src/leaguetables/inputs/demo.py config/catalogues/demo.yaml config/demo/metric-models.yaml $(wildcard src/leaguetables/inputs/records/*.py src/leaguetables/inputs/records/*.sql) $(wildcard config/records/*.yaml)
	$(BIN)/python -m leaguetables.inputs.demo
	$(BIN)/python tests/demo_stamp.py  # which code made data/demo: a test session copies it rather than making it again

demo-data: $(DEMO)  ## generate the synthetic demo data (fixed seed) if missing or out of date

report: setup $(DEMO)  ## run the latest demo quarter (movement since the one before is computed from the data) and print the report's path
	$(BIN)/python run_quarter.py $(QUARTER)

AXE    := node_modules/axe-core/axe.min.js
SUDO   := $(shell [ "$$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && echo sudo)

$(AXE): package.json package-lock.json
	@command -v npm >/dev/null 2>&1 || { echo "npm not found: install Node.js (with npm) for the browser tests" >&2; exit 1; }
	npm ci --no-audit --no-fund
	touch $(AXE)

PLAYWRIGHT := $(VENV)/.playwright

# the Python package only (the `test` extra of pyproject.toml): never `playwright install`, the system Chromium is used
$(PLAYWRIGHT): $(STAMP) pyproject.toml
	$(BIN)/python -c "import playwright" 2>/dev/null || $(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(PLAYWRIGHT)

browser-deps: $(AXE) $(PLAYWRIGHT)  ## browser-test dependencies: axe-core (npm ci), playwright (pip, test extra) and, if missing, Debian chromium (apt-get)
	@if [ -x /usr/bin/chromium ] || command -v chromium >/dev/null 2>&1 || command -v google-chrome >/dev/null 2>&1; then :; \
	elif command -v apt-get >/dev/null 2>&1; then \
	  { $(SUDO) apt-get update && $(SUDO) apt-get install -y --no-install-recommends chromium; } || \
	  echo "could not install chromium: tests/test_browser.py will skip" >&2; \
	else echo "chromium not found and apt-get unavailable: tests/test_browser.py will skip" >&2; fi

spark-deps: setup  ## Spark parity-test dependencies: pyspark (the test extra) and, if missing, Java (Debian's openjdk-17-jre-headless)
	@$(BIN)/python -c "import pyspark" 2>/dev/null || $(BIN)/python -m pip install --quiet pyspark
	@if command -v java >/dev/null 2>&1; then :; \
	elif command -v apt-get >/dev/null 2>&1; then \
	  { $(SUDO) apt-get update && $(SUDO) apt-get install -y --no-install-recommends openjdk-17-jre-headless; } || \
	  echo "could not install Java: tests/test_records_spark.py will skip" >&2; \
	else echo "java not found and apt-get unavailable: tests/test_records_spark.py will skip" >&2; fi


# Paths checked by the formatter (ruff format --check) and the import order (ruff check --select I).
FORMAT_PATHS := src tests benchmarks scripts run_quarter.py
LINT_PATHS   := src tests benchmarks scripts run_quarter.py

lint: $(STAMP)  ## ruff (lint, import order, format check), mypy on src/, notebooks stored without outputs
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff check --select I $(FORMAT_PATHS)
	$(BIN)/ruff format --check $(FORMAT_PATHS)
	$(BIN)/mypy
	$(BIN)/nbstripout --verify --keep-id notebooks/*.ipynb

format: $(STAMP)  ## sort imports and format FORMAT_PATHS (make format FORMAT_PATHS="src tests ..." for others)
	$(BIN)/ruff check --select I --fix $(FORMAT_PATHS)
	$(BIN)/ruff format $(FORMAT_PATHS)

# -n 2: the two cores of CI; loadgroup keeps each xdist group (tests/conftest.py) on one worker, in the order given.
# The end-to-end tests that run run_quarter.py without --data read data/demo: $(DEMO) remakes it when its generator
# changed (a stale folder fails test_pipeline.py::test_wrong_arguments_exit_2_with_one_line on its validation).
# PYTHONDONTWRITEBYTECODE cleared: with it set (as some shells and containers do) every process — each xdist worker,
# run_quarter.py, each kernel — compiles the package from source and pytest re-rewrites every test module's
# asserts (~4 CPU-s per worker's collection); bytecode under __pycache__/ (ignored by git) is reused instead.
PYTEST := PYTHONDONTWRITEBYTECODE= $(BIN)/python -m pytest -q -n 2 --dist loadgroup --no-loadscope-reorder --durations=10

test-unit: setup  ## the unit group (pytest -m unit): no pipeline run, notebook, browser or published quarter
	$(PYTEST) -m unit

test-e2e: setup $(DEMO) browser-deps spark-deps  ## the end-to-end group (pytest -m e2e): run_quarter.py, notebooks, the browser
	$(PYTEST) -m e2e

test: setup $(DEMO) browser-deps spark-deps lint  ## lint, then the unit group, then the end-to-end group (each timed)
	@start=$$(date +%s); $(PYTEST) -m unit; rc=$$?; end=$$(date +%s); \
	  echo "unit group: $$((end - start)) s"; [ $$rc -eq 0 ] || exit $$rc; \
	  $(PYTEST) -m e2e; rc=$$?; e2e=$$(date +%s); \
	  echo "unit group: $$((end - start)) s; end-to-end group: $$((e2e - end)) s"; exit $$rc

lock:  ## regenerate requirements.lock from pyproject.toml (Python 3.11, with the test extra) and environment.yml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet pip-tools
	CUSTOM_COMPILE_COMMAND="make lock" $(BIN)/python -m piptools compile --quiet --extra test --strip-extras \
	  --no-emit-index-url --no-emit-find-links --output-file requirements.lock pyproject.toml
	$(BIN)/python scripts/environment_from_lock.py

mutation-gaps: setup  ## apply each known one-line bug (mutant) and check that its test fails
	$(BIN)/python scripts/mutation_gaps.py

validate: setup  ## the simulation study of the statistics (config: methodology validation section) -> reports/validation/
	$(BIN)/python -m leaguetables.validate

bench: setup $(DEMO)  ## speed and memory benchmarks (figures for closing notes)
	$(BIN)/python benchmarks/bench_quarter.py

bench-rerun: setup $(DEMO)  ## rerun speed: a no-op rerun and a rerun after one metric's data changed (median of 3)
	$(BIN)/python benchmarks/bench_rerun.py

bench-small: setup  ## the fixed cost of one small run as the end-to-end tests make them: cold, restored from the cache, refused
	$(BIN)/python benchmarks/bench_small_run.py

bench-records: setup  ## record-level indicators at national scale: DuckDB against pandas (generates the extract once)
	$(BIN)/python benchmarks/bench_record_level.py

clean:  ## remove outputs (reports/, with its cache and superseded copies) and generated demo data; keeps .venv
	find reports -mindepth 1 -maxdepth 1 ! -name README.md ! -name .leaguetables-reports -exec rm -rf {} +
	rm -rf data/demo
