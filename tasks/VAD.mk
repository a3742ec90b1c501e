# VAD: voice activity detection, speech / background windows from NeMo's
# manifests (Speech Commands v0.02 + Freesound). DATA: the folder holding manifests/.
# Data and settings only; the rules are in mk/experiment.mk. DATASETS.md's row: VAD.
DATASET := nemo_vad
SYNTH_CORPUS :=
# Audio at the files' own rates and channel counts: sp-quantize resamples and mixes down.
MANIFEST_OPTS ?= --any-rate
METRIC := accuracy
POSITIVE := speech
# SpeechPrompt v2's task_batch_size.
BATCH_SIZE ?= 64
