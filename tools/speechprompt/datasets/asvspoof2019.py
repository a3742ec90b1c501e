"""`asvspoof2019`: ASVspoof 2019 LA, bona fide against spoofed speech.

ROOT is the unpacked `LA` folder (or the folder holding it):
`ASVspoof2019_LA_cm_protocols/ASVspoof2019.LA.cm.{train.trn,dev.trl,eval.trl}.txt`
(space-separated, no header: `SPEAKER FILE - SYSTEM KEY`) and the audio
`ASVspoof2019_LA_{train,dev,eval}/flac/FILE.flac`.  The label is KEY,
`bonafide` or `spoof`; another value is an unknown label.  train = train.trn,
valid = dev.trl, test = eval.trl (25,380 / 24,844 / 71,237).  Ids: FILE; the speaker: SPEAKER.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from . import Context, Item, register, require_dir, require_file

PROTOCOLS = "ASVspoof2019_LA_cm_protocols"
PARTS = {"train": ("train", "train.trn"), "valid": ("dev", "dev.trl"), "test": ("eval", "eval.trl")}
KEYS = ("bonafide", "spoof")


@register("asvspoof2019")
def asvspoof2019(root: Path, ctx: Context) -> Iterator[Item]:
    require_dir(root)
    if not (root / PROTOCOLS).is_dir() and (root / "LA" / PROTOCOLS).is_dir():
        root = root / "LA"
    for split, (part, suffix) in PARTS.items():
        protocol = require_file(root / PROTOCOLS / f"ASVspoof2019.LA.cm.{suffix}.txt", "protocol file")
        audio = root / f"ASVspoof2019_LA_{part}" / "flac"
        with open(protocol, encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                where = f"{protocol}:{number}"
                fields = line.split()
                if not fields:
                    continue
                if len(fields) != 5:
                    ctx.reject(f"expected 5 fields (SPEAKER FILE - SYSTEM KEY), got {len(fields)}", where)
                elif fields[4] not in KEYS:
                    ctx.reject(f"unknown key {fields[4]!r} (bonafide or spoof)", where)
                else:
                    yield Item(split, fields[1], audio / f"{fields[1]}.flac", fields[4], where=where,
                               speaker=fields[0])
