# LT_SCR: Lithuanian speech commands (kolesov93/lt_speech_commands), 13 words,
# `_unknown_` and `_silence_` (labels in NFC UTF-8). DATA: the `dataset` folder.
# Data and settings only; the rules are in mk/experiment.mk. DATASETS.md's row: LT_SCR.
DATASET := lt_speech_commands
SYNTH_CORPUS :=
# Audio at the files' own rates and channel counts: sp-quantize resamples and mixes down.
MANIFEST_OPTS ?= --any-rate
METRIC := accuracy
# SpeechPrompt v2's task_batch_size.
BATCH_SIZE ?= 1
