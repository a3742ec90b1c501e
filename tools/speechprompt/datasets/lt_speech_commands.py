"""`lt_speech_commands`: Lithuanian speech commands (kolesov93/lt_speech_commands).

ROOT/<word>/<spk>_nohash_<n>.wav and ROOT/_background_noise_/*.wav (ROOT is
the `dataset` folder, or its parent).  Labels, in NFC UTF-8: the 13 command
words of SpeechPrompt v2 keep their name (`į_viršų`), the other words become
`_unknown_`, and each background-noise file is cut into 1 s `_silence_`
segments: 15 classes.

Split: v2 used published CSV lists that are not part of the dataset; here
Google's Speech Commands rule instead, a sha1 hash of the speaker part of the
file name (`--valid-percent`, `--test-percent`), so speakers never straddle
splits; that part is also the speaker.  Silence segment k goes to valid if k % 10 == 1, to test if
k % 10 == 2, else to train.  Ids: `<word>/<stem>`, `_silence_/<noise>_<k>`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from . import (Context, Item, audio_files, make_id, nfc, nohash_speaker, register, require_dir, subdirectories,
               which_set)
from .speech_commands import NOISE_DIR, SILENCE, UNKNOWN, silence

COMMANDS = ("ne", "ačiū", "stop", "įjunk", "išjunk", "į_viršų", "į_apačią", "į_dešinę", "į_kairę",
            "startas", "pauzė", "labas", "iki")


@register("lt_speech_commands")
def lt_speech_commands(root: Path, ctx: Context) -> Iterator[Item]:
    root = require_dir(root / "dataset" if (root / "dataset").is_dir() else root)
    for word_dir in subdirectories(root):
        if word_dir.name == NOISE_DIR:
            continue
        word = nfc(word_dir.name)
        label = word if word in COMMANDS else UNKNOWN
        for path in audio_files(word_dir):
            split = which_set(nfc(path.name), ctx.valid_percent, ctx.test_percent)
            yield Item(split, make_id(word, path.stem), path, label, speaker=nohash_speaker(path.name))
    yield from silence(root / NOISE_DIR, ctx)
