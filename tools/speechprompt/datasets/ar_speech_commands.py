"""`ar_speech_commands`: Arabic speech commands (ltkbenamer/AR_Speech_Database).

ROOT/{Words,Numbers}/*.wav, where ROOT is `AR_ SpeechCommands_Database` (the
space is part of the name) or the folder holding it.  The label comes from the
file-name prefix before the first `_`: A-F are add, back, cancel, delete,
confirm, continue (`A_Add17.wav`), 0-9 are zero ... nine (`0_1.wav`): 16
classes; any other prefix is an unknown label.  The numbers are 8 kHz and the
words 48 kHz (the task file passes `--any-rate`).

Split: v2's published lists (1107/123/370) are not part of the dataset; here a
sha1 hash of the file name (Google's Speech Commands rule, `--valid-percent`,
`--test-percent`; tasks/AR_SCR.mk asks for v2's shares, 8 and 23).  The names
carry no speaker, so the split is not speaker-disjoint.  Ids:
`Words/A_Add17`, `Numbers/0_1`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from ..io import BadInput
from . import Context, Item, audio_files, make_id, register, require_dir, which_set

FOLDER = "AR_ SpeechCommands_Database"
GROUPS = ("Words", "Numbers")
LABELS = {"A": "add", "B": "back", "C": "cancel", "D": "delete", "E": "confirm", "F": "continue",
          "0": "zero", "1": "one", "2": "two", "3": "three", "4": "four", "5": "five", "6": "six",
          "7": "seven", "8": "eight", "9": "nine"}


@register("ar_speech_commands")
def ar_speech_commands(root: Path, ctx: Context) -> Iterator[Item]:
    require_dir(root)
    if not any((root / group).is_dir() for group in GROUPS) and (root / FOLDER).is_dir():
        root = root / FOLDER
    groups = [root / group for group in GROUPS if (root / group).is_dir()]
    if not groups:
        raise BadInput(f"no Words or Numbers folder in {root} (the dataset's {FOLDER!r} folder)")
    for group in groups:
        for path in audio_files(group):
            prefix = path.name.split("_")[0]
            if prefix not in LABELS:
                ctx.reject(f"unknown command prefix {prefix!r} (A-F or 0-9 before the first '_')", str(path))
                continue
            split = which_set(path.name, ctx.valid_percent, ctx.test_percent)
            yield Item(split, make_id(group.name, path.stem), path, LABELS[prefix])
