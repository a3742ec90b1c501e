# SID: speaker ID on VoxCeleb1, 1,251 classes, iden_split.txt's split.
# DATA: the folder holding wav/ and iden_split.txt.
# Data and settings only: the rules are in mk/experiment.mk, the data sets in docs/tasks.md.
DATASET := voxceleb1_speaker
# 1,251 speakers outnumber the 100 unit tokens, so each label is spelled as two unit tokens.
VERBALIZER ?= spelled
