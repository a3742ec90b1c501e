# AUC: audio (environmental sound) classification on ESC-50, 50 classes; test =
# fold 1. DATA: the ESC-50 folder (audio/, meta/esc50.csv).
# Data and settings only: the rules are in mk/experiment.mk, the data sets in docs/tasks.md.
DATASET := esc50
# SpeechPrompt v2's task_batch_size.
BATCH_SIZE ?= 4
