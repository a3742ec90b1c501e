"""`dm_speech_commands`: dysarthric Mandarin speech commands.

ROOT/D_SPK<k>/<NN>/*.wav (ROOT is `dysarthria_zh_command`); names carry
spaces and parentheses (`D_SPK1_c2 (4).wav`).  The label is the command folder
number `NN` as written (`01` ... `19`); SpeechPrompt v2 leaves out classes
10, 13, 14, 15, 16 and 19, and so does this adapter: 13 classes.  A folder
that is not a number 01-19 is an unknown label.

Split: v2's published train/test lists are not part of the dataset; here a
sha1 hash of the file name (Google's Speech Commands rule, `--valid-percent`,
`--test-percent`; tasks/DM_SCR.mk asks for 20% test and 16% valid, v2's 80/20
re-split of train).  With three speakers the split is by file, not by
speaker.  Ids: `D_SPK1/02/D_SPK1_c2_(4)` (whitespace in ids becomes `_`); the speaker: its folder.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

from . import Context, Item, audio_files, make_id, register, require_dir, subdirectories, which_set

DROPPED = {"10", "13", "14", "15", "16", "19"}


@register("dm_speech_commands")
def dm_speech_commands(root: Path, ctx: Context) -> Iterator[Item]:
    for speaker in subdirectories(require_dir(root)):
        for command in subdirectories(speaker):
            if not re.fullmatch(r"[0-9]{2}", command.name) or not 1 <= int(command.name) <= 19:
                ctx.reject(f"unknown command folder {command.name!r} (01 ... 19)", str(command))
                continue
            if command.name in DROPPED:
                continue
            for path in audio_files(command):
                split = which_set(path.name, ctx.valid_percent, ctx.test_percent)
                yield Item(split, make_id(speaker.name, command.name, path.stem), path, command.name,
                           speaker=make_id(speaker.name))
