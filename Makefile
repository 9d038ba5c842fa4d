# bayesmix: `make demo` runs the galaxy demo, `make test` runs the tests.
# Both create .venv with a Python >= 3.12 and install the package first.

SHELL := /bin/bash
VENV := .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# First Python >= 3.12 found: $PYTHON, python3.12/3.13/python3 on PATH, then pyenv's builds.
PYTHON ?= $(shell for p in python3.12 python3.13 python3.14 python3 python $$HOME/.pyenv/versions/3.1[2-9]*/bin/python; do \
	if command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then \
	command -v $$p; break; fi; done)

.PHONY: install demo test test-all lint format benchmarks nuts-study sbc recovery validation-quick clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@if [ -z "$(PYTHON)" ]; then echo "No Python 3.12 or newer was found: install one (for example 'pyenv install 3.12') or run 'make PYTHON=/path/to/python3.12'."; exit 1; fi
	@if [ ! -x $(VPY) ]; then echo "Creating $(VENV) with $(PYTHON)"; $(PYTHON) -m venv $(VENV); fi
	$(VPY) -m pip install --quiet --upgrade pip
	$(VPY) -m pip install --quiet -e '.[test]'
	$(VPY) -m bayesmix.warmup
	@touch $(STAMP)

demo: install
	$(VENV)/bin/bayesmix demo

test: install
	$(VPY) -m pytest -q -m "not slow"

test-all: install
	$(VPY) -m pytest -q

# Speed benchmarks (reports/benchmarks/) and the validation studies (reports/validation/).
benchmarks: install
	$(VPY) -m benchmarks.engines
	$(VPY) -m benchmarks.clustering

nuts-study: install
	$(VPY) -m benchmarks.nuts_study

sbc: install
	$(VPY) -m benchmarks.sbc --jobs 2

recovery: install
	$(VPY) -m benchmarks.recovery --jobs 2

validation-quick: install
	$(VPY) -m benchmarks.sbc --quick
	$(VPY) -m benchmarks.recovery --quick

lint: install
	$(VENV)/bin/ruff check bayesmix tests benchmarks
	$(VENV)/bin/ruff format --check bayesmix tests benchmarks

format: install
	$(VENV)/bin/ruff format bayesmix tests benchmarks

clean:
	rm -rf $(VENV) .pytest_cache
