# The two commands a user needs: `make demo` (no servers) and `make test` (starts Redis, Cassandra, Kafka).
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
PYTEST_ARGS ?=
# Every recipe (and what it starts: Ray, its jobs, the services) runs with the venv first on PATH, from any shell.
export VIRTUAL_ENV := $(abspath $(VENV))
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: install demo test test-unit services-up services-down services-status bench lint clean

# A venv without a working pip (an interrupted first `make`) is made again; a missing Python or venv module is
# one line that names the Debian package to install.
$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found: apt-get install python3.11 python3.11-venv (or make PYTHON=python3.x)" >&2; exit 2; }
	@$(PYTHON) -c 'import venv, ensurepip' 2>/dev/null || { echo "error: $(PYTHON) has no venv module: apt-get install python3.11-venv" >&2; exit 2; }
	@$(BIN)/python -m pip --version >/dev/null 2>&1 || { rm -rf $(VENV) && echo "$(PYTHON) -m venv $(VENV)" && $(PYTHON) -m venv $(VENV); }
	$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip uv
	$(BIN)/uv pip install -q --python $(BIN)/python -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

demo: install
	$(BIN)/ma-ray demo

# Starts the real services, runs every test, and stops the services again (KEEP_SERVICES=1 leaves them up).
test: install
	$(BIN)/ruff check ma_ray actors apps tests bench clusters
	$(BIN)/mypy
	@set -e; \
	if [ "$${KEEP_SERVICES:-0}" != "1" ]; then trap '$(BIN)/ma-ray services down' EXIT; fi; \
	$(BIN)/ma-ray services up; \
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-unit: install
	$(BIN)/python -m pytest -m unit $(PYTEST_ARGS)

services-up: install
	$(BIN)/ma-ray services up

services-down: install
	$(BIN)/ma-ray services down

services-status: install
	$(BIN)/ma-ray services status

bench: install
	$(BIN)/ma-ray services up
	@set -e; for script in bench/[!_]*.py; do echo "== $$script"; $(BIN)/python $$script; done

lint: install
	$(BIN)/ruff check ma_ray actors apps tests bench clusters
	$(BIN)/ruff format --check ma_ray actors apps tests bench clusters
	$(BIN)/mypy

clean:
	-$(BIN)/ma-ray services down
	rm -rf .ma_ray .pytest_cache .ruff_cache .mypy_cache
