"""Choosing among experiments by their valid accuracy: the rows of a sweep's table.

A cell is an experiment directory with `prompt.json` (sp-train: trainable values, stop record),
`valid/metrics.json` and `metrics.json` (sp-score on the valid and test predictions). The selected cell
has the best valid accuracy; ties go to fewer trainable values, then to the earlier cell. The test
accuracy is reported, never used.
"""
from __future__ import annotations

import json
import os

from .io import BadInput

COLUMNS = ("cell", "valid_accuracy", "test_accuracy", "trainable", "train_seconds", "stop", "updates", "selected")


def _read_json(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise BadInput("missing (has the cell run?)", path) from None
    except json.JSONDecodeError as error:
        raise BadInput(f"not JSON: {error.msg}", f"{path}:{error.lineno}") from None


def read_cell(directory: str) -> dict:
    """One row of the table from a cell's directory."""
    prompt = _read_json(os.path.join(directory, "prompt.json"))
    valid = _read_json(os.path.join(directory, "valid", "metrics.json"))
    test = _read_json(os.path.join(directory, "metrics.json"))
    stop = prompt.get("stop", {})
    return {"cell": os.path.basename(os.path.normpath(directory)), "valid_accuracy": valid["accuracy"],
            "test_accuracy": test["accuracy"], "trainable": prompt["trainable"],
            "train_seconds": round(stop.get("seconds", 0.0)), "stop": stop.get("reason", ""),
            "updates": stop.get("updates", 0)}


def select(rows: list[dict]) -> int:
    """Index of the selected row: best valid accuracy, then fewer trainable values, then the first."""
    return min(range(len(rows)), key=lambda i: (-rows[i]["valid_accuracy"], rows[i]["trainable"], i))


def format_table(rows: list[dict], selected: int) -> str:
    """The TSV, header first; `selected` is 1 on the chosen row."""
    lines = ["\t".join(COLUMNS)]
    for i, row in enumerate(rows):
        cells = {**row, "valid_accuracy": f"{row['valid_accuracy']:.4f}", "test_accuracy": f"{row['test_accuracy']:.4f}",
                 "selected": int(i == selected)}
        lines.append("\t".join(str(cells[c]) for c in COLUMNS))
    return "\n".join(lines) + "\n"


def summary(rows: list[dict], selected: int) -> str:
    """The lines printed after the table: the choice and how far the test accuracy spreads."""
    best = rows[selected]
    oracle = max(row["test_accuracy"] for row in rows)
    return (f"selected by valid accuracy: {best['cell']} (valid {best['valid_accuracy']:.4f}, "
            f"test {best['test_accuracy']:.4f}, {best['trainable']:,} trainable, {best['train_seconds']} s); "
            f"{len(rows)} cells, test accuracy {min(r['test_accuracy'] for r in rows):.4f}..{oracle:.4f}")
