# AR_SCR: Arabic speech commands (ltkbenamer/AR_Speech_Database), 16 classes.
# DATA: the folder holding `AR_ SpeechCommands_Database` (Make cannot take its space).
# The hash split takes v2's shares (1107/123/370 of 1600: 8% valid, 23% test).
# Data and settings only: the rules are in mk/experiment.mk, the data sets in docs/tasks.md.
DATASET := ar_speech_commands
# --any-rate, the recipe's default, and v2's split shares.
MANIFEST_OPTS ?= --any-rate --valid-percent 8 --test-percent 23
# SpeechPrompt v2's task_batch_size.
BATCH_SIZE ?= 1
