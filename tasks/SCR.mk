# SCR: speech command recognition, Google Speech Commands v0.01 in the 12-class
# SUPERB/SpeechPrompt setup (10 commands, _unknown_, _silence_).
# Data and settings only: the rules are in mk/experiment.mk, the data sets in docs/tasks.md.
DATASET := speech_commands
# With neither DATA nor UNITS given, the corpus is synthesised offline (sp-synth).
SYNTH_CORPUS := 1
