"""`accentdb`: accent classification on AccentDB extended, 9 accents.

ROOT/data/<accent>/speaker_NN/<accent>_sNN_NNN.wav (ROOT may also be the
`data` folder); mono or stereo, 22.05 or 48 kHz.  The label is the accent
folder's name.

Split: v2's random 64/16/20 by utterance used an unseeded shuffle; here the
same shares, seeded and per accent: each accent's ids, sorted and shuffled
with `--seed` and the accent, give 20% (rounded) to test, 16% to valid, the
rest to train.  Like v2's, the split is by utterance, so speakers appear in
several splits (most accents have one or two speakers).  Ids:
`<accent>/speaker_NN/<stem>`; the speaker is `<accent>/speaker_NN`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from . import Context, Item, audio_files, cut, make_id, register, require_dir, seeded_order, subdirectories

VALID, TEST = 0.16, 0.2


@register("accentdb")
def accentdb(root: Path, ctx: Context) -> Iterator[Item]:
    require_dir(root)
    data = root / "data" if (root / "data").is_dir() else root
    for accent in subdirectories(data):
        paths = {make_id(accent.name, speaker.name, path.stem): path
                 for speaker in subdirectories(accent) for path in audio_files(speaker)}
        split_of = cut(seeded_order(list(paths), f"{ctx.seed}/{accent.name}"), VALID, TEST)
        for uid, path in paths.items():
            yield Item(split_of[uid], uid, path, accent.name, speaker=make_id(accent.name, path.parent.name))
