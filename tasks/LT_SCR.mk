# LT_SCR: Lithuanian speech commands (kolesov93/lt_speech_commands), 13 words,
# `_unknown_` and `_silence_` (labels in NFC UTF-8). DATA: the `dataset` folder.
# Data and settings only: the rules are in mk/experiment.mk, the data sets in docs/tasks.md.
DATASET := lt_speech_commands
# SpeechPrompt v2's task_batch_size.
BATCH_SIZE ?= 1
