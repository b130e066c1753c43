# evolver: `make run` evolves a model from this checkout; `make test` runs the test suite.
# Both first set up .venv with scripts/bootstrap.sh (a second run skips what is already done).
SHELL := /bin/bash
VENV := .venv
EVOLVER := $(VENV)/bin/evolver
# Per-test limit in seconds (pytest-timeout); the slow end-to-end tests take minutes on 2 CPU cores.
PYTEST_TIMEOUT ?= 900
PYTEST_ARGS ?=
# Files `ruff format --check` holds to the formatter (see [tool.ruff] in pyproject.toml); add a file when it is reworked.
FORMATTED := evolver/store/reader.py evolver/store/connection.py evolver/store/__init__.py evolver/config/layers.py evolver/cli/progress.py \
	evolver/cli/env_cmd.py evolver/provenance.py evolver/levels.py evolver/views/plot.py tests/test_operator.py \
	tests/test_bootstrap.py tests/test_memory.py tests/test_gpu.py evolver/backends/memory.py evolver/training/memory.py \
	evolver/training/ranks.py bench/memory.py bench/plain_loop.py

.PHONY: run test lint bootstrap bootstrap-dev

# `run` evolves the embedded world for three generations with the daemon (state in ./state),
# then prints the lineage. Run it again to go on from where the store stands.
GENERATIONS ?= 3
run: bootstrap
	$(EVOLVER) config check evolver.toml
	$(EVOLVER) run --generations $(GENERATIONS)

# `lint` runs first in `test` (so in CI): ruff's lint rules on the whole tree, its formatter on FORMATTED.
lint: bootstrap-dev
	$(VENV)/bin/ruff check evolver tests bench scripts
	$(VENV)/bin/ruff format --check $(FORMATTED)

test: lint
	$(VENV)/bin/python -m pytest -q -m "not gpu and not vllm" --timeout=$(PYTEST_TIMEOUT) $(PYTEST_ARGS)

bootstrap:
	scripts/bootstrap.sh

bootstrap-dev:
	scripts/bootstrap.sh --dev
