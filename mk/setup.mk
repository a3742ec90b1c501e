# Set-up: .venv/ with the whole stack. Every other target depends on $(STAMP).
# fairseq comes from ve-fairseq==0.12.3 with --no-deps: official 0.12.2 fails on
# Python 3.11, and ve-fairseq's declared deps pull torchaudio and a CUDA torch.
# NO_VENV=1: no .venv/; the python, pytest and sp-* commands are those found on PATH (a machine whose
# stack is installed already, such as tests/gpu_check.sh's), and `setup` does nothing.
PYTHON ?= python3
VENV ?= .venv
ifneq ($(NO_VENV),)
BIN := $(patsubst %/,%,$(dir $(shell command -v sp-train)))
ifeq ($(BIN),)
$(error NO_VENV=$(NO_VENV): no sp-train on PATH)
endif
STAMP :=
else
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

$(STAMP): requirements.txt tools/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -r requirements.txt
	$(BIN)/pip install -q --disable-pip-version-check --no-deps ve-fairseq==0.12.3
	$(BIN)/pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e tools
	touch $@
endif

setup: $(STAMP)

.PHONY: setup
