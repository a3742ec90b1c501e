# GID: gender of the speaker on VoxCeleb1, female / male, iden_split.txt's split.
# Headline metric: macro F1 (higher is better). DATA: the folder holding wav/,
# vox1_meta.csv and iden_split.txt.
# Data and settings only: the rules are in mk/experiment.mk, the data sets in docs/tasks.md.
DATASET := voxceleb1_gender
METRIC := macro_f1
