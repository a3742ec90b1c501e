"""`iemocap`: emotion recognition on IEMOCAP, 4 classes.

ROOT/Session{1..5}/dialog/EmoEvaluation/<dialog>.txt holds lines
`[start - end]<TAB>utterance<TAB>emotion<TAB>[V, A, D]`; the audio is
ROOT/Session<k>/sentences/wav/<dialog>/<utterance>.wav.  neu, hap, ang and
sad are kept, exc is merged into hap (4 classes); IEMOCAP's other categories
(fru, sur, fea, dis, oth, xxx) are left out; anything else is an unknown label.

Split: test = Session 1 (one fold of the usual leave-one-session-out); valid =
a seeded 20% (rounded) of the utterances of Sessions 2-5 (sorted ids shuffled
with `--seed`); train = the rest.  Ids: the utterance name
(`Ses01F_impro01_F000`).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

from . import Context, Item, cut, register, require_dir, seeded_order

KEPT = {"neu": "neu", "hap": "hap", "exc": "hap", "ang": "ang", "sad": "sad"}
LEFT_OUT = {"fru", "sur", "fea", "dis", "oth", "xxx"}
RECORD = re.compile(r"\[\s*[\d.]+\s*-\s*[\d.]+\s*\]\t(\S+)\t(\S+)\t")
VALID = 0.2


@register("iemocap")
def iemocap(root: Path, ctx: Context) -> Iterator[Item]:
    require_dir(root)
    sessions = [root / f"Session{k}" for k in range(1, 6)]
    for session in sessions:
        require_dir(session / "dialog" / "EmoEvaluation", "IEMOCAP evaluation folder")
    items = []
    for k, session in enumerate(sessions, 1):
        evaluations = session / "dialog" / "EmoEvaluation"
        for table in sorted(p for p in evaluations.glob("*.txt") if not p.name.startswith(".")):
            with open(table, encoding="utf-8", errors="replace") as f:
                for number, line in enumerate(f, 1):
                    record = RECORD.match(line)
                    if not record:
                        continue
                    utterance, emotion = record.groups()
                    where = f"{table}:{number}"
                    if emotion in LEFT_OUT:
                        continue
                    if emotion not in KEPT:
                        ctx.reject(f"unknown emotion {emotion!r}", where)
                        continue
                    path = session / "sentences" / "wav" / table.stem / f"{utterance}.wav"
                    items.append(Item("test" if k == 1 else "train", utterance, path, KEPT[emotion], where=where))
    split_of = cut(seeded_order([item.id for item in items if item.split == "train"], ctx.seed), VALID, 0.0)
    for item in items:
        if item.split == "train":
            item.split = split_of[item.id]
        yield item
