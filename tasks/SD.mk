# SD: sarcasm detection on MUStARD, sarcastic / not_sarcastic, fold 0 of
# split_indices.p. Headline metric: binary F1 of `sarcastic` (higher is better),
# beside macro F1. DATA: the MUStARD folder (data/sarcasm_data.json,
# data/split_indices.p, utterances_final_wav/).
# Data and settings only; the rules are in mk/experiment.mk. DATASETS.md's row: SD.
DATASET := mustard
SYNTH_CORPUS :=
# Audio at the files' own rates and channel counts: sp-quantize resamples and mixes down.
MANIFEST_OPTS ?= --any-rate
METRIC := f1
POSITIVE := sarcastic
# SpeechPrompt v2's task_batch_size.
BATCH_SIZE ?= 32
