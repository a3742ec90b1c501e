"""`folders`: one folder per class.

ROOT/{train,valid,test}/CLASS/*.wav when ROOT has split folders; else
ROOT/CLASS/*.wav, split by the Speech Commands hash rule on the file name
(the part before `_nohash_`, if any).  Ids are the path below ROOT without
its suffix (`CLASS/stem` or `SPLIT/CLASS/stem`), whitespace made `_`; the
label is the class folder's name, NFC, whitespace made `_`. The speaker is the part of a file name
before `_nohash_` where there is one (Speech Commands' naming), else none.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from . import (SPLITS, Context, Item, audio_files, make_id, nfc, nohash_speaker, register, require_dir, slot,
               subdirectories, which_set)


@register("folders")
def folders(root: Path, ctx: Context) -> Iterator[Item]:
    require_dir(root)
    split_dirs = [split for split in SPLITS if (root / split).is_dir()]
    for split, directory in ([(s, root / s) for s in split_dirs] if split_dirs else [(None, root)]):
        for label_dir in subdirectories(directory):
            for path in audio_files(label_dir):
                chosen = split or which_set(path.name, ctx.valid_percent, ctx.test_percent)
                yield Item(chosen, make_id(path.relative_to(root).with_suffix("").as_posix()), path,
                           slot(nfc(label_dir.name)), speaker=nohash_speaker(path.name))
