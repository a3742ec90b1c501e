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
# Kaldi's front end on the log-mel encoder: add-deltas, per-utterance CMVN, 50 frames/s.
# Measured on the demo corpus against the bare fbank (`LOGMEL_OPTS=`): prompt 0.90
# against 0.71, tf-idf units baseline 0.95 against 0.79.
LOGMEL_OPTS ?= --deltas --cmvn --subsample 2
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
PATIENCE ?= 3
LR ?= 0.005
LR_SCHEDULE ?= fixed
WARMUP ?= 0
SYNTH_SPEAKERS ?= 200
# Utterances longer than MAX_UNITS units are cropped to them (CROP: keep the head, center or tail), so that
# `</s> units <s> label` fits the uLM's positions: 1024 for sp-pretrain's uLMs, 3072 for GSLM's hubert100_lm.
MAX_UNITS ?= 1000
CROP ?= center
# The headline metric of summary.txt (accuracy, macro_f1, f1, eer) and the label whose F1/EER is reported.
METRIC ?= accuracy
POSITIVE ?=
MANIFEST_OPTS ?=
BATCH_SIZE ?= 32

SP := $(BIN)/sp-
T := tools/speechprompt
VAR := $(EXP)/.var
SPLITS := train valid test
.SECONDARY:  # keep every intermediate file: each stage's output is part of the experiment
include mk/assets.mk

# ------------------------------------------------------ variables as files
# $(VAR)/NAME holds the value a stage was last built with. A real run rewrites
# the files whose value changed; a dry run (-n, -q) writes nothing and only
# makes the stages that use a changed value look out of date.
TRACKED := DATA UNITS ASSETS ENCODER LOGMEL_OPTS HUBERT LAYER KMEANS K ULM DICT ULM_SIZE ULM_EPOCHS \
           PROMPT_LEN VERBALIZER LINEAR_VERBALIZER SEED EPOCHS PATIENCE LR LR_SCHEDULE WARMUP SYNTH_SPEAKERS
TRACKED += MAX_UNITS CROP METRIC POSITIVE
TRACKED += DATASET MANIFEST_OPTS BATCH_SIZE
CHANGED := $(foreach v,$(TRACKED),$(shell [ "$$(cat $(VAR)/$v 2>/dev/null)" = '$(strip $($v))' ] || echo $v))
ifeq ($(findstring n,$(firstword -$(MAKEFLAGS)))$(findstring q,$(firstword -$(MAKEFLAGS)))$(ASSETS_PENDING),)
$(foreach v,$(CHANGED),$(shell mkdir -p $(VAR) && printf '%s\n' '$(strip $($v))' > $(VAR)/$v))
else
DIRTY := $(CHANGED)
endif
$(VAR)/%: ;
.PHONY: FORCE
var = $(addprefix $(VAR)/,$1) $(if $(filter $1,$(DIRTY)),FORCE)

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
CORPUS_DONE := $(CORPUS)/testing_list.txt
$(CORPUS_DONE): $(T)/synth.py $(call var,SEED SYNTH_SPEAKERS) | $(STAMP)
	$(SP)synth --seed $(SEED) --speakers $(SYNTH_SPEAKERS) --force $(CORPUS)
else
# Any layout: the manifests depend on the DATA path (its top folder's time, if it exists) and its value.
CORPUS := $(DATA)
CORPUS_DONE := $(wildcard $(DATA)) $(call var,DATA)
endif

$(addprefix $(EXP)/manifest/,$(addsuffix .tsv,$(SPLITS))) &: $(CORPUS_DONE) $(T)/manifest.py $(wildcard $(T)/datasets/*.py) $(call var,DATASET MANIFEST_OPTS) | $(STAMP)
	$(SP)manifest $(DATASET) $(CORPUS) $(MANIFEST_OPTS) --out-dir $(EXP)/manifest

ENCODER_ARGS := $(strip --encoder $(ENCODER) $(if $(HUBERT),--checkpoint $(HUBERT) --layer $(LAYER)) $(if $(filter logmel,$(ENCODER)),$(LOGMEL_OPTS)))
KM := $(or $(KMEANS),$(EXP)/km.bin)
$(EXP)/km.bin: $(EXP)/manifest/train.tsv $(T)/kmeans.py $(wildcard $(T)/encoders/*.py) $(call var,ENCODER LOGMEL_OPTS HUBERT LAYER K SEED) | $(STAMP)
	$(SP)kmeans $(ENCODER_ARGS) -k $(K) --seed $(SEED) --device $(DEVICE) $< -o $@

$(EXP)/units/%.tsv: $(EXP)/manifest/%.tsv $(KM) $(T)/quantize.py $(T)/kmeans_model.py $(wildcard $(T)/encoders/*.py) $(T)/dedup.py $(call var,ENCODER LOGMEL_OPTS HUBERT LAYER KMEANS) | $(STAMP)
	$(SP)quantize $(ENCODER_ARGS) --kmeans $(KM) --device $(DEVICE) $< | $(SP)dedup -o $@
endif

# ----------------------------------------------- 5: LM data, verbalizer, bins
CROP_ARGS := $(if $(MAX_UNITS),--max-units $(MAX_UNITS) --crop $(CROP))
$(EXP)/lm/%.lm: $(EXP)/units/%.tsv $(T)/lmdata.py $(call var,MAX_UNITS CROP) | $(STAMP)
	$(SP)lmdata $(CROP_ARGS) $< -o $@

# The uLM's dictionary: DICT (GSLM's dict.txt for a real uLM), else `0 1` ... `K-1 1`, the same form.
BIN_DICT := $(or $(DICT),$(EXP)/dict.txt)
$(EXP)/dict.txt: $(call var,K)
	seq 0 $$(( $(K) - 1 )) | sed 's/$$/ 1/' > $@

# The linear verbalizer learns its own map: labels become class indices (`learnable`).
LINEAR := $(filter 1 yes true,$(LINEAR_VERBALIZER))
$(EXP)/verbalizer.json: $(EXP)/lm/train.lm $(BIN_DICT) $(T)/verbalize.py $(T)/verbalizer.py $(call var,VERBALIZER LINEAR_VERBALIZER SEED) | $(STAMP)
	$(SP)verbalize fit --method $(if $(LINEAR),learnable,$(VERBALIZER)) --seed $(SEED) --dict $(BIN_DICT) $< -o $@

$(EXP)/lm/%.vlm: $(EXP)/lm/%.lm $(EXP)/verbalizer.json | $(STAMP)
	$(SP)verbalize apply $(EXP)/verbalizer.json $< -o $@

$(EXP)/data-bin/test.id: $(foreach s,$(SPLITS),$(EXP)/lm/$s.vlm) $(BIN_DICT) $(T)/binarize.py | $(STAMP)
	$(SP)binarize --dict $(BIN_DICT) --out $(@D) $(foreach s,$(SPLITS),$s=$(EXP)/lm/$s.vlm)

# ------------------------------------------------------ 6: the unit LM
ifneq ($(ULM),)
ULM_CKPT := $(ULM)
else
ULM_CKPT := $(EXP)/ulm/checkpoint_best.pt
$(EXP)/ulm/text.%: $(EXP)/units/%.tsv $(T)/lmdata.py $(call var,MAX_UNITS CROP) | $(STAMP)
	$(SP)lmdata --no-label $(CROP_ARGS) $< -o $@
$(EXP)/ulm/data-bin/train.id: $(EXP)/ulm/text.train $(EXP)/ulm/text.valid $(BIN_DICT) $(T)/binarize.py | $(STAMP)
	$(SP)binarize --dict $(BIN_DICT) --out $(@D) train=$(EXP)/ulm/text.train valid=$(EXP)/ulm/text.valid
$(ULM_CKPT): $(EXP)/ulm/data-bin/train.id $(T)/pretrain.py $(call var,ULM_SIZE ULM_EPOCHS SEED) | $(STAMP)
	$(SP)pretrain $(<D) --size $(ULM_SIZE) --max-epoch $(ULM_EPOCHS) --seed $(SEED) --device $(DEVICE) --save-dir $(@D)
endif

# ------------------------------------------- 7-8: prompt tuning, decoding, scores
PROMPT_ARGS := --prompt-length $(PROMPT_LEN) $(if $(LINEAR),--linear-verbalizer)
$(EXP)/prompt.pt: $(EXP)/data-bin/test.id $(ULM_CKPT) $(EXP)/verbalizer.json $(T)/train.py $(call var,PROMPT_LEN LINEAR_VERBALIZER EPOCHS PATIENCE LR LR_SCHEDULE WARMUP SEED BATCH_SIZE) | $(STAMP)
	$(SP)train $(<D) --base $(ULM_CKPT) $(if $(DICT),--base-dict $(DICT)) $(PROMPT_ARGS) --batch-size $(BATCH_SIZE) --lr $(LR) --lr-schedule $(LR_SCHEDULE) --warmup-updates $(WARMUP) --max-epoch $(EPOCHS) --patience $(PATIENCE) --seed $(SEED) --verbalizer $(EXP)/verbalizer.json --device $(DEVICE) -o $@

$(EXP)/predictions.jsonl: $(EXP)/prompt.pt $(T)/sample.py | $(STAMP)
	$(SP)sample $(EXP)/data-bin --split test --prompt $< --verbalizer $(EXP)/verbalizer.json --device $(DEVICE) -o $@

SCORE_ARGS := --metric $(METRIC) $(if $(POSITIVE),--positive '$(POSITIVE)')
$(EXP)/metrics.json: $(EXP)/predictions.jsonl $(T)/score.py $(call var,METRIC POSITIVE) | $(STAMP)
	$(SP)score $< $(SCORE_ARGS) --confusion $(EXP)/confusion.png -o $@

# Baselines on the same split: a tf-idf linear probe on the units, and (from
# audio) a linear probe on log-mel statistics, which needs no units at all.
$(EXP)/baseline/predictions.jsonl: $(EXP)/units/train.tsv $(EXP)/units/test.tsv $(T)/baseline.py | $(STAMP)
	$(SP)baseline $(EXP)/units/train.tsv $(EXP)/units/test.tsv -o $@

$(EXP)/baseline-logmel/predictions.jsonl: $(EXP)/manifest/train.tsv $(EXP)/manifest/test.tsv $(T)/baseline.py | $(STAMP)
	$(SP)baseline --features logmel-stats $(EXP)/manifest/train.tsv $(EXP)/manifest/test.tsv -o $@

$(EXP)/%/metrics.json: $(EXP)/%/predictions.jsonl $(T)/score.py $(call var,METRIC POSITIVE) | $(STAMP)
	$(SP)score $< $(SCORE_ARGS) -o $@

# One line per method, the prompt first: `TASK test METRIC VALUE (lower|higher is better)  metrics.json`.
SCORES := $(EXP)/metrics.json $(EXP)/baseline/metrics.json $(if $(UNITS),,$(EXP)/baseline-logmel/metrics.json)
HEADLINE := import json, sys; h = json.load(open(sys.argv[1]))["headline"]; \
            print("%s %.4f (%s is better)" % (h["metric"], h["value"], h["better"]))
$(EXP)/summary.txt: $(SCORES)
	for m in $^; do echo "$(TASK) test $$($(BIN)/python -c '$(HEADLINE)' $$m)  $$m"; done > $@
	@cat $@; echo "predictions: $(EXP)/predictions.jsonl  metrics: $(EXP)/metrics.json  confusion: $(EXP)/confusion.png"

predict: $(EXP)/summary.txt
ulm: $(ULM_CKPT)
units: $(foreach s,$(SPLITS),$(EXP)/units/$s.tsv)

.PHONY: predict ulm units
