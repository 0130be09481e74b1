# The README contract: `make demo` and `make test` do all the set-up themselves.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin

.PHONY: demo test check lint typecheck bench clean compiled pure

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[demo]'
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed $(VENV)/.installed-compile

demo: $(VENV)/.installed
	$(BIN)/trackguard demo

test: $(VENV)/.installed-test
	$(BIN)/ruff check src tests bench tools
	$(BIN)/ruff format --check src tests bench tools
	$(BIN)/mypy
	$(BIN)/python -m pytest

# The quick loop while working (< 2 minutes): lint, types and the tests not marked slow or
# browser, on two pytest-xdist workers (most tests wait on loopback I/O). `make test` runs
# everything, in one process, before a merge.
check: $(VENV)/.installed-test
	$(BIN)/ruff check src tests bench tools
	$(BIN)/ruff format --check src tests bench tools
	$(BIN)/mypy
	$(BIN)/python -m pytest -q -n 2 -m "not slow and not browser"

lint: $(VENV)/.installed-test
	$(BIN)/ruff check src tests bench tools
	$(BIN)/ruff format --check src tests bench tools

typecheck: $(VENV)/.installed-test
	$(BIN)/mypy

bench: $(VENV)/.installed-test
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python bench/validate.py

# The compiled core (docs/gateway.md#the-compiled-core): mypyc builds the request path's modules
# as C extensions beside their sources, used by everything this checkout's .venv runs; `make pure`
# removes them. Needs a C compiler and the Python headers.
$(VENV)/.installed-compile: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[demo,compile]'
	touch $@ $(VENV)/.installed

compiled: $(VENV)/.installed-compile
	$(BIN)/python tools/compile_core.py

pure: | $(BIN)/python
	$(BIN)/python tools/compile_core.py --clean

clean:
	$(PYTHON) tools/compile_core.py --clean
	rm -rf $(VENV) build dist .pytest_cache .mypy_cache .ruff_cache
