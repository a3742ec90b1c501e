# One experiment, stage by stage: the recipe of `make TASK=... predict`.
# Every target is a file under $(EXP); every tool writes its output atomically,
# so an interrupted run resumes where it stopped. Each stage depends on the
# modules of the tool it runs and on the variables it uses (files under
# $(EXP)/.var that change only when the value does), so changing a tool or a
# variable reruns only the stages downstream of it.

EXP ?= exp/$(TASK)
DATA ?=
UNITS ?=
# Make splits words at blanks: a path with a space, tab or newline cannot name a target. Refused here,
# before anything is written (the variables below are recorded under $(EXP)).
tab := $()	$()
define newline


endef
has_blank = $(subst x$1x,,x$(subst $() ,,$(subst $(tab),,$(subst $(newline),,$1)))x)
BLANK_PATHS := $(strip $(foreach v,EXP DATA UNITS,$(if $(call has_blank,$($v)),$v)))
ifneq ($(BLANK_PATHS),)
$(error $(firstword $(BLANK_PATHS)) holds a space, tab or newline, which Make cannot take in a path: give a path without (a symbolic link to it will do))
endif
# One make at a time on an experiment: EXP/.lock is held for the whole run of this make (a dry run, -n or
# -q, takes none), so a second make on the same EXP stops here in one line naming the first; the lock of
# a make that died is free. A sweep cell's make has its own EXP, so its own lock.
ifeq ($(findstring n,$(firstword -$(MAKEFLAGS)))$(findstring q,$(firstword -$(MAKEFLAGS))),)
EXP_LOCK := $(shell $(PYTHON) tools/speechprompt/locks.py hold $(EXP)/.lock --pid $$PPID --what $(EXP) 2>&1)
ifneq ($(EXP_LOCK),)
$(error $(EXP_LOCK))
endif
endif
ENCODER ?= logmel
# Kaldi's front end on the log-mel encoder (add-deltas, per-utterance CMVN, 50 frames/s): far better units.
LOGMEL_OPTS ?= --deltas --cmvn --subsample 2
HUBERT ?=
LAYER ?= 6
KMEANS ?=
# The frame rate KMEANS was fitted at, for a k-means file that does not record it (GSLM's, textlesslib's):
# sp-quantize refuses an encoder of another rate.
KMEANS_RATE ?=
K ?= 100
ULM ?=
DICT ?=
# The uLM sp-pretrain makes when ULM is not given: transformer_lm (fairseq), opt (a transformers OPT, run by
# the hf backbone) or pgslm; BACKBONE: the kind of uLM sp-train gets (fairseq, hf, pgslm: see
# prompting/backbones/ and docs/backbones.md). pgslm is pGSLM's multi-stream transformer_ulm over the units,
# their durations and their F0 (sp-f0 adds F0 to the units); BACKBONE=pgslm also pretrains one.
ULM_ARCH ?= transformer_lm
BACKBONE ?= $(if $(filter opt,$(ULM_ARCH)),hf,$(if $(filter pgslm,$(ULM_ARCH)),pgslm,fairseq))
# pgslm: sp-f0's tracker (praat, fast; yaapt, pGSLM's own), its options, the units' frame rate, and the F0
# bins of a given ULM (a published pGSLM's *_f0_bin.th; one sp-pretrain makes has f0_bins.json beside it).
F0_TRACKER ?= praat
F0_OPTS ?=
UNIT_RATE ?= 50
F0_BINS ?=
ULM_SIZE ?= small
ULM_EPOCHS ?= 8
# auto: by the uLM's width (sp-train --prompt-length auto; the rule is in docs/training.md)
PROMPT_LEN ?= auto
VERBALIZER ?= freq
LINEAR_VERBALIZER ?= 0
DEVICE ?= auto
SEED ?= 1
EPOCHS ?= auto
PATIENCE ?= 10
MAX_TIME ?= 0
MAX_UPDATE ?= 0
# auto: by the uLM's width (sp-train --lr auto; the rule is in docs/training.md)
LR ?= auto
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
# sp-manifest's options: audio at the files' own rates and channel counts (sp-quantize resamples and mixes down).
MANIFEST_OPTS ?= --any-rate
# 1 in a task file: with neither DATA nor UNITS, the corpus is synthesised offline (sp-synth).
SYNTH_CORPUS ?=
BATCH_SIZE ?= 32
# Quantize each split as this many shards, each a target of its own: `make -j N QUANTIZE_SHARDS=N`.
QUANTIZE_SHARDS ?= 1
# Where the heavy stages run (Kaldi's cmd.sh): a prefix before their commands. Empty, they run here;
# on SLURM, e.g. CPU_CMD='srun -c 4 --mem=16G' GPU_CMD='srun --gpus-per-task 1 -c 8 --mem=64G', and
# `make -j N` submits N independent stages at once (docs/scaling.md). CPU_CMD: k-means and quantizing
# on log-mel, the baselines; GPU_CMD: k-means and quantizing with a neural encoder (HuBERT), pretraining,
# prompt tuning, decoding. Not tracked: where a stage runs does not change what it writes.
CPU_CMD ?=
GPU_CMD ?=
FRONT_END_CMD := $(if $(filter logmel,$(ENCODER)),$(CPU_CMD),$(GPU_CMD))
# sp-pretrain and sp-train as NPROC processes (one a GPU with NCCL, or CPU processes with gloo): under
# torchrun here, or as one SLURM step of NPROC tasks with GPU_CMD (it must end with srun's options).
# Batches are per process: an update sees NPROC x UPDATE_FREQ of them, so keep that product to keep
# the effective batch (docs/scaling.md).
NPROC ?= 1
UPDATE_FREQ ?= 1
LAUNCH := $(if $(filter-out 1,$(NPROC)),$(if $(GPU_CMD),$(GPU_CMD) --ntasks $(NPROC),$(BIN)/torchrun --standalone --nproc_per_node $(NPROC) --no-python),$(GPU_CMD))

SP := $(BIN)/sp-
T := tools/speechprompt
# The command of each stage (docs/make.md, "Swapping a stage for your own"): tracked like the
# settings, so a command of your own, here or in a task file, reruns its stage and what follows.
SYNTH ?= $(SP)synth
MANIFEST ?= $(SP)manifest
KMEANS_FIT ?= $(SP)kmeans
QUANTIZE ?= $(SP)quantize
DEDUP ?= $(SP)dedup
F0 ?= $(SP)f0
LMDATA ?= $(SP)lmdata
VERBALIZE ?= $(SP)verbalize
BINARIZE ?= $(SP)binarize
PRETRAIN ?= $(SP)pretrain
TRAIN ?= $(SP)train
SAMPLE ?= $(SP)sample
SCORE ?= $(SP)score
BASELINE ?= $(SP)baseline
SWEEP_TABLE ?= $(SP)sweep
EXPORT ?= $(SP)export
COMMANDS := SYNTH MANIFEST KMEANS_FIT QUANTIZE DEDUP F0 LMDATA VERBALIZE BINARIZE PRETRAIN TRAIN SAMPLE SCORE BASELINE \
            SWEEP_TABLE EXPORT
VAR := $(EXP)/.var
SPLITS := train valid test
.SECONDARY:  # keep every intermediate file: each stage's output is part of the experiment
# ------------------------------------------------------- modules as files
# DEPS.<tool>: every module of the package that sp-<tool> imports, read from the code by mk/deps.py
# (under the environment's own Python) and rebuilt when a module changes (Make remakes an included
# makefile first, dry runs too).
include $(EXP)/.deps.mk
$(EXP)/.deps.mk: mk/deps.py tools/pyproject.toml $(T) $(filter-out %/__pycache__/,$(wildcard $(T)/*/)) $(wildcard $(T)/*.py $(T)/*/*.py) | $(STAMP)
	@mkdir -p $(@D) && $(BIN)/python mk/deps.py tools/pyproject.toml > $@.$$$$.tmp && mv $@.$$$$.tmp $@
# A stage's prerequisites: its tools' modules and the variables of its commands.
uses = $(sort $(foreach t,$1,$(DEPS.$t))) $(call var,$2)

include mk/assets.mk
# BACKBONE=gslm: SpeechPrompt v2's name for the fairseq kind (GSLM's transformer_lm), beside pgslm.
ifeq ($(BACKBONE),gslm)
override BACKBONE := fairseq
endif

# ------------------------------------------------------ variables as files
# $(VAR)/NAME holds the value a stage was last built with. A real run rewrites
# the files whose value changed; a dry run (-n, -q) writes nothing and only
# makes the stages that use a changed value look out of date.
TRACKED := DATA UNITS ASSETS ENCODER LOGMEL_OPTS HUBERT LAYER KMEANS KMEANS_RATE K ULM DICT ULM_ARCH BACKBONE ULM_SIZE ULM_EPOCHS \
           PROMPT_LEN VERBALIZER LINEAR_VERBALIZER SEED EPOCHS PATIENCE MAX_TIME MAX_UPDATE LR LR_SCHEDULE WARMUP \
           SYNTH_SPEAKERS MAX_UNITS CROP METRIC POSITIVE DATASET MANIFEST_OPTS BATCH_SIZE NPROC UPDATE_FREQ \
           F0_TRACKER F0_OPTS UNIT_RATE F0_BINS $(COMMANDS)
quote = '$(subst ','\'',$(strip $1))'
CHANGED := $(foreach v,$(TRACKED),$(shell [ "$$(cat $(VAR)/$v 2>/dev/null)" = $(call quote,$($v)) ] || echo $v))
ifeq ($(findstring n,$(firstword -$(MAKEFLAGS)))$(findstring q,$(firstword -$(MAKEFLAGS)))$(ASSETS_PENDING),)
$(foreach v,$(CHANGED),$(shell mkdir -p $(VAR) && printf '%s\n' $(call quote,$($v)) > $(VAR)/.$v.tmp && mv $(VAR)/.$v.tmp $(VAR)/$v))
else
DIRTY := $(CHANGED)
endif
$(VAR)/%: ;
.PHONY: FORCE
var = $(addprefix $(VAR)/,$1) $(if $(filter $1,$(DIRTY)),FORCE)

# ------------------------------------------------------- 1-4: speech to units
ifeq ($(filter fairseq hf pgslm,$(BACKBONE)),)
$(error BACKBONE=$(BACKBONE): expected fairseq (GSLM's transformer_lm), hf or pgslm)
endif
PGSLM := $(filter pgslm,$(BACKBONE))
PRETRAIN_ARCH := $(if $(PGSLM),pgslm,$(ULM_ARCH))
# pgslm: the units carry their durations, and sp-f0 adds their F0 from the manifest's audio.
DEDUP_ARGS := $(if $(PGSLM),--durations)
F0_STAGE = $(if $(PGSLM),| $(F0) --tracker $(F0_TRACKER) --unit-rate $(UNIT_RATE) $(F0_OPTS) $1 -)
UNITS_DEPS := $(call uses,dedup,DEDUP) $(call var,BACKBONE) $(if $(PGSLM),$(call uses,f0,F0) $(call var,F0_TRACKER F0_OPTS UNIT_RATE))
ifneq ($(UNITS),)
# Units given (GSLM `name|units|label`, SPLIT.txt or SPLIT.txt.gz): the audio stages are skipped.
# Repeated lines (duplicate ids) are dropped, counted, by --skip-bad.
units_file = $(firstword $(wildcard $(UNITS)/$1.txt $(UNITS)/$1.txt.gz) $(UNITS)/$1.txt)
ifneq ($(PGSLM),)
# pgslm reads durations and F0, which only a units table of 5 columns (id units label durations f0) has.
UNITS_COLUMNS := $(shell gzip -cdf $(call units_file,train) 2>/dev/null | awk -F'\t' '{print NF; exit}')
ifneq ($(UNITS_COLUMNS),5)
$(error BACKBONE=pgslm reads each unit's duration and F0, and UNITS=$(UNITS) has no durations and F0 columns (id units label durations f0): give DATA= (or the offline corpus) so that sp-dedup --durations and sp-f0 make them, or add them to the units tables yourself)
endif
endif
$(foreach s,$(SPLITS),$(eval $(EXP)/units/$s.tsv: $(call units_file,$s)))
$(EXP)/units/%.tsv: $(UNITS_DEPS) $(call var,UNITS) | $(STAMP)
	$(DEDUP) --skip-bad $(call units_file,$*) -o $@
else
ifeq ($(DATA),)
ifeq ($(SYNTH_CORPUS),)
$(error TASK=$(TASK) has no offline corpus: give DATA=<dataset dir> or UNITS=<units dir>)
endif
CORPUS := $(EXP)/corpus
CORPUS_DONE := $(CORPUS)/testing_list.txt
$(CORPUS_DONE): $(call uses,synth,SYNTH) $(call var,SEED SYNTH_SPEAKERS) | $(STAMP)
	$(SYNTH) --seed $(SEED) --speakers $(SYNTH_SPEAKERS) --force $(CORPUS)
else
# Any layout: the manifests depend on the DATA path (its top folder's time, if it exists) and its value.
CORPUS := $(DATA)
CORPUS_DONE := $(wildcard $(DATA)) $(call var,DATA)
endif

$(addprefix $(EXP)/manifest/,$(addsuffix .tsv,$(SPLITS))) &: $(CORPUS_DONE) $(call uses,manifest,MANIFEST) $(call var,DATASET MANIFEST_OPTS) | $(STAMP)
	$(MANIFEST) $(DATASET) $(CORPUS) $(MANIFEST_OPTS) --out-dir $(EXP)/manifest

ENCODER_ARGS := $(strip --encoder $(ENCODER) $(if $(HUBERT),--checkpoint $(HUBERT) --layer $(LAYER)) $(if $(filter logmel,$(ENCODER)),$(LOGMEL_OPTS)))
KM := $(or $(KMEANS),$(EXP)/km.bin)
$(EXP)/km.bin: $(EXP)/manifest/train.tsv $(call uses,kmeans,KMEANS_FIT) $(call var,ENCODER LOGMEL_OPTS HUBERT LAYER K SEED) | $(STAMP)
	$(FRONT_END_CMD) $(KMEANS_FIT) $(ENCODER_ARGS) -k $(K) --seed $(SEED) --device $(DEVICE) $< -o $@

QUANTIZE_DEPS := $(KM) $(call uses,quantize,QUANTIZE) $(call var,ENCODER LOGMEL_OPTS HUBERT LAYER KMEANS KMEANS_RATE)
QUANTIZE_ARGS := $(strip $(ENCODER_ARGS) $(if $(KMEANS_RATE),--kmeans-rate $(KMEANS_RATE)))
ifeq ($(QUANTIZE_SHARDS),1)
$(EXP)/units/%.tsv: $(EXP)/manifest/%.tsv $(QUANTIZE_DEPS) $(UNITS_DEPS) | $(STAMP)
	$(FRONT_END_CMD) $(QUANTIZE) $(QUANTIZE_ARGS) --kmeans $(KM) --device $(DEVICE) $< | $(strip $(DEDUP) $(DEDUP_ARGS) $(call F0_STAGE,$<)) -o $@
else
# QUANTIZE_SHARDS=N: shard i of a split is its own target, units/shards/SPLIT.i-of-N.tsv (so `make -j N`
# quantizes the shards at once); the shards are contiguous, so joined in order they are the split.
SHARD_IDS := $(shell seq 0 $$(( $(QUANTIZE_SHARDS) - 1 )))
define quantize_shard
$(EXP)/units/shards/%.$1-of-$(QUANTIZE_SHARDS).tsv: $(EXP)/manifest/%.tsv $(QUANTIZE_DEPS) | $(STAMP)
	@mkdir -p $$(@D)
	$(FRONT_END_CMD) $(QUANTIZE) $(QUANTIZE_ARGS) --kmeans $(KM) --device $(DEVICE) --shard $1 --num-shards $(QUANTIZE_SHARDS) $$< -o $$@
endef
$(foreach i,$(SHARD_IDS),$(eval $(call quantize_shard,$i)))
$(EXP)/units/%.tsv: $(foreach i,$(SHARD_IDS),$(EXP)/units/shards/%.$i-of-$(QUANTIZE_SHARDS).tsv) $(EXP)/manifest/%.tsv $(UNITS_DEPS) | $(STAMP)
	cat $(filter %-of-$(QUANTIZE_SHARDS).tsv,$^) | $(strip $(DEDUP) $(DEDUP_ARGS) $(call F0_STAGE,$(EXP)/manifest/$*.tsv)) -o $@
endif
endif

# ----------------------------------------------- 5: LM data, verbalizer, bins
CROP_ARGS := $(if $(MAX_UNITS),--max-units $(MAX_UNITS) --crop $(CROP))
$(EXP)/lm/%.lm: $(EXP)/units/%.tsv $(call uses,lmdata,LMDATA) $(call var,MAX_UNITS CROP) | $(STAMP)
	$(LMDATA) $(CROP_ARGS) $< -o $@

# The uLM's dictionary: DICT (GSLM's dict.txt for a real uLM), else `0 1` ... `K-1 1`, the same form.
BIN_DICT := $(or $(DICT),$(EXP)/dict.txt)
$(EXP)/dict.txt: $(call var,K)
	seq 0 $$(( $(K) - 1 )) | sed 's/$$/ 1/' > $@.tmp && mv $@.tmp $@

# The linear verbalizer learns its own map: labels become class indices (`learnable`).
LINEAR := $(filter 1 yes true,$(LINEAR_VERBALIZER))
$(EXP)/verbalizer.json: $(EXP)/lm/train.lm $(BIN_DICT) $(call uses,verbalize,VERBALIZE) $(call var,VERBALIZER LINEAR_VERBALIZER SEED) | $(STAMP)
	$(VERBALIZE) fit --method $(if $(LINEAR),learnable,$(VERBALIZER)) --seed $(SEED) --dict $(BIN_DICT) $< -o $@

$(EXP)/lm/%.vlm: $(EXP)/lm/%.lm $(EXP)/verbalizer.json $(call uses,verbalize,VERBALIZE) | $(STAMP)
	$(VERBALIZE) apply $(EXP)/verbalizer.json $< -o $@

$(EXP)/data-bin/test.id: $(foreach s,$(SPLITS),$(EXP)/lm/$s.vlm) $(BIN_DICT) $(call uses,binarize,BINARIZE) | $(STAMP)
	$(BINARIZE) --dict $(BIN_DICT) --out $(@D) $(foreach s,$(SPLITS),$s=$(EXP)/lm/$s.vlm)

# ------------------------------------------------------ 6: the unit LM
ifneq ($(ULM),)
ULM_CKPT := $(ULM)
else
# sp-pretrain --arch opt writes a save_pretrained directory; config.json comes last, so it is the target
ULM_CKPT := $(if $(filter opt,$(ULM_ARCH)),$(EXP)/ulm-opt/config.json,$(EXP)/ulm/checkpoint_best.pt)
$(EXP)/ulm/text.%: $(EXP)/units/%.tsv $(call uses,lmdata,LMDATA) $(call var,MAX_UNITS CROP) | $(STAMP)
	$(LMDATA) --no-label $(CROP_ARGS) $< -o $@
$(EXP)/ulm/data-bin/train.id: $(EXP)/ulm/text.train $(EXP)/ulm/text.valid $(BIN_DICT) $(call uses,binarize,BINARIZE) | $(STAMP)
	$(BINARIZE) --dict $(BIN_DICT) --out $(@D) train=$(EXP)/ulm/text.train valid=$(EXP)/ulm/text.valid
$(ULM_CKPT): $(EXP)/ulm/data-bin/train.id $(call uses,pretrain,PRETRAIN) $(call var,ULM_ARCH BACKBONE ULM_SIZE ULM_EPOCHS SEED NPROC UPDATE_FREQ) | $(STAMP)
	$(LAUNCH) $(PRETRAIN) $(<D) $(if $(filter-out transformer_lm,$(PRETRAIN_ARCH)),--arch $(PRETRAIN_ARCH) )--size $(ULM_SIZE) --max-epoch $(ULM_EPOCHS) --update-freq $(UPDATE_FREQ) --seed $(SEED) --device $(DEVICE) --if-settings-differ restart --save-dir $(@D)
endif

# ------------------------------------------- 7-8: prompt tuning, decoding, scores
PROMPT_ARGS := --prompt-length $(PROMPT_LEN) $(if $(LINEAR),--linear-verbalizer)
# The backbone's companion file: GSLM's dict.txt (DICT), or pGSLM's F0 bins (F0_BINS).
# A Hugging Face LM maps units to tokens by its own config.json (sp-train refuses --base-dict for it).
BASE_DICT := $(if $(PGSLM),$(F0_BINS),$(if $(filter hf,$(BACKBONE)),,$(DICT)))
$(EXP)/prompt.pt: $(EXP)/data-bin/test.id $(ULM_CKPT) $(EXP)/verbalizer.json $(call uses,train,TRAIN) $(call var,BACKBONE F0_BINS PROMPT_LEN LINEAR_VERBALIZER EPOCHS PATIENCE MAX_TIME MAX_UPDATE LR LR_SCHEDULE WARMUP SEED BATCH_SIZE NPROC UPDATE_FREQ) | $(STAMP)
	$(LAUNCH) $(TRAIN) $(<D) --base $(ULM_CKPT)$(if $(BASE_DICT), --base-dict $(BASE_DICT)) --backbone $(BACKBONE) $(PROMPT_ARGS) --batch-size $(BATCH_SIZE) --lr $(LR) --lr-schedule $(LR_SCHEDULE) --warmup-updates $(WARMUP) --max-epoch $(EPOCHS) --max-update $(MAX_UPDATE) --max-time $(MAX_TIME) --update-freq $(UPDATE_FREQ) --patience $(PATIENCE) --seed $(SEED) --verbalizer $(EXP)/verbalizer.json --device $(DEVICE) --if-settings-differ restart -o $@

$(EXP)/predictions.jsonl: $(EXP)/prompt.pt $(call uses,sample,SAMPLE) | $(STAMP)
	$(GPU_CMD) $(SAMPLE) $(EXP)/data-bin --split test --prompt $< --verbalizer $(EXP)/verbalizer.json --device $(DEVICE) -o $@

SCORE_ARGS := --metric $(METRIC) $(if $(POSITIVE),--positive '$(POSITIVE)')
$(EXP)/metrics.json: $(EXP)/predictions.jsonl $(call uses,score,SCORE) $(call var,METRIC POSITIVE) | $(STAMP)
	$(SCORE) $< $(SCORE_ARGS) --confusion $(EXP)/confusion.png -o $@

# Baselines on the same split: a tf-idf linear probe on the units, and (from
# audio) a linear probe on log-mel statistics, which needs no units at all.
$(EXP)/baseline/predictions.jsonl: $(EXP)/units/train.tsv $(EXP)/units/test.tsv $(call uses,baseline,BASELINE) | $(STAMP)
	$(CPU_CMD) $(BASELINE) $(EXP)/units/train.tsv $(EXP)/units/test.tsv -o $@

$(EXP)/baseline-logmel/predictions.jsonl: $(EXP)/manifest/train.tsv $(EXP)/manifest/test.tsv $(call uses,baseline,BASELINE) | $(STAMP)
	$(CPU_CMD) $(BASELINE) --features logmel-stats $(EXP)/manifest/train.tsv $(EXP)/manifest/test.tsv -o $@

$(EXP)/%/metrics.json: $(EXP)/%/predictions.jsonl $(call uses,score,SCORE) $(call var,METRIC POSITIVE) | $(STAMP)
	$(SCORE) $< $(SCORE_ARGS) -o $@

# One line per method, the prompt first: `TASK test METRIC VALUE (lower|higher is better)  metrics.json`, the
# prompt's line ending with its backbone (`backbone=fairseq`).
SCORES := $(EXP)/metrics.json $(EXP)/baseline/metrics.json $(if $(UNITS),,$(EXP)/baseline-logmel/metrics.json)
HEADLINE := import json, sys; h = json.load(open(sys.argv[1]))["headline"]; \
            print("%s %.4f (%s is better)" % (h["metric"], h["value"], h["better"]))
$(EXP)/summary.txt: $(SCORES)
	for m in $^; do echo "$(TASK) test $$($(BIN)/python -c '$(HEADLINE)' $$m)  $$m$$([ $$m = $(EXP)/metrics.json ] && echo '  backbone=$(BACKBONE)')"; done > $@.tmp && mv $@.tmp $@
	@cat $@; echo "predictions: $(EXP)/predictions.jsonl  metrics: $(EXP)/metrics.json  confusion: $(EXP)/confusion.png"

# ------------------------------------------------------------ 9: the model bundle
# `make TASK=X export`: the prompt with every part that labels new audio as the chain labelled the
# test split (sp-classify; docs/classify.md): the encoder and its options, the k-means, the crop, the
# uLM and its dict, the verbalizer, the test metrics. Parts fetched by ASSETS are named, not copied.
ifneq ($(filter export,$(MAKECMDGOALS)),)
ifneq ($(UNITS),)
$(error export: with UNITS= the units were made outside the chain, so a bundle cannot make them from audio; export an experiment run from audio)
endif
ifneq ($(QUANTIZE) $(DEDUP) $(LMDATA),$(SP)quantize $(SP)dedup $(SP)lmdata)
$(error export: a bundle makes units as sp-quantize, sp-dedup and sp-lmdata do; QUANTIZE, DEDUP or LMDATA is a command of your own)
endif
endif
$(EXP)/bundle/bundle.json $(EXP)/bundle.tar &: $(EXP)/prompt.pt $(EXP)/verbalizer.json $(EXP)/metrics.json $(KM) $(ULM_CKPT) \
    $(BIN_DICT) $(HUBERT) $(call uses,export,EXPORT) $(call var,ENCODER LOGMEL_OPTS HUBERT LAYER KMEANS KMEANS_RATE MAX_UNITS CROP ASSETS) | $(STAMP)
	$(strip $(EXPORT) $(QUANTIZE_ARGS) --kmeans $(KM) --prompt $(EXP)/prompt.pt --base $(ULM_CKPT) $(if $(DICT),--base-dict $(DICT)) \
	  --verbalizer $(EXP)/verbalizer.json $(CROP_ARGS) --metrics $(EXP)/metrics.json --name $(TASK) \
	  $(addprefix --assets ,$(ASSETS)) -o $(EXP)/bundle --tar $(EXP)/bundle.tar)

predict: $(EXP)/summary.txt
export: $(EXP)/bundle.tar
ulm: $(ULM_CKPT)
units: $(foreach s,$(SPLITS),$(EXP)/units/$s.tsv)

.PHONY: predict export ulm units

include mk/sweep.mk
