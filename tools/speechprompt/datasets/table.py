"""`table`: a CSV/TSV with a path column and label column(s).

ROOT is either one table file, split by a split column (`--split-column`, or a
column named `split` if there is one) or else by the Speech Commands hash rule
on the file name; or a directory holding `train`, `valid` and `test` tables
(`.csv`/`.tsv`).  Paths are relative to the table's directory.  Several
`--label-column`s make a multi-slot label.
"""
from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Iterator

from ..io import BadInput
from . import SPLITS, Context, Item, make_id, register, slot, which_set

SPLIT_NAMES = {"train": "train", "training": "train", "valid": "valid", "validation": "valid",
               "dev": "valid", "test": "test", "testing": "test"}


def read_table(table: Path, base: Path, ctx: Context, split: str | None, path_column: str,
               label_columns: tuple[str, ...], split_column: str | None = None) -> Iterator[Item]:
    """Items of one table; `split` None means per row (split column or hash rule)."""
    try:
        f = open(table, newline="", encoding="utf-8")
    except OSError as error:
        raise BadInput(f"cannot read: {error.strerror}", str(table)) from None
    with f:
        first = f.readline()
        f.seek(0)
        tsv = table.suffix.lower() in (".tsv", ".tab") or (table.suffix.lower() != ".csv" and "\t" in first)
        reader = csv.reader(f, delimiter="\t" if tsv else ",")
        header = [name.strip() for name in next(reader, [])]

        def column(name: str) -> int:
            if name not in header:
                raise BadInput(f"no column {name!r}; columns: {', '.join(map(repr, header))}", f"{table}:1")
            return header.index(name)

        path_at = column(path_column)
        label_at = [column(name) for name in label_columns]
        id_at = column(ctx.id_column) if ctx.id_column else None
        if split is None and split_column is None and "split" in header:
            split_column = "split"
        split_at = column(split_column) if split is None and split_column else None
        for row in reader:
            where = f"{table}:{reader.line_num}"
            if not any(field.strip() for field in row):
                continue
            for name, at in [(path_column, path_at), (ctx.id_column, id_at), (split_column, split_at),
                             *zip(label_columns, label_at)]:
                if at is not None and at >= len(row):
                    raise BadInput(f"missing field {name!r} (row has {len(row)} of {len(header)} columns)", where)
            relative = row[path_at].strip()
            if not relative:
                raise BadInput(f"empty {path_column!r}", where)
            relative = os.path.normpath(relative)
            path = Path(os.path.normpath(base / relative))
            if id_at is not None:
                uid = row[id_at].strip()
            else:
                stem = os.path.splitext(relative)[0]
                uid = stem.lstrip("/") if os.path.isabs(relative) else stem
            label = " ".join(slot(row[at]) for at in label_at if row[at].strip()) or None
            if split_at is not None:
                value = row[split_at].strip().lower()
                if value not in SPLIT_NAMES:
                    raise BadInput(f"unknown split {row[split_at]!r} (train, valid or test)", where)
                row_split = SPLIT_NAMES[value]
            else:
                row_split = split or which_set(path.name, ctx.valid_percent, ctx.test_percent)
            yield Item(row_split, make_id(uid), path, label, where=where)


@register("table")
def table(root: Path, ctx: Context) -> Iterator[Item]:
    if root.is_file():
        yield from read_table(root, root.parent, ctx, None, ctx.path_column, ctx.label_columns, ctx.split_column)
        return
    if not root.is_dir():
        raise BadInput(f"table or directory not found: {root}")
    found = False
    for split in SPLITS:
        for suffix in (".tsv", ".csv"):
            if (root / f"{split}{suffix}").is_file():
                found = True
                yield from read_table(root / f"{split}{suffix}", root, ctx, split, ctx.path_column, ctx.label_columns)
    if not found:
        raise BadInput(f"no train/valid/test .tsv or .csv table in {root}")
