# The sweep: `make TASK=X sweep SWEEP='LR=3e-2,1e-2,5e-3 PROMPT_LEN=5,10'` tunes a prompt for every
# cell of the grid. A cell is a sub-experiment $(EXP)/sweep/LR=3e-2,PROMPT_LEN=5 that reads this
# experiment's data-bin, verbalizer and uLM (links, and make's --old-file), so per cell only prompt
# tuning and decoding run. $(EXP)/sweep.tsv gets one row per cell; the cell with the best valid
# accuracy is selected (never by test). A cell already run is not run again.

SWEEP ?=
# Only what the prompt stage reads can vary per cell: the units, verbalizer and uLM are shared.
SWEEPABLE := PROMPT_LEN LR LR_SCHEDULE WARMUP EPOCHS PATIENCE MAX_TIME MAX_UPDATE SEED BATCH_SIZE
PROMPT_STAGE_VARS := $(SWEEPABLE) LINEAR_VERBALIZER
comma := ,
sweep_axis = $(foreach v,$(subst $(comma), ,$(lastword $(subst =, ,$1))),$(firstword $(subst =, ,$1))=$v)
sweep_grid = $(if $(word 2,$1),$(foreach a,$(call sweep_axis,$(firstword $1)),$(addprefix $a$(comma),$(call sweep_grid,$(wordlist 2,$(words $1),$1)))),$(call sweep_axis,$1))
SWEEP_NAMES := $(foreach a,$(SWEEP),$(firstword $(subst =, ,$a)))
SWEEP_CELLS := $(call sweep_grid,$(SWEEP))
SWEEP_DIR := $(EXP)/sweep
ifneq ($(filter sweep,$(MAKECMDGOALS)),)
ifeq ($(SWEEP),)
$(error give the grid: SWEEP='LR=3e-2,1e-2 PROMPT_LEN=5,10')
endif
ifneq ($(filter-out $(SWEEPABLE),$(SWEEP_NAMES)),)
$(error SWEEP: $(filter-out $(SWEEPABLE),$(SWEEP_NAMES)) cannot vary per cell (they can: $(SWEEPABLE)))
endif
endif

# Valid predictions: what the sweep selects by (any experiment can make them).
$(EXP)/valid/predictions.jsonl: $(EXP)/prompt.pt $(call uses,sample,SAMPLE) | $(STAMP)
	$(GPU_CMD) $(SAMPLE) $(EXP)/data-bin --split valid --prompt $< --verbalizer $(EXP)/verbalizer.json --device $(DEVICE) -o $@

# Inside a cell (EXP=$(SWEEP_DIR)/CELL): its goal.
sweep-cell: $(EXP)/metrics.json $(EXP)/valid/metrics.json

# A cell reruns when what it reads changes, a module its tools import, their commands, or a
# prompt-stage variable it does not sweep.
$(SWEEP_DIR)/%/valid/metrics.json: $(EXP)/data-bin/test.id $(EXP)/verbalizer.json $(ULM_CKPT) $(BIN_DICT) \
    $(call uses,train sample score,TRAIN SAMPLE SCORE) $(call var,$(filter-out $(SWEEP_NAMES),$(PROMPT_STAGE_VARS))) \
    | $(STAMP)
	mkdir -p $(SWEEP_DIR)/$* && ln -sfn ../../data-bin $(SWEEP_DIR)/$*/data-bin && ln -sfn ../../verbalizer.json $(SWEEP_DIR)/$*/verbalizer.json
	$(MAKE) --no-print-directory EXP=$(SWEEP_DIR)/$* $(subst $(comma), ,$*) ULM=$(abspath $(ULM_CKPT)) DICT=$(abspath $(BIN_DICT)) \
	  --old-file=$(SWEEP_DIR)/$*/data-bin/test.id --old-file=$(SWEEP_DIR)/$*/verbalizer.json --old-file=$(abspath $(ULM_CKPT)) sweep-cell

# The grid as a file, rewritten only when the set of cells changes (so is the table).
SWEEP_LIST := $(SWEEP_DIR)/cells.txt
SWEEP_LISTED := $(shell cat $(SWEEP_LIST) 2>/dev/null)
$(SWEEP_LIST): $(if $(filter-out $(SWEEP_LISTED),$(SWEEP_CELLS))$(filter-out $(SWEEP_CELLS),$(SWEEP_LISTED)),FORCE)
	mkdir -p $(@D) && printf '%s\n' $(SWEEP_CELLS) > $@.tmp && mv $@.tmp $@

$(EXP)/sweep.tsv: $(SWEEP_LIST) $(foreach c,$(SWEEP_CELLS),$(SWEEP_DIR)/$c/valid/metrics.json) \
    $(call uses,sweep,SWEEP_TABLE) | $(STAMP)
	$(SWEEP_TABLE) $(addprefix $(SWEEP_DIR)/,$(SWEEP_CELLS)) -o $@

sweep: $(EXP)/sweep.tsv

.PHONY: sweep sweep-cell
