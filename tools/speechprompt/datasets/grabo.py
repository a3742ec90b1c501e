"""`grabo`: Grabo (KU Leuven), 36 spoken commands to a robot, per speaker.

ROOT/speakers/<spk>/spchdatadir/recording<N>/*.wav (ROOT may also be the
`speakers` folder itself).  The label is the folder name, `recording1` ...
`recording36`; any other folder under spchdatadir is an unknown label.  Split
as SpeechPrompt v2, but in sorted order (v2 took the directory listing's
order, which is not reproducible): per speaker and command, the files sorted
by name, the first 2 go to train, the next 4 to valid, the rest to test.
Ids: `<spk>/recording<N>/<stem>`; the speaker: `<spk>`.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

from . import Context, Item, audio_files, make_id, register, require_dir, subdirectories

COMMAND = re.compile(r"recording([1-9][0-9]*)")
TRAIN, VALID = 2, 4  # files per speaker and command


@register("grabo")
def grabo(root: Path, ctx: Context) -> Iterator[Item]:
    speakers = require_dir(root / "speakers" if (root / "speakers").is_dir() else root)
    for speaker in subdirectories(speakers):
        for command in subdirectories(require_dir(speaker / "spchdatadir", "speaker folder")):
            match = COMMAND.fullmatch(command.name)
            if not match or int(match.group(1)) > 36:
                ctx.reject(f"unknown command folder {command.name!r} (recording1 ... recording36)", str(command))
                continue
            for rank, path in enumerate(audio_files(command)):
                split = "train" if rank < TRAIN else "valid" if rank < TRAIN + VALID else "test"
                yield Item(split, make_id(speaker.name, command.name, path.stem), path, command.name,
                           speaker=make_id(speaker.name))
