"""When prompt tuning stops, and why: patience on the valid accuracy that waits for the prompt to leave
chance, and caps on epochs, updates and wall time.

Prompts on a small uLM can sit at chance for several epochs before the valid accuracy moves; plain
patience stops such a run at chance. Here the patience counter starts only once
the best valid accuracy is above chance: the share of the most frequent valid label (what a constant
answer gets) plus two binomial standard errors at that share. A run that never leaves chance runs to
its caps, and the log says so.
"""
from __future__ import annotations

import dataclasses
import math
from collections import Counter

PATIENCE, MAX_EPOCH, MAX_UPDATE, TIME_CAP = "patience", "max epoch", "max update", "time cap"


def chance_level(labels: list[str]) -> float:
    """The valid accuracy a constant answer reaches, plus two standard errors: below it, nothing is learned."""
    if not labels:
        return 0.0
    share = Counter(labels).most_common(1)[0][1] / len(labels)
    return share + 2 * math.sqrt(share * (1 - share) / len(labels))


def shown(accuracy: float | None) -> str:
    """An accuracy in the logs: four digits, or `none` before the first validation."""
    return "none" if accuracy is None else f"{accuracy:.4f}"


@dataclasses.dataclass
class EarlyStop:
    """Valid accuracies in, `True` out when `patience` validations in a row, once above chance, brought no
    improvement."""
    patience: int
    chance: float = 0.0
    best: float | None = None
    best_validation: int = 0
    validations: int = 0
    waited: int = 0

    @property
    def left_chance(self) -> bool:
        return self.best is not None and self.best > self.chance

    def update(self, accuracy: float) -> bool:
        self.validations += 1
        if self.best is None or accuracy > self.best:
            self.best, self.best_validation, self.waited = accuracy, self.validations, 0
            return False
        if self.left_chance:
            self.waited += 1
        return self.patience > 0 and self.waited >= self.patience


@dataclasses.dataclass
class StopRecord:
    """Why and where a run stopped; saved in the prompt checkpoint (`stop`) and its JSON."""
    reason: str = MAX_EPOCH
    epoch: int = 0
    updates: int = 0
    validations: int = 0
    best_valid_accuracy: float | None = None
    best_validation: int = 0
    chance: float = 0.0
    left_chance: bool = False
    seconds: float = 0.0

    def message(self) -> str:
        text = (f"stopped: {self.reason} (epoch {self.epoch}, {self.updates} updates, {self.seconds:.0f} s); "
                f"best valid accuracy {shown(self.best_valid_accuracy)} at validation {self.best_validation} "
                f"of {self.validations}")
        if not self.left_chance:
            text += f"; it never rose above chance ({self.chance:.4f}), so patience never started"
        return text
