"""`folders`: one folder per class.

ROOT/{train,valid,test}/CLASS/*.wav when ROOT has split folders; else
ROOT/CLASS/*.wav, split by the Speech Commands hash rule on the file name
(the part before `_nohash_`, if any).  Ids are the path below ROOT without
its suffix: `CLASS/stem` or `SPLIT/CLASS/stem`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from . import SPLITS, Context, Item, audio_files, register, require_dir, subdirectories, which_set


@register("folders")
def folders(root: Path, ctx: Context) -> Iterator[Item]:
    require_dir(root)
    split_dirs = [split for split in SPLITS if (root / split).is_dir()]
    for split, directory in ([(s, root / s) for s in split_dirs] if split_dirs else [(None, root)]):
        for label_dir in subdirectories(directory):
            for path in audio_files(label_dir):
                chosen = split or which_set(path.name, ctx.valid_percent, ctx.test_percent)
                yield Item(chosen, path.relative_to(root).with_suffix("").as_posix(), path, label_dir.name)
