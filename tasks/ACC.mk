# ACC: accent classification on AccentDB extended, 9 accents, seeded 64/16/20 per
# accent. DATA: the folder holding `data/<accent>/speaker_NN/*.wav`.
# Data and settings only: the rules are in mk/experiment.mk, the data sets in docs/tasks.md.
DATASET := accentdb
