# ER: emotion recognition on IEMOCAP, neu / hap (with exc) / ang / sad; test =
# Session 1. DATA: the folder holding Session1 ... Session5. v2 names no batch size
# for ER: the common 32.
# Data and settings only; the rules are in mk/experiment.mk. DATASETS.md's row: ER.
DATASET := iemocap
SYNTH_CORPUS :=
# Audio at the files' own rates and channel counts: sp-quantize resamples and mixes down.
MANIFEST_OPTS ?= --any-rate
METRIC := accuracy
# SpeechPrompt v2's task_batch_size.
BATCH_SIZE ?= 32
