# SCR: speech command recognition, Google Speech Commands v0.01 in the 12-class
# SUPERB/SpeechPrompt setup (10 commands, _unknown_, _silence_).
# Data and settings only; the rules are in mk/experiment.mk.
DATASET := speech_commands
# With neither DATA nor UNITS given, the corpus is synthesised offline (sp-synth).
SYNTH_CORPUS := 1
VERBALIZER ?= freq
PROMPT_LEN ?= 5
EPOCHS ?= 30
# Prompts on the small uLM can sit at chance for the first epochs before valid
# accuracy moves (measured: 4 flat epochs with K=50, PROMPT_LEN=10); patience 3
# stopped such runs at 0.23.
PATIENCE ?= 10
# The demo's small uLM (4 x 128) learns its prompts faster at 3e-2 than at the
# paper's 5e-3 for GSLM's big uLM (measured on the synthetic corpus in 30 epochs:
# test 0.90 against 0.75, valid 0.89 against 0.76; with the bare fbank, valid
# 0.71 against 0.54). With ULM= a real GSLM uLM, pass LR=0.005.
LR ?= 0.03
ULM_EPOCHS ?= 8
