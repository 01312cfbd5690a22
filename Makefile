# crmlens — the two entry points are `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_CUSTOMERS ?= 20000
BENCH_CUSTOMERS ?= 1000000

.PHONY: demo test lint format bench docs install install-test system-test-deps clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# re-install only when the package metadata changes
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(VENV)/.installed $@

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test system-test-deps

# Debian packages the tests need, installed with apt-get when running as root (CI, fresh machines).
# Java for the Spark parity tests (PySpark 4 needs Java 17+), Chromium for the browser tests,
# PostgreSQL for the database-source tests (the fixtures start their own server on loopback), a
# Chinese font so the dashboard screenshots show characters, not boxes
TEST_APT_PACKAGES ?= openjdk-17-jre-headless chromium postgresql fonts-wqy-microhei
system-test-deps:
	@missing=""; for p in $(TEST_APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else echo "Please install:$$missing (sudo apt-get install$$missing)"; exit 1; fi; \
	fi

demo: install
	$(BIN)/crmlens demo --customers $(DEMO_CUSTOMERS)

test: install-test lint
	$(BIN)/python -m pytest

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.installed-test
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# generation + load first (it caches the export the others reuse), then each layer's own bench
bench: $(VENV)/.installed-test
	$(BIN)/python bench/run.py --customers $(BENCH_CUSTOMERS)
	$(BIN)/python bench/bench_metrics.py --customers $(BENCH_CUSTOMERS)
	$(BIN)/python bench/bench_rfm.py --customers $(BENCH_CUSTOMERS)
	$(BIN)/python bench/bench_clv.py --customers $(BENCH_CUSTOMERS)
	$(BIN)/python bench/bench_build.py --customers $(BENCH_CUSTOMERS)
	$(BIN)/python bench/bench_api.py --customers $(BENCH_CUSTOMERS)
	$(BIN)/python bench/bench_web.py --customers $(BENCH_CUSTOMERS)

docs: install
	$(BIN)/crmlens docs

clean:
	rm -rf $(VENV) demo-data crmlens.duckdb crmlens.duckdb.wal bench/.cache bench/results tests/artifacts
