# LID: language ID on Voxforge (de en es fr it ru), speaker-disjoint 70/10/20 per
# language, at most 1200/300/300 utterances. DATA: the folder of language folders.
# Data and settings only: the rules are in mk/experiment.mk, the data sets in docs/tasks.md.
DATASET := voxforge
# SpeechPrompt v2's task_batch_size.
BATCH_SIZE ?= 16
