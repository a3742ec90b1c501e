"""`voxceleb1_gender` and `voxceleb1_speaker`: VoxCeleb1 by gender (GID) or speaker (SID).

ROOT/wav/idXXXXX/<youtube id>/NNNNN.wav (16 kHz), ROOT/iden_split.txt (lines
`1|2|3 idXXXXX/<youtube id>/NNNNN.wav`: 1 = train, 2 = valid, 3 = test;
145,265 / 6,904 / 8,251) and, for gender, ROOT/vox1_meta.csv (TAB-separated,
a header, then `VoxCeleb1 ID, VGGFace1 ID, Gender, Nationality, Set`).  Both
rows use iden_split.txt, so GID and SID share utterances (v2 published no
split for either).  Labels: the speaker id (`id10001`, 1,251 classes), or the
gender, `female` or `male` (the metadata's f and m; any other value is an
unknown label, and so is a speaker missing from the metadata).
Ids: `idXXXXX/<youtube id>/NNNNN`. The speaker is the `idXXXXX` folder.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

from . import Context, Item, make_id, register, require_dir, require_file

SPLITS = {"1": "train", "2": "valid", "3": "test"}
GENDERS = {"f": "female", "m": "male"}


def read_meta(root: Path, ctx: Context) -> dict[str, str]:
    """Speaker id -> gender label."""
    meta = require_file(root / "vox1_meta.csv", "VoxCeleb1 metadata")
    genders = {}
    with open(meta, encoding="utf-8") as f:
        header = [name.strip() for name in f.readline().split("\t")]
        if "VoxCeleb1 ID" not in header or "Gender" not in header:
            ctx.reject("expected a TAB-separated header with 'VoxCeleb1 ID' and 'Gender'", f"{meta}:1")
            return genders
        id_at, gender_at = header.index("VoxCeleb1 ID"), header.index("Gender")
        for number, line in enumerate(f, 2):
            fields = [field.strip() for field in line.split("\t")]
            if not line.strip():
                continue
            where = f"{meta}:{number}"
            if len(fields) <= max(id_at, gender_at):
                ctx.reject(f"expected {len(header)} TAB-separated fields, got {len(fields)}", where)
            elif fields[gender_at].lower() not in GENDERS:
                ctx.reject(f"unknown gender {fields[gender_at]!r} (m or f)", where)
            else:
                genders[fields[id_at]] = GENDERS[fields[gender_at].lower()]
    return genders


def iden_split(root: Path, ctx: Context, label_of: Callable[[str], str | None]) -> Iterator[Item]:
    require_dir(root)
    listing = require_file(root / "iden_split.txt", "VoxCeleb1 identification split")
    with open(listing, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                continue
            where = f"{listing}:{number}"
            if len(fields) != 2 or fields[0] not in SPLITS:
                ctx.reject("expected '1|2|3 idXXXXX/<youtube id>/NNNNN.wav'", where)
                continue
            relative = fields[1]
            speaker = relative.split("/")[0]
            label = label_of(speaker)
            if label is None:
                ctx.reject(f"speaker {speaker!r} not in vox1_meta.csv", where)
                continue
            uid = make_id(relative.rsplit(".", 1)[0])
            yield Item(SPLITS[fields[0]], uid, root / "wav" / relative, label, where=where, speaker=make_id(speaker))


@register("voxceleb1_speaker")
def voxceleb1_speaker(root: Path, ctx: Context) -> Iterator[Item]:
    yield from iden_split(root, ctx, lambda speaker: speaker)


@register("voxceleb1_gender")
def voxceleb1_gender(root: Path, ctx: Context) -> Iterator[Item]:
    require_dir(root)
    genders = read_meta(root, ctx)
    yield from iden_split(root, ctx, genders.get)
