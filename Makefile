# NHS trust league tables — `make report` runs the demo quarter; `make test` runs the tests.
# Both set up everything they need first (virtual environment, locked dependencies, Jupyter kernel).
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
KERNEL := $(VENV)/share/jupyter/kernels/leaguetables/kernel.json
QUARTER ?= 2025-26-Q4
DEMO   := data/demo/observations.csv

.PHONY: help setup report test demo-data bench clean browser-deps validate

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

$(KERNEL): $(STAMP)
	$(BIN)/python -m ipykernel install --sys-prefix --name leaguetables --display-name "Python (leaguetables)" >/dev/null

setup: $(STAMP) $(KERNEL)  ## create .venv, install the locked dependencies, register the Jupyter kernel

$(DEMO): $(STAMP) src/leaguetables/inputs/demo.py config/catalogues/demo.yaml $(wildcard src/leaguetables/inputs/records/*.py) config/records/synthetic.yaml
	$(BIN)/python -m leaguetables.inputs.demo

demo-data: $(DEMO)  ## generate the synthetic demo data (fixed seed) if missing or out of date

report: setup $(DEMO)  ## run the latest demo quarter (movement since the one before is computed from the data) and print the report's path
	$(BIN)/python run_quarter.py $(QUARTER)

AXE    := node_modules/axe-core/axe.min.js
SUDO   := $(shell [ "$$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && echo sudo)

$(AXE): package.json package-lock.json
	@command -v npm >/dev/null 2>&1 || { echo "npm not found: install Node.js (with npm) for the browser tests" >&2; exit 1; }
	npm ci --no-audit --no-fund
	touch $(AXE)

browser-deps: $(AXE)  ## browser-test dependencies: axe-core (npm ci) and, if missing, Debian chromium (apt-get)
	@if [ -x /usr/bin/chromium ] || command -v chromium >/dev/null 2>&1 || command -v google-chrome >/dev/null 2>&1; then :; \
	elif command -v apt-get >/dev/null 2>&1; then \
	  { $(SUDO) apt-get update && $(SUDO) apt-get install -y --no-install-recommends chromium; } || \
	  echo "could not install chromium: tests/test_browser.py will skip" >&2; \
	else echo "chromium not found and apt-get unavailable: tests/test_browser.py will skip" >&2; fi

test: setup browser-deps  ## run the full test suite
	$(BIN)/python -m pytest -q -n 2

validate: setup  ## the simulation study of the statistics (config: methodology validation section) -> reports/validation/
	$(BIN)/python -m leaguetables.validate

bench: setup $(DEMO)  ## speed and memory benchmarks (figures for closing notes)
	$(BIN)/python benchmarks/bench_quarter.py

clean:  ## remove outputs (reports/, with its cache and superseded copies) and generated demo data; keeps .venv
	find reports -mindepth 1 -maxdepth 1 ! -name README.md ! -name .leaguetables-reports -exec rm -rf {} +
	rm -rf data/demo
