# LID: language ID on Voxforge (de en es fr it ru), speaker-disjoint 70/10/20 per
# language, at most 1200/300/300 utterances. DATA: the folder of language folders.
# Data and settings only; the rules are in mk/experiment.mk. DATASETS.md's row: LID.
DATASET := voxforge
SYNTH_CORPUS :=
# Audio at the files' own rates and channel counts: sp-quantize resamples and mixes down.
MANIFEST_OPTS ?= --any-rate
METRIC := accuracy
# SpeechPrompt v2's task_batch_size.
BATCH_SIZE ?= 16
