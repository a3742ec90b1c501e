"""The verbalizer: an injective map between label slot values and uLM tokens (fit, apply, load).

One injective map covers every distinct slot value of the train labels (a
value shared by two slots, like FSC's `none`, gets one token).  Methods:
`freq` (the i-th most frequent value -> the i-th most frequent unit of the
train units, as SpeechPrompt), `random` (seeded), `identity` (the value is
itself a token) and `learnable` (the value -> its class index, the target of
the linear verbalizer).  Class index = position in `classes`: values by
descending train frequency, ties by value.
"""
from __future__ import annotations

import collections
import json
import random

from .io import BadInput, LMLine

FORMAT = "speechprompt-verbalizer/1"
METHODS = ("freq", "random", "identity", "learnable")


class Verbalizer:
    """A fitted map between slot values and uLM tokens (see `load_verbalizer`)."""

    def __init__(self, spec: dict):
        if spec.get("format") != FORMAT:
            raise ValueError(f"not a verbalizer ({FORMAT!r} expected, got {spec.get('format')!r})")
        self.spec = spec
        self.method: str = spec["method"]
        self.map: dict[str, str] = dict(spec["map"])
        self.classes: list[str] = list(spec["classes"])
        self.num_slots: int = spec["num_slots"]
        self.inverse: dict[str, str] = {token: value for value, token in self.map.items()}
        self.index: dict[str, int] = {value: i for i, value in enumerate(self.classes)}
        if len(self.inverse) != len(self.map):
            raise ValueError("verbalizer map is not injective")

    def encode(self, label: list[str]) -> list[str]:
        """Slot values -> tokens; KeyError names a value never seen in train."""
        return [self.map[value] for value in label]

    def decode(self, tokens: list[str], default: str | None = None) -> str:
        """Tokens -> the label string; a token of no class is KeyError, or `default` if given."""
        if default is None:
            return " ".join(self.inverse[token] for token in tokens)
        return " ".join(self.inverse.get(token, default) for token in tokens)

    def dump(self, f) -> None:
        json.dump(self.spec, f, indent=1, ensure_ascii=False)
        f.write("\n")


def load_verbalizer(path: str) -> Verbalizer:
    with open(path, encoding="utf-8") as f:
        return Verbalizer(json.load(f))


def read_dict_symbols(path: str) -> list[str]:
    """The symbols of a fairseq dict.txt (`token count [#fairseq:overwrite]` lines), in order."""
    symbols = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            fields = line.split()
            if fields and fields[-1] == "#fairseq:overwrite":
                fields.pop()
            if len(fields) != 2 or not fields[1].isdigit():
                raise BadInput("expected 'token count' (a fairseq dict.txt)", f"{path}:{number}")
            symbols.append(fields[0])
    return symbols


def fit(lines: list[LMLine], method: str, seed: int = 0, vocabulary: list[str] | None = None) -> Verbalizer:
    """Fit on train LM lines. `vocabulary`: the uLM's tokens (default: the units seen in train)."""
    values = collections.Counter(v for line in lines for v in line.label)
    units = collections.Counter(u for line in lines for u in line.units)
    if not values:
        raise BadInput("no labels in the train LM data")
    classes = sorted(values, key=lambda v: (-values[v], v))
    vocab = vocabulary if vocabulary is not None else sorted(units, key=int)
    known = set(vocab)
    what = "dictionary tokens" if vocabulary is not None else "distinct units in the train units"
    if method == "freq":
        ranked = [u for u in sorted(units, key=lambda u: (-units[u], int(u))) if u in known]
        if len(classes) > len(ranked):
            raise BadInput(f"freq: {len(classes)} label values but only {len(ranked)} distinct source "
                           "tokens in the train units; use --method learnable or identity")
        targets = ranked[:len(classes)]
    elif method == "random":
        if len(classes) > len(vocab):
            raise BadInput(f"random: {len(classes)} label values but only {len(vocab)} {what}")
        targets = random.Random(seed).sample(sorted(vocab), len(classes))
    elif method == "identity":
        targets = classes
    elif method == "learnable":
        targets = [str(i) for i in range(len(classes))]
    else:
        raise BadInput(f"unknown method {method!r}")
    missing = [t for t in targets if t not in known]
    if missing:
        raise BadInput(f"{method}: tokens {missing[:5]} are not among the {what}"
                       + ("" if vocabulary is not None else " (give the uLM's --dict)"))
    lengths = collections.Counter(len(line.label) for line in lines)
    labels = collections.Counter(" ".join(line.label) for line in lines)
    return Verbalizer({
        "format": FORMAT, "method": method, "seed": seed if method == "random" else None,
        "map": dict(zip(classes, targets)), "classes": classes, "num_slots": max(lengths),
        "slot_counts": sorted(lengths),
        "slots": [sorted({line.label[i] for line in lines if len(line.label) > i}, key=lambda v: (-values[v], v))
                  for i in range(max(lengths))],
        "counts": {v: values[v] for v in classes},
        "labels": {k: labels[k] for k in sorted(labels, key=lambda k: (-labels[k], k))},
    })


def apply(verbalizer: Verbalizer, line: LMLine, invert: bool = False) -> LMLine:
    table = verbalizer.inverse if invert else verbalizer.map
    out = []
    for value in line.label:
        if value not in table:
            what = "token of no class" if invert else "label value never seen in train"
            raise BadInput(f"{what}: {value!r}", line.where)
        out.append(table[value])
    return LMLine(line.id, line.units, out, line.where)
