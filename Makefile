# SpeechPrompt: prompt tuning of a frozen unit LM, as a chain of small tools.
#   make setup            create .venv/ with the stack
#   make test             run the tests, without the whole-chain ones marked slow (minutes)
#   make test-slow        run the slow ones (.ci/run runs both)
#   make bench            print the benchmarks (ratios measured side by side)
#   make gpu-check        the GPU check, one line per item (tests/gpu_check.sh; GPU parts skipped without CUDA)
#   make TASK=SCR predict run a whole experiment (see README.md)
#   make TASK=SCR export  its model bundle, exp/SCR/bundle.tar, for sp-classify (see docs/classify.md)
#   make TASK=SCR sweep SWEEP='LR=3e-2,1e-2 PROMPT_LEN=5,10'  tune prompts on a grid, pick by valid
# The recipe needs GNU Make 4.3 or newer (grouped targets, `&:`): an older one stops here, in one line.
MAKE_MAJOR := $(word 1,$(subst ., ,$(MAKE_VERSION)))
MAKE_MINOR := $(word 2,$(subst ., ,$(MAKE_VERSION)))
ifneq ($(filter 0 1 2 3,$(MAKE_MAJOR))$(and $(filter 4,$(MAKE_MAJOR)),$(filter 0 1 2,$(MAKE_MINOR))),)
$(error GNU Make $(MAKE_VERSION) is too old: this project needs GNU Make 4.3 or newer)
endif
SHELL := bash
.SHELLFLAGS := -eo pipefail -c
.DELETE_ON_ERROR:
.DEFAULT_GOAL := help
# OpenMP threads that sleep instead of spinning: spinning ones slow k-means many times on a shared CPU.
export OMP_WAIT_POLICY ?= PASSIVE

TASK ?= SCR
include mk/setup.mk
# The experiment (per-task settings, then the generic stages) is read only for experiment goals.
ifneq ($(filter-out setup test test-slow bench gpu-check help,$(MAKECMDGOALS)),)
include tasks/$(TASK).mk
include mk/experiment.mk
endif

help:
	@sed -n 's/^#   //p' Makefile

# TEST_JOBS: pytest-xdist workers (auto: one a CPU core; 0: one process). PYTEST_ARGS: more pytest
# arguments, e.g. PYTEST_ARGS='-k sweep -x'.
TEST_JOBS ?= auto
PYTEST_ARGS ?=
test: $(STAMP)
	$(BIN)/pytest -q -n $(TEST_JOBS) -m 'not slow' $(PYTEST_ARGS) tests

test-slow: $(STAMP)
	$(BIN)/pytest -q -n $(TEST_JOBS) -m slow $(PYTEST_ARGS) tests

bench: $(STAMP)
	@for b in tests/bench_*.py; do $(BIN)/python $$b || exit 1; done

gpu-check:
	bash tests/gpu_check.sh

.PHONY: help test test-slow bench gpu-check
