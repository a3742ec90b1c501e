# SCR: speech command recognition, Google Speech Commands v0.01 in the 12-class
# SUPERB/SpeechPrompt setup (10 commands, _unknown_, _silence_).
# Data and settings only; the rules are in mk/experiment.mk.
DATASET := speech_commands
# With neither DATA nor UNITS given, the corpus is synthesised offline (sp-synth).
SYNTH_CORPUS := 1
VERBALIZER ?= freq
PROMPT_LEN ?= 5
EPOCHS ?= 30
# Prompts on the small uLM can sit at chance for a few epochs before valid accuracy moves.
PATIENCE ?= 10
# The demo's small uLM learns its prompts faster at 3e-2 than at the paper's 5e-3 (for GSLM's big uLM: LR=0.005).
LR ?= 0.03
ULM_EPOCHS ?= 8
