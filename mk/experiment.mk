# One experiment, stage by stage: the recipe of `make TASK=... predict`.
# Every target is a file under $(EXP); every tool writes its output atomically,
# so an interrupted run resumes where it stopped. Each stage depends on the
# module of the tool it runs and on the variables it uses (files under
# $(EXP)/.var that change only when the value does), so changing a tool or a
# variable reruns only the stages downstream of it.

EXP ?= exp/$(TASK)
DATA ?=
UNITS ?=
ENCODER ?= logmel
HUBERT ?=
LAYER ?= 6
KMEANS ?=
K ?= 100
ULM ?=
DICT ?=
ULM_SIZE ?= small
ULM_EPOCHS ?= 20
PROMPT_LEN ?= 5
VERBALIZER ?= freq
LINEAR_VERBALIZER ?= 0
DEVICE ?= auto
SEED ?= 1
EPOCHS ?= 30
SYNTH_SPEAKERS ?= 48

SP := $(BIN)/sp-
T := tools/speechprompt
VAR := $(EXP)/.var
SPLITS := train valid test
.SECONDARY:  # keep every intermediate file: each stage's output is part of the experiment

# ------------------------------------------------------ variables as files
TRACKED := DATA UNITS ENCODER HUBERT LAYER KMEANS K ULM DICT ULM_SIZE ULM_EPOCHS \
           PROMPT_LEN VERBALIZER LINEAR_VERBALIZER SEED EPOCHS SYNTH_SPEAKERS
$(foreach v,$(TRACKED),$(shell mkdir -p $(VAR) && v='$(strip $($v))' && \
  { [ -f $(VAR)/$v ] && [ "$$(cat $(VAR)/$v)" = "$$v" ]; } || printf '%s\n' "$$v" > $(VAR)/$v))
var = $(addprefix $(VAR)/,$1)

# ------------------------------------------------------- 1-4: speech to units
ifneq ($(UNITS),)
# Units given (GSLM `name|units|label`): the audio stages are skipped.
# Repeated lines (duplicate ids) are dropped, counted, by --skip-bad.
$(EXP)/units/%.tsv: $(UNITS)/%.txt $(T)/dedup.py $(call var,UNITS) | $(STAMP)
	$(SP)dedup --skip-bad $< -o $@
else
ifeq ($(DATA),)
ifeq ($(SYNTH_CORPUS),)
$(error TASK=$(TASK) has no offline corpus: give DATA=<dataset dir> or UNITS=<units dir>)
endif
CORPUS := $(EXP)/corpus
$(CORPUS)/testing_list.txt: $(T)/synth.py $(call var,SEED SYNTH_SPEAKERS) | $(STAMP)
	$(SP)synth --seed $(SEED) --speakers $(SYNTH_SPEAKERS) --force $(CORPUS)
else
CORPUS := $(DATA)
endif

$(addprefix $(EXP)/manifest/,$(addsuffix .tsv,$(SPLITS))) &: $(CORPUS)/testing_list.txt $(T)/manifest.py | $(STAMP)
	$(SP)manifest $(DATASET) $(CORPUS) --out-dir $(EXP)/manifest

ENCODER_ARGS := --encoder $(ENCODER) $(if $(HUBERT),--checkpoint $(HUBERT) --layer $(LAYER))
KM := $(or $(KMEANS),$(EXP)/km.bin)
$(EXP)/km.bin: $(EXP)/manifest/train.tsv $(T)/kmeans.py $(T)/encoders.py $(call var,ENCODER HUBERT LAYER K SEED) | $(STAMP)
	$(SP)kmeans $(ENCODER_ARGS) -k $(K) --seed $(SEED) --device $(DEVICE) $< -o $@

$(EXP)/units/%.tsv: $(EXP)/manifest/%.tsv $(KM) $(T)/quantize.py $(T)/encoders.py $(T)/dedup.py $(call var,ENCODER HUBERT LAYER KMEANS) | $(STAMP)
	$(SP)quantize $(ENCODER_ARGS) --kmeans $(KM) --device $(DEVICE) $< | $(SP)dedup -o $@
endif

# ----------------------------------------------- 5: LM data, verbalizer, bins
$(EXP)/lm/%.lm: $(EXP)/units/%.tsv $(T)/lmdata.py | $(STAMP)
	$(SP)lmdata $< -o $@

# The uLM's dictionary: DICT (GSLM's dict.txt for a real uLM), else `0 1` ... `K-1 1`, the same form.
BIN_DICT := $(or $(DICT),$(EXP)/dict.txt)
$(EXP)/dict.txt: $(call var,K)
	seq 0 $$(( $(K) - 1 )) | sed 's/$$/ 1/' > $@

$(EXP)/verbalizer.json: $(EXP)/lm/train.lm $(BIN_DICT) $(T)/verbalize.py $(call var,VERBALIZER SEED) | $(STAMP)
	$(SP)verbalize fit --method $(VERBALIZER) --seed $(SEED) --dict $(BIN_DICT) $< -o $@

$(EXP)/lm/%.vlm: $(EXP)/lm/%.lm $(EXP)/verbalizer.json | $(STAMP)
	$(SP)verbalize apply $(EXP)/verbalizer.json $< -o $@

$(EXP)/data-bin/test.id: $(foreach s,$(SPLITS),$(EXP)/lm/$s.vlm) $(BIN_DICT) $(T)/binarize.py | $(STAMP)
	$(SP)binarize --dict $(BIN_DICT) --out $(@D) $(foreach s,$(SPLITS),$s=$(EXP)/lm/$s.vlm)

# ------------------------------------------------------ 6: the unit LM
ifneq ($(ULM),)
ULM_CKPT := $(ULM)
else
ULM_CKPT := $(EXP)/ulm/checkpoint_best.pt
$(EXP)/ulm/text.%: $(EXP)/units/%.tsv $(T)/lmdata.py | $(STAMP)
	$(SP)lmdata --no-label $< -o $@
$(EXP)/ulm/data-bin/train.id: $(EXP)/ulm/text.train $(EXP)/ulm/text.valid $(BIN_DICT) $(T)/binarize.py | $(STAMP)
	$(SP)binarize --dict $(BIN_DICT) --out $(@D) train=$(EXP)/ulm/text.train valid=$(EXP)/ulm/text.valid
$(ULM_CKPT): $(EXP)/ulm/data-bin/train.id $(T)/pretrain.py $(call var,ULM_SIZE ULM_EPOCHS SEED) | $(STAMP)
	$(SP)pretrain $(<D) --size $(ULM_SIZE) --max-epoch $(ULM_EPOCHS) --seed $(SEED) --device $(DEVICE) --save-dir $(@D)
endif

# ------------------------------------------- 7-8: prompt tuning, decoding, scores
PROMPT_ARGS := --prompt-length $(PROMPT_LEN) $(if $(filter 1 yes true,$(LINEAR_VERBALIZER)),--linear-verbalizer)
$(EXP)/prompt/checkpoint_best.pt: $(EXP)/data-bin/test.id $(ULM_CKPT) $(T)/train.py $(call var,PROMPT_LEN LINEAR_VERBALIZER EPOCHS SEED) | $(STAMP)
	$(SP)train $(<D) --ulm $(ULM_CKPT) $(PROMPT_ARGS) --max-epoch $(EPOCHS) --seed $(SEED) --device $(DEVICE) --save-dir $(@D)

$(EXP)/predictions.jsonl: $(EXP)/prompt/checkpoint_best.pt $(T)/sample.py | $(STAMP)
	$(SP)sample $(EXP)/data-bin --split test --prompt $< --verbalizer $(EXP)/verbalizer.json --device $(DEVICE) -o $@

$(EXP)/metrics.json: $(EXP)/predictions.jsonl $(T)/score.py | $(STAMP)
	$(SP)score $< --confusion $(EXP)/confusion.png -o $@

$(EXP)/baseline/metrics.json: $(EXP)/units/train.tsv $(EXP)/units/test.tsv $(T)/baseline.py $(T)/score.py | $(STAMP)
	$(SP)baseline $(EXP)/units/train.tsv $(EXP)/units/test.tsv -o $(@D)/predictions.jsonl
	$(SP)score $(@D)/predictions.jsonl -o $@

$(EXP)/summary.txt: $(EXP)/metrics.json $(EXP)/baseline/metrics.json
	$(BIN)/python -c 'import json, sys; p, b = (json.load(open(f))["accuracy"] for f in sys.argv[1:]); \
	  print(f"$(TASK) test accuracy {p:.4f} (prompt-tuned uLM) vs {b:.4f} (baseline)")' $^ > $@
	@cat $@; echo "predictions: $(EXP)/predictions.jsonl  metrics: $(EXP)/metrics.json  confusion: $(EXP)/confusion.png"

predict: $(EXP)/summary.txt
ulm: $(ULM_CKPT)
units: $(foreach s,$(SPLITS),$(EXP)/units/$s.tsv)

.PHONY: predict ulm units
