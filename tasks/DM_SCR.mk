# DM_SCR: dysarthric Mandarin speech commands, 13 classes (v2 drops 10, 13-16, 19).
# DATA: the `dysarthria_zh_command` folder. The hash split gives 20% to test and
# 16% to valid (v2's 80/20 re-split of the rest).
# Data and settings only: the rules are in mk/experiment.mk, the data sets in docs/tasks.md.
DATASET := dm_speech_commands
# --any-rate, the recipe's default, and v2's split shares.
MANIFEST_OPTS ?= --any-rate --valid-percent 16 --test-percent 20
# SpeechPrompt v2's task_batch_size.
BATCH_SIZE ?= 1
