# SID: speaker ID on VoxCeleb1, 1,251 classes, iden_split.txt's split.
# DATA: the folder holding wav/ and iden_split.txt.
# Data and settings only; the rules are in mk/experiment.mk. DATASETS.md's row: SID.
DATASET := voxceleb1_speaker
SYNTH_CORPUS :=
# Audio at the files' own rates and channel counts: sp-quantize resamples and mixes down.
MANIFEST_OPTS ?= --any-rate
METRIC := accuracy
# SpeechPrompt v2's task_batch_size.
BATCH_SIZE ?= 32
# 1,251 speakers outnumber the 100 unit tokens, so each label is spelled as two unit tokens.
VERBALIZER ?= spelled
