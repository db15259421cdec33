# The two commands of the README: `make demo` and `make test`.
# `make demo` installs the runtime dependencies only; `make test` adds the test extras
# (pytest, Playwright, schemathesis, ruff, mypy...) on top, in the same venv.
VENV ?= .venv
PY := $(VENV)/bin/python
RUNTIME_STAMP := $(VENV)/.installed-runtime
STAMP := $(VENV)/.installed

GATEWAY := tests/d1/gateway
GATEWAY_STAMP := $(GATEWAY)/node_modules/.installed

.PHONY: demo test lint types unit system-tools node-tools bench clean

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

# workerd's own D1 (miniflare from npm, pinned by the lockfile) for the D1 integration tests.
# Without npm (a developer machine, not root) nothing is installed: those tests skip there
# and fail under CI=true.
node-tools: system-tools $(GATEWAY_STAMP)

$(GATEWAY_STAMP): $(GATEWAY)/package-lock.json
	@if command -v npm >/dev/null; then \
		cd $(GATEWAY) && npm ci --no-audit --no-fund --loglevel=error && touch node_modules/.installed; \
	else echo "npm not found: the workerd D1 tests cannot run (scripts/install-system-tools)"; fi

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports --no-cache

# The whole package as pyproject says; the domain, the service and the store also --strict.
types: $(STAMP)
	$(VENV)/bin/mypy
	$(VENV)/bin/mypy --strict exporter/core exporter/service exporter/vault

# Two pytest workers (pytest-xdist), a test file each at a time: most of the long tests wait on
# real processes (serve, a lease, Prometheus, Chromium), so two overlap well even on 2 cores.
# PYTEST_WORKERS=0 runs them in this process.
PYTEST_WORKERS ?= 2

unit: $(STAMP)
	$(VENV)/bin/pytest -n $(PYTEST_WORKERS) --dist loadfile

# Everything CI runs: lint, types, unit, integration, promtool, Prometheus and browser tests.
test: $(STAMP) system-tools node-tools lint types unit

# Long runs: chaos soak and 50 crash rounds (see docs/reliability.md).
test-long: $(STAMP) system-tools
	VAULT_DRIFT_LONG=1 $(VENV)/bin/pytest -m slow

bench: $(STAMP)
	$(PY) -m bench.all

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache $(GATEWAY)/node_modules
