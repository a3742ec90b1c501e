"""`nemo_vad`: voice activity detection from NeMo's speech/background manifests.

ROOT/manifests/balanced_{speech,background}_{training,validation,testing}_manifest.json
(ROOT may also be the `manifests` folder): JSON lines
`{"audio_filepath", "duration", "label", "text", "offset"}`, as NeMo's VAD
data script writes them (0.63 s windows of Speech Commands v0.02 and
Freesound).  `offset` and `duration` are seconds; they become samples at the
file's own rate (offset rounded down, duration rounded; a window that ends at
most 10 ms past the end of its file is trimmed to the end).  A relative
`audio_filepath` is taken from the manifest's folder (NeMo's rule), else from
ROOT.  The label is `speech` or `background`; any other is an unknown label.
The manifests' own train/valid/test are the splits.

Ids: the audio path below the folder all audio paths share, without its
suffix, then `@` and the offset in samples (`yes/0a7c2a8d_nohash_0@0`).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterator

from . import Context, Item, make_id, register, require_dir, require_file

PARTS = {"train": "training", "valid": "validation", "test": "testing"}
LABELS = ("speech", "background")
SLACK_SECONDS = 0.01


def records(manifest: Path, root: Path, ctx: Context) -> Iterator[tuple[str, dict, Path]]:
    with open(manifest, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{manifest}:{number}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                ctx.reject(f"invalid JSON: {error.msg}", where)
                continue
            if not isinstance(record, dict) or not isinstance(record.get("audio_filepath"), str):
                ctx.reject("expected a JSON object with 'audio_filepath'", where)
                continue
            try:
                offset, duration = float(record.get("offset") or 0), float(record["duration"])
            except (KeyError, TypeError, ValueError):
                ctx.reject("expected numbers 'duration' (and 'offset') in seconds", where)
                continue
            if offset < 0 or duration <= 0:
                ctx.reject(f"bad window: offset {offset}, duration {duration}", where)
                continue
            if record.get("label") not in LABELS:
                ctx.reject(f"unknown label {record.get('label')!r} (speech or background)", where)
                continue
            path = Path(record["audio_filepath"])
            if not path.is_absolute():
                path = manifest.parent / path if (manifest.parent / path).exists() else root / path
            record["offset"], record["duration"] = offset, duration
            yield where, record, Path(os.path.normpath(path))


@register("nemo_vad")
def nemo_vad(root: Path, ctx: Context) -> Iterator[Item]:
    require_dir(root)
    folder = root / "manifests" if (root / "manifests").is_dir() else root
    rows = []
    for split, part in PARTS.items():
        for kind in LABELS:
            manifest = require_file(folder / f"balanced_{kind}_{part}_manifest.json", "NeMo manifest")
            rows += [(split, *record) for record in records(manifest, root, ctx)]
    if not rows:
        return
    common = Path(os.path.commonpath([str(path.parent) for *_, path in rows]))
    for split, where, record, path in rows:
        info = ctx.probe(path, where)
        if info is None:  # skipped under --skip-bad
            continue
        rate = info.samplerate
        # round() first: 0.29 s * 100 Hz is 28.999999999999996 in floating point, 29 samples meant
        offset, num_samples = int(round(record["offset"] * rate, 6)), int(round(record["duration"] * rate))
        if info.frames < offset + num_samples <= info.frames + SLACK_SECONDS * rate:
            num_samples = info.frames - offset
        uid = make_id(f"{path.relative_to(common).with_suffix('').as_posix()}@{offset}")
        yield Item(split, uid, path, record["label"], offset=offset, num_samples=num_samples, where=where)
