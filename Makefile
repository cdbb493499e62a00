# `make demo` and `make test` set everything up on a fresh machine (see scripts/setup-venv.sh).
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.tunecard-installed

.PHONY: setup demo test test-fast test-cpus docs clean

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

test-cpus: $(STAMP)  # the suite with oneDNN/ATen held to an AVX-512-bf16 CPU without AMX, then to AVX2 (docs/architecture.md)
	ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16 $(BIN)/python -m pytest
	ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 $(BIN)/python -m pytest

docs: $(STAMP)  # docs/configuration.md from src/tunecard/config.py (tests/test_config_docs.py checks it)
	$(BIN)/python -m tunecard.config --markdown > docs/configuration.md

clean:
	rm -rf $(VENV) runs .pytest_cache .hypothesis
