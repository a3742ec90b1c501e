# IC: intent classification, Fluent Speech Commands. A label is three slot
# values, `action object location`, scored as exact match (plus per slot).
# Data and settings only: the rules are in mk/experiment.mk, the data sets in docs/tasks.md.
DATASET := fluent_speech_commands
