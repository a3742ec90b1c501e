# FSD: fake (spoofed) speech detection, ASVspoof 2019 LA, bonafide / spoof.
# Headline metric: EER (lower is better), from the scores of the positive label.
# DATA: the unpacked `LA` folder (FLAC).
# Data and settings only; the rules are in mk/experiment.mk. DATASETS.md's row: FSD.
DATASET := asvspoof2019
SYNTH_CORPUS :=
# Audio at the files' own rates and channel counts: sp-quantize resamples and mixes down.
MANIFEST_OPTS ?= --any-rate
METRIC := eer
POSITIVE := spoof
# SpeechPrompt v2's task_batch_size.
BATCH_SIZE ?= 32
