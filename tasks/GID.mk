# GID: gender of the speaker on VoxCeleb1, female / male, iden_split.txt's split.
# Headline metric: macro F1 (higher is better). DATA: the folder holding wav/,
# vox1_meta.csv and iden_split.txt.
# Data and settings only; the rules are in mk/experiment.mk. DATASETS.md's row: GID.
DATASET := voxceleb1_gender
SYNTH_CORPUS :=
# Audio at the files' own rates and channel counts: sp-quantize resamples and mixes down.
MANIFEST_OPTS ?= --any-rate
METRIC := macro_f1
# SpeechPrompt v2's task_batch_size.
BATCH_SIZE ?= 32
