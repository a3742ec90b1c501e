"""`mustard`: sarcasm detection on MUStARD.

ROOT/data/sarcasm_data.json maps each id to `{utterance, speaker, context,
context_speakers, show, sarcasm}`; ROOT/data/split_indices.p holds MUStARD's
five folds, pairs (train indices, test indices) into the JSON's key order.
The audio is the user's conversion of `utterances_final/<id>.mp4` to
`utterances_final_wav/<id>.wav`, looked for in ROOT, ROOT/data and
ROOT/data/videos, in that order.  The label is `sarcastic` (sarcasm true) or
`not_sarcastic` (false); any other value is an unknown label.

Split: fold 0 of split_indices.p gives test (138) and train+valid (552);
valid = a seeded 10% (rounded down, as v2) of train+valid, the ids sorted and
shuffled with `--seed`.  split_indices.p is a pickle: it is read by an
unpickler that admits only the containers, numbers and numpy arrays it holds,
never arbitrary objects.  Ids: the JSON's keys (`1_60`).
"""
from __future__ import annotations

import json
import pickle
import re
from pathlib import Path
from typing import Iterator

import numpy as np

from ..io import BadInput
from . import Context, Item, register, require_dir, require_file, seeded_order

LABELS = {True: "sarcastic", False: "not_sarcastic"}
WAV_DIRS = (".", "data", "data/videos")
FOLD = 0
KEY_LINE = re.compile(r'\s*"((?:[^"\\]|\\.)*)"\s*:\s*\{')

# What a pickle of numpy index arrays needs (numpy < 2 and >= 2 spell the module differently;
# Python 3 pickles of bytes go through _codecs.encode).
ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
           ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
           ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}


class IndexUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) in ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing {module}.{name}")


def load_folds(path: Path) -> list:
    try:
        with open(path, "rb") as f:
            return IndexUnpickler(f, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError) as error:
        raise BadInput(f"not MUStARD's fold indices: {error}", str(path)) from None


def indices(value, count: int, where: str) -> list[int]:
    array = np.asarray(value)
    if array.ndim != 1 or array.dtype.kind not in "iu" or (array.size and not 0 <= array.min() <= array.max() < count):
        raise BadInput(f"fold {FOLD}: expected indices 0..{count - 1}", where)
    return [int(i) for i in array]


@register("mustard")
def mustard(root: Path, ctx: Context) -> Iterator[Item]:
    require_dir(root)
    metadata = require_file(root / "data" / "sarcasm_data.json", "MUStARD metadata")
    text = metadata.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise BadInput(f"invalid JSON: {error.msg}", f"{metadata}:{error.lineno}") from None
    if not isinstance(data, dict):
        raise BadInput("expected a JSON object of ids", str(metadata))
    split_file = require_file(root / "data" / "split_indices.p", "MUStARD folds")
    folds = load_folds(split_file)
    if not isinstance(folds, (list, tuple)) or len(folds) <= FOLD or len(folds[FOLD]) != 2:
        raise BadInput(f"expected a list of (train, test) index pairs with a fold {FOLD}", str(split_file))
    keys = list(data)
    # The line of each id's object, for FILE:LINE messages (MUStARD's JSON is indented, one key a line).
    lines = {}
    for number, line in enumerate(text.splitlines(), 1):
        match = KEY_LINE.match(line)
        if match:
            lines.setdefault(json.loads(f'"{match.group(1)}"'), number)
    train_valid = [keys[i] for i in indices(folds[FOLD][0], len(keys), str(split_file))]
    test = [keys[i] for i in indices(folds[FOLD][1], len(keys), str(split_file))]
    valid = set(seeded_order(train_valid, ctx.seed)[:len(train_valid) // 10])
    wav_dir = next((root / d / "utterances_final_wav" for d in WAV_DIRS
                    if (root / d / "utterances_final_wav").is_dir()), None)
    if wav_dir is None:
        raise BadInput(f"utterances_final_wav/ not found in {root}, {root / 'data'} or {root / 'data/videos'}")
    for split, ids in (("train", [k for k in train_valid if k not in valid]), ("valid", sorted(valid)), ("test", test)):
        for uid in ids:
            where = f"{metadata}:{lines[uid]}" if uid in lines else f"{metadata}: id {uid!r}"
            record = data[uid]
            sarcasm = record.get("sarcasm") if isinstance(record, dict) else None
            if not isinstance(sarcasm, bool):
                ctx.reject(f"unknown sarcasm value {sarcasm!r} (true or false)", where)
                continue
            yield Item(split, uid, wav_dir / f"{uid}.wav", LABELS[sarcasm], where=where)
