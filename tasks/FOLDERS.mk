# FOLDERS: your own data as one folder per class, DATA=ROOT with ROOT/[SPLIT/]CLASS/*
# (SPLIT: train, valid, test; without split folders, a sha1 hash of the file name
# splits 80/10/10: MANIFEST_OPTS takes --valid-percent and --test-percent).
# Data and settings only: the rules are in mk/experiment.mk, the data sets in docs/tasks.md.
DATASET := folders
