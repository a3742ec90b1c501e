# AUC: audio (environmental sound) classification on ESC-50, 50 classes; test =
# fold 1. DATA: the ESC-50 folder (audio/, meta/esc50.csv).
# Data and settings only; the rules are in mk/experiment.mk. DATASETS.md's row: AUC.
DATASET := esc50
SYNTH_CORPUS :=
# Audio at the files' own rates and channel counts: sp-quantize resamples and mixes down.
MANIFEST_OPTS ?= --any-rate
METRIC := accuracy
# SpeechPrompt v2's task_batch_size.
BATCH_SIZE ?= 4
