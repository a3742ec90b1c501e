"""Prompt tuning of a frozen unit LM (SpeechPrompt v2) as a fairseq plugin (`--user-dir`).

`model.py` is the model; `plugin.py` registers task `speech_prompt`, model
`prompt_lm` and criterion `label_ce` with fairseq when this package is imported.
"""
from speechprompt.prompting import plugin  # noqa: F401  (registers with fairseq)
