"""Choosing among experiments by their valid accuracy: the rows of a sweep's table.

A cell is an experiment directory with `prompt.json` (sp-train: trainable values, stop record),
`valid/metrics.json` and `metrics.json` (sp-score on the valid and test predictions). Cells that differ
only in their seed (`SEED=1`, `SEED=2`, ... in the cell's name) are runs of one setting: a row of the
table is a setting, with the mean and the standard deviation (n - 1) of its runs. The selected setting
has the best mean valid accuracy; ties go to fewer trainable values, then to the earlier one. The test
accuracy is reported, never used.
"""
from __future__ import annotations

import json
import os

from .io import BadInput

COLUMNS = ("cell", "seeds", "valid_accuracy", "valid_std", "test_accuracy", "test_std", "trainable", "train_seconds",
           "stop", "updates", "selected")


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


def setting_of(cell: str) -> str:
    """A cell's name without its seed: `LR=3e-2,SEED=2` -> `LR=3e-2` (`defaults` when the seed is all it has)."""
    return ",".join(part for part in cell.split(",") if not part.startswith("SEED=")) or "defaults"


def by_setting(cells: list[dict]) -> list[dict]:
    """One row per setting, in the order of its first cell: the means over its seeds, and the deviations."""
    groups: dict[str, list[dict]] = {}
    for cell in cells:
        groups.setdefault(setting_of(cell["cell"]), []).append(cell)
    rows = []
    for name, runs in groups.items():
        reasons = sorted({run["stop"] for run in runs})
        rows.append({"cell": name, "seeds": len(runs),
                     "valid_accuracy": mean(run["valid_accuracy"] for run in runs),
                     "valid_std": deviation([run["valid_accuracy"] for run in runs]),
                     "test_accuracy": mean(run["test_accuracy"] for run in runs),
                     "test_std": deviation([run["test_accuracy"] for run in runs]),
                     "trainable": runs[0]["trainable"], "train_seconds": round(mean(r["train_seconds"] for r in runs)),
                     "stop": ",".join(reasons), "updates": round(mean(run["updates"] for run in runs))})
    return rows


def mean(values) -> float:
    values = list(values)
    return sum(values) / len(values)


def deviation(values: list[float]) -> float | None:
    """The sample standard deviation (n - 1); None for one run."""
    if len(values) < 2:
        return None
    centre = mean(values)
    return (sum((v - centre) ** 2 for v in values) / (len(values) - 1)) ** 0.5


def select(rows: list[dict]) -> int:
    """Index of the selected row: best valid accuracy, then fewer trainable values, then the first."""
    return min(range(len(rows)), key=lambda i: (-rows[i]["valid_accuracy"], rows[i]["trainable"], i))


def format_table(rows: list[dict], selected: int) -> str:
    """The TSV, header first; `selected` is 1 on the chosen row; a deviation of one run is empty."""
    four = lambda value: "" if value is None else f"{value:.4f}"
    lines = ["\t".join(COLUMNS)]
    for i, row in enumerate(rows):
        cells = {**row, **{key: four(row[key]) for key in ("valid_accuracy", "valid_std", "test_accuracy", "test_std")},
                 "selected": int(i == selected)}
        lines.append("\t".join(str(cells[c]) for c in COLUMNS))
    return "\n".join(lines) + "\n"


def summary(rows: list[dict], selected: int) -> str:
    """The lines printed after the table: the choice and how far the test accuracy spreads."""
    best = rows[selected]
    oracle = max(row["test_accuracy"] for row in rows)
    spread = lambda row, key: "" if row[f"{key}_std"] is None else f" ± {row[f'{key}_std']:.4f}"
    seeds = f" over {best['seeds']} seeds" if best["seeds"] > 1 else ""
    return (f"selected by valid accuracy: {best['cell']} (valid {best['valid_accuracy']:.4f}{spread(best, 'valid')}, "
            f"test {best['test_accuracy']:.4f}{spread(best, 'test')}{seeds}, {best['trainable']:,} trainable, "
            f"{best['train_seconds']} s); {len(rows)} settings, test accuracy "
            f"{min(r['test_accuracy'] for r in rows):.4f}..{oracle:.4f}")
