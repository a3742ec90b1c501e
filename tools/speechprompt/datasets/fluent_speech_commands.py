"""`fluent_speech_commands`: Fluent Speech Commands, intents as 3-slot labels.

ROOT/data/{train,valid,test}_data.csv with columns path, action, object,
location; paths (`wavs/speakers/...`) are relative to ROOT.  The label is
`action object location`, a slot's inner spaces made `_` (`change_language`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from ..io import BadInput
from . import SPLITS, Context, Item, register, require_dir
from .table import read_table


@register("fluent_speech_commands")
def fluent_speech_commands(root: Path, ctx: Context) -> Iterator[Item]:
    require_dir(root)
    for split in SPLITS:
        table = root / "data" / f"{split}_data.csv"
        if not table.is_file():
            raise BadInput(f"Fluent Speech Commands table not found: {table}")
        yield from read_table(table, root, ctx, split, "path", ("action", "object", "location"))
