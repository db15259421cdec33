# The two commands of the README: `make demo` and `make test`.
# `make demo` installs the runtime dependencies only; `make test` adds the test extras
# (pytest, Playwright, schemathesis, ruff, mypy...) on top, in the same venv.
VENV ?= .venv
PY := $(VENV)/bin/python
RUNTIME_STAMP := $(VENV)/.installed-runtime
STAMP := $(VENV)/.installed

.PHONY: demo test lint types unit system-tools bench clean

$(PY):
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(RUNTIME_STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q -e .
	touch $(RUNTIME_STAMP)

$(STAMP): pyproject.toml $(RUNTIME_STAMP)
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

demo: $(RUNTIME_STAMP)
	$(VENV)/bin/vault-drift demo

system-tools:
	./scripts/install-system-tools

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports --no-cache

types: $(STAMP)
	$(VENV)/bin/mypy

unit: $(STAMP)
	$(VENV)/bin/pytest

# Everything CI runs: lint, types, unit, integration, promtool, Prometheus and browser tests.
test: $(STAMP) system-tools lint types unit

# Long runs: chaos soak and 50 crash rounds (see docs/reliability.md).
test-long: $(STAMP) system-tools
	VAULT_DRIFT_LONG=1 $(VENV)/bin/pytest -m slow

bench: $(STAMP)
	$(PY) -m bench.all

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
