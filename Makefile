# The two commands of the README: `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint types unit system-tools bench clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
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
