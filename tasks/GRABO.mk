# GRABO: spoken commands to a robot (Grabo, KU Leuven), 36 classes `recording1` ...
# `recording36`. DATA: the folder holding `speakers/<spk>/spchdatadir/recording<N>/*.wav`.
# Data and settings only: the rules are in mk/experiment.mk, the data sets in docs/tasks.md.
DATASET := grabo
# SpeechPrompt v2's task_batch_size.
BATCH_SIZE ?= 4
