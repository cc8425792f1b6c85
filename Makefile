# pricecalc — two commands do all the set-up on a fresh machine with Python 3.11:
#   make run    virtual environment, install, run the main job on the bundled example
#   make test   install the development extras and run the whole suite (tests, ruff, mypy)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PLUGIN_DIRS := $(patsubst %/pyproject.toml,%,$(wildcard plugins/*/pyproject.toml))
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: run test install lint typecheck bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Reinstall only when a project file changed; editable installs pick up code changes.
$(STAMP): $(BIN)/python pyproject.toml $(wildcard plugins/*/pyproject.toml)
	$(BIN)/python -m pip install --quiet -e '.[dev]' $(foreach d,$(PLUGIN_DIRS),-e $(d))
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/python examples/run_api.py

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)
	$(BIN)/ruff check pricecalc audit plugins tests bench examples
	$(BIN)/mypy
	$(BIN)/mypy $(foreach d,$(PLUGIN_DIRS),$(wildcard $(d)/pricecalc_*)) tests/plugins

lint: install
	$(BIN)/ruff check pricecalc audit plugins tests bench examples

typecheck: install
	$(BIN)/mypy
	$(BIN)/mypy $(foreach d,$(PLUGIN_DIRS),$(wildcard $(d)/pricecalc_*)) tests/plugins

bench: install
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
