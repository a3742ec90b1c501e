# ACC: accent classification on AccentDB extended, 9 accents, seeded 64/16/20 per
# accent. DATA: the folder holding `data/<accent>/speaker_NN/*.wav`.
# Data and settings only; the rules are in mk/experiment.mk. DATASETS.md's row: ACC.
DATASET := accentdb
SYNTH_CORPUS :=
# Audio at the files' own rates and channel counts: sp-quantize resamples and mixes down.
MANIFEST_OPTS ?= --any-rate
METRIC := accuracy
# SpeechPrompt v2's task_batch_size.
BATCH_SIZE ?= 32
