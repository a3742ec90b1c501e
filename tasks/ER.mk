# ER: emotion recognition on IEMOCAP, neu / hap (with exc) / ang / sad; test =
# Session 1. DATA: the folder holding Session1 ... Session5. v2 names no batch size
# for ER: the common 32.
# Data and settings only: the rules are in mk/experiment.mk, the data sets in docs/tasks.md.
DATASET := iemocap
