# Set-up: .venv/ with the whole stack. Every other target depends on $(STAMP).
# fairseq comes from ve-fairseq==0.12.3 with --no-deps: official 0.12.2 fails on
# Python 3.11, and ve-fairseq's declared deps pull torchaudio and a CUDA torch.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

setup: $(STAMP)

$(STAMP): requirements.txt tools/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -r requirements.txt
	$(BIN)/pip install -q --disable-pip-version-check --no-deps ve-fairseq==0.12.3
	$(BIN)/pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e tools
	touch $@

.PHONY: setup
