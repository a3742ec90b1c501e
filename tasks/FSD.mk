# FSD: fake (spoofed) speech detection, ASVspoof 2019 LA, bonafide / spoof.
# Headline metric: EER (lower is better), from the scores of the positive label.
# DATA: the unpacked `LA` folder (FLAC).
# Data and settings only: the rules are in mk/experiment.mk, the data sets in docs/tasks.md.
DATASET := asvspoof2019
METRIC := eer
POSITIVE := spoof
