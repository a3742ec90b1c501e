# VAD: voice activity detection, speech / background windows from NeMo's
# manifests (Speech Commands v0.02 + Freesound). DATA: the folder holding manifests/.
# Data and settings only: the rules are in mk/experiment.mk, the data sets in docs/tasks.md.
DATASET := nemo_vad
POSITIVE := speech
# SpeechPrompt v2's task_batch_size.
BATCH_SIZE ?= 64
