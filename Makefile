# pricecalc — two commands do all the set-up on a fresh machine with Python 3.11:
#   make run    virtual environment, install, run the main job on the bundled example
#   make test   install the development extras and run the whole suite (tests, ruff, mypy)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PLUGIN_DIRS := $(patsubst %/pyproject.toml,%,$(wildcard plugins/*/pyproject.toml))
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: run test install lint typecheck bench catalog clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Reinstall only when a project file changed; editable installs pick up code changes.
$(STAMP): $(BIN)/python pyproject.toml $(wildcard plugins/*/pyproject.toml)
	$(BIN)/python -m pip install --quiet -e '.[dev]' $(foreach d,$(PLUGIN_DIRS),-e $(d))
	touch $(STAMP)

install: $(STAMP)

# The main job: the bundled campaign through the command line, then its summary.
# examples/campaign.jsonl holds deliberate mistakes, so `pricecalc batch` exits 1 ("some
# lines were invalid"). That code is accepted only when the output file was completed
# (batch writes it under a temporary name and renames it at the end); any other exit
# code, or a 1 without a finished output, fails the recipe. Running it again replays the
# recorded decisions from out/pricecalc-audit.jsonl: nothing is recorded twice.
run: install
	@mkdir -p out
	@rm -f out/decisions.jsonl
	@$(BIN)/pricecalc --audit out/pricecalc-audit.jsonl --policy examples/policy.toml \
		batch examples/campaign.jsonl --output out/decisions.jsonl; \
	code=$$?; \
	if [ $$code -eq 1 ] && [ -f out/decisions.jsonl ]; then \
		echo "decisions in out/decisions.jsonl (invalid lines are rows with status \"invalid\")"; \
	elif [ $$code -ne 0 ]; then exit $$code; fi
	@# The signed checkpoint of the example store and one record proven (SPEC §9). The key
	@# is made once under out/ for the example only: a real key lives off the store's machine.
	@if [ ! -f out/audit-signing.key ]; then \
		$(BIN)/pricecalc audit keygen example.invalid/pricecalc-run --output out/audit-signing.key \
			> out/audit-verifier.key; fi
	@$(BIN)/pricecalc --audit out/pricecalc-audit.jsonl audit checkpoint \
		--signing-key out/audit-signing.key --output out/checkpoint.txt
	@cat out/checkpoint.txt
	@$(BIN)/pricecalc --audit out/pricecalc-audit.jsonl audit prove 1 \
		--checkpoint out/checkpoint.txt --output out/proof-1.json
	@$(BIN)/pricecalc audit verify-proof out/proof-1.json --verifier-key out/audit-verifier.key
	@# The campaign report, cut from that signed checkpoint (docs/report.md), a screenshot of
	@# it in headless chromium, and one merchant's settlement statement from the same tree.
	@$(BIN)/pricecalc --audit out/pricecalc-audit.jsonl report \
		--checkpoint out/checkpoint.txt --output out/report.html
	@# The screenshot needs Debian's chromium and a CJK font (.ci/run installs both);
	@# without them the page is still written and the step names the packages to install.
	@$(BIN)/python examples/screenshot.py out/report.html out/report.png
	@$(BIN)/pricecalc --audit out/pricecalc-audit.jsonl statement --merchant M-1001 \
		--since 2026-01-01 --until 2099-12-31 --checkpoint out/checkpoint.txt \
		--output out/statement-M-1001.xlsx

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

# The Chinese message catalog (docs/cli.md "Language"): extract the marked messages, merge
# them into the .po (translate the new ones there), compile the .mo that is committed.
CATALOG := pricecalc/locale
catalog: install
	$(BIN)/pybabel extract -F babel.cfg -k msg -k N_ --no-location --sort-output \
		--project pricecalc -o $(VENV)/pricecalc.pot .
	$(BIN)/pybabel update -i $(VENV)/pricecalc.pot -d $(CATALOG) -D pricecalc -l zh_CN \
		--no-fuzzy-matching --ignore-obsolete
	$(BIN)/pybabel compile -d $(CATALOG) -D pricecalc -l zh_CN

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
