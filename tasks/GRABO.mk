# GRABO: spoken commands to a robot (Grabo, KU Leuven), 36 classes `recording1` ...
# `recording36`. DATA: the folder holding `speakers/<spk>/spchdatadir/recording<N>/*.wav`.
# Data and settings only; the rules are in mk/experiment.mk. DATASETS.md's row: GRABO.
DATASET := grabo
SYNTH_CORPUS :=
# Audio at the files' own rates and channel counts: sp-quantize resamples and mixes down.
MANIFEST_OPTS ?= --any-rate
METRIC := accuracy
# SpeechPrompt v2's task_batch_size.
BATCH_SIZE ?= 4
