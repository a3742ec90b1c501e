# SD: sarcasm detection on MUStARD, sarcastic / not_sarcastic, fold 0 of
# split_indices.p. Headline metric: binary F1 of `sarcastic` (higher is better),
# beside macro F1. DATA: the MUStARD folder (data/sarcasm_data.json,
# data/split_indices.p, utterances_final_wav/).
# Data and settings only: the rules are in mk/experiment.mk, the data sets in docs/tasks.md.
DATASET := mustard
METRIC := f1
POSITIVE := sarcastic
