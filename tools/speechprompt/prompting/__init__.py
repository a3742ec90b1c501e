"""Prompt tuning of a frozen unit LM (SpeechPrompt v2).

- `backbones/`: the unit LMs a prompt is tuned on, behind one interface (fairseq's transformer_lm first);
- `model.py`: the prompt model (input prefix, deep key/value prompts, separator, linear verbalizer);
- `loop.py`: the training loop of sp-train, resumable; `stopping.py`: when it stops;
- `data.py`, `labels.py`: the labelled splits it reads and the labels' trie;
- `decoding.py`: a prompt checkpoint loaded and its candidate labels scored (sp-sample);
- `defaults.py`: the settings chosen by the uLM's width.
"""
