"""`esc50`: environmental sound classification on ESC-50, 50 classes.

ROOT/audio/{FOLD}-{CLIP}-{TAKE}-{TARGET}.wav (44.1 kHz mono, 5 s) and
ROOT/meta/esc50.csv with the columns `filename, fold, target, category,
esc10, src_file, take`.  The label is `category` (`dog`, `chirping_birds`).

Split: test = fold 1 (400 clips); the other folds' 1,600 clips, sorted by
file name and shuffled with `--seed`, give 20% to valid (320) and the rest to
train (1,280).  Ids: the file name without `.wav`.
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Iterator

from . import Context, Item, cut, register, require_dir, require_file, seeded_order, slot

COLUMNS = ("filename", "fold", "category")
VALID = 0.2


@register("esc50")
def esc50(root: Path, ctx: Context) -> Iterator[Item]:
    require_dir(root)
    meta = require_file(root / "meta" / "esc50.csv", "ESC-50 metadata")
    items = []
    with open(meta, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [name for name in COLUMNS if name not in (reader.fieldnames or [])]
        if missing:
            ctx.reject(f"no column {missing[0]!r}; columns: {', '.join(reader.fieldnames or [])}", f"{meta}:1")
            return
        for row in reader:
            where = f"{meta}:{reader.line_num}"
            name, fold, category = (str(row.get(column) or "").strip() for column in COLUMNS)
            if not name or not category:
                ctx.reject("empty filename or category", where)
            elif fold not in {"1", "2", "3", "4", "5"}:
                ctx.reject(f"unknown fold {fold!r} (1 ... 5)", where)
            else:
                items.append(Item("test" if fold == "1" else "train", Path(name).stem,
                                  root / "audio" / name, slot(category), where=where))
    split_of = cut(seeded_order([item.id for item in items if item.split == "train"], ctx.seed), VALID, 0.0)
    for item in items:
        if item.split == "train":
            item.split = split_of[item.id]
        yield item
