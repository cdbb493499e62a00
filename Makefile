# `make demo` and `make test` set everything up on a fresh machine (see scripts/setup-venv.sh).
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.tunecard-installed

.PHONY: setup demo test test-fast docs clean

$(STAMP): pyproject.toml scripts/setup-venv.sh
	VENV=$(VENV) scripts/setup-venv.sh
	touch $@

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/tunecard demo

test: $(STAMP)
	$(BIN)/python -m pytest

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow"

docs: $(STAMP)  # docs/configuration.md from src/tunecard/config.py (tests/test_config_docs.py checks it)
	$(BIN)/python -m tunecard.config --markdown > docs/configuration.md

clean:
	rm -rf $(VENV) runs .pytest_cache .hypothesis
