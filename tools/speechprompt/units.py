"""What the chain does to a unit sequence between the k-means and the uLM: runs merged (sp-dedup) and
long sequences cropped (sp-lmdata). sp-classify applies the same functions to new audio, so a file it
labels becomes exactly the sentence the prompt was trained and tested on."""
from __future__ import annotations

from .io import Units

CROPS = ("head", "center", "tail")


def dedup(record: Units) -> Units:
    """Consecutive duplicate units merged, with the run length of each kept unit (added up if merged before)."""
    units = record.units
    starts = [i for i in range(len(units)) if i == 0 or units[i] != units[i - 1]]
    runs = list(zip(starts, starts[1:] + [len(units)]))
    if record.durations:  # already merged once: run lengths add up
        durations = [sum(record.durations[a:b]) for a, b in runs]
    else:
        durations = [b - a for a, b in runs]
    return Units(record.id, [units[i] for i in starts], record.label, durations, record.where)


def crop(units: list, max_units: int, keep: str = "center") -> list:
    """At most `max_units` consecutive units: the first, the middle or the last ones."""
    extra = len(units) - max_units
    if extra <= 0:
        return units
    start = {"head": 0, "center": extra // 2, "tail": extra}[keep]
    return units[start:start + max_units]
