"""The verbalizer: an injective map between label slot values and uLM tokens (fit, apply, load).

One injective map covers every distinct slot value of the train labels (a
value shared by two slots, like FSC's `none`, gets one token).  Methods:
`freq` (the i-th most frequent value -> the i-th most frequent unit of the
train units, as SpeechPrompt), `random` (seeded), `identity` (the value is
itself a token), `spelled` (the value's class index written in base V over the
V unit tokens, most frequent train units first: ceil(log_V C) tokens a value,
so any number of classes fits; with C <= V it is `freq`) and `learnable` (the
class index for the linear verbalizer: the unit token of that number, or
spelled in base V over the units in numeric order when C > V).  Class index =
position in `classes`: values by descending train frequency, ties by value.
Every value maps to `length` tokens (1 except for spelled labels).
"""
from __future__ import annotations

import dataclasses

import collections
import json
import random

from .io import BadInput, LMLine

FORMAT = "speechprompt-verbalizer/1"
METHODS = ("freq", "random", "identity", "spelled", "learnable")


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
        self.length: int = spec.get("length", 1)  # tokens per value
        self.inverse: dict[str, str] = {token: value for value, token in self.map.items()}
        self.index: dict[str, int] = {value: i for i, value in enumerate(self.classes)}
        if len(self.inverse) != len(self.map):
            raise ValueError("verbalizer map is not injective")

    def encode(self, label: list[str]) -> list[str]:
        """Slot values -> tokens; KeyError names a value never seen in train."""
        return [token for value in label for token in self.map[value].split()]

    def words(self, tokens: list[str]) -> list[str]:
        """Tokens grouped `length` at a time: what each value was mapped to."""
        return [" ".join(tokens[i:i + self.length]) for i in range(0, len(tokens), self.length)]

    def decode(self, tokens: list[str], default: str | None = None) -> str:
        """Tokens -> the label string; tokens of no class are KeyError, or `default` if given."""
        if default is None:
            return " ".join(self.inverse[word] for word in self.words(tokens))
        return " ".join(self.inverse.get(word, default) for word in self.words(tokens))

    def dump(self, f) -> None:
        json.dump(self.spec, f, indent=1, ensure_ascii=False)
        f.write("\n")


def load_verbalizer(path: str) -> Verbalizer:
    """The verbalizer JSON at `path`; a file that is unreadable, cut short or no verbalizer is one line."""
    try:
        with open(path, encoding="utf-8") as f:
            spec = json.load(f)
    except OSError as error:
        raise BadInput(f"cannot read: {error.strerror}", path) from None
    except ValueError as error:  # JSONDecodeError, UnicodeDecodeError
        raise BadInput(f"truncated, or not a verbalizer JSON ({str(error).splitlines()[0]})", path) from None
    if not isinstance(spec, dict):
        raise BadInput(f"not a verbalizer JSON (a JSON {type(spec).__name__}, not an object)", path)
    try:
        return Verbalizer(spec)
    except (ValueError, KeyError, TypeError) as error:
        raise BadInput(f"not a verbalizer: {error}", path) from None


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


def spell(count: int, alphabet: list[str]) -> list[str]:
    """Class indices 0..count-1 written in base len(alphabet) with its tokens as digits, most significant
    first, all of the same length ceil(log_V count) (at least 1): distinct indices, distinct spellings."""
    base, length = len(alphabet), 1
    while base ** length < count:
        length += 1
    return [" ".join(alphabet[i // base ** p % base] for p in reversed(range(length))) for i in range(count)]


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
                           "tokens in the train units; use --method spelled, learnable or identity")
        targets = ranked[:len(classes)]
    elif method == "random":
        if len(classes) > len(vocab):
            raise BadInput(f"random: {len(classes)} label values but only {len(vocab)} {what}")
        targets = random.Random(seed).sample(sorted(vocab), len(classes))
    elif method == "identity":
        targets = classes
    elif method in ("spelled", "learnable"):
        digits = list(dict.fromkeys(t for t in vocab if t.isdigit()))
        if len(digits) < 2 and len(classes) > len(digits):
            raise BadInput(f"{method}: {len(classes)} label values need at least 2 unit tokens, found {len(digits)}")
        if method == "spelled":  # most frequent train units first: with C <= V this is `freq`
            digits.sort(key=lambda u: (-units[u], int(u)))
        else:
            digits.sort(key=int)
        targets = spell(len(classes), digits)
    else:
        raise BadInput(f"unknown method {method!r}")
    missing = [t for target in targets for t in target.split() if t not in known]
    if missing:
        raise BadInput(f"{method}: tokens {missing[:5]} are not among the {what}"
                       + ("" if vocabulary is not None else " (give the uLM's --dict)"))
    lengths = collections.Counter(len(line.label) for line in lines)
    labels = collections.Counter(" ".join(line.label) for line in lines)
    return Verbalizer({
        "format": FORMAT, "method": method, "seed": seed if method == "random" else None,
        "map": dict(zip(classes, targets)), "length": len(targets[0].split()), "classes": classes,
        "num_slots": max(lengths),
        "slot_counts": sorted(lengths),
        "slots": [sorted({line.label[i] for line in lines if len(line.label) > i}, key=lambda v: (-values[v], v))
                  for i in range(max(lengths))],
        "counts": {v: values[v] for v in classes},
        "labels": {k: labels[k] for k in sorted(labels, key=lambda k: (-labels[k], k))},
    })


def apply(verbalizer: Verbalizer, line: LMLine, invert: bool = False) -> LMLine:
    table = verbalizer.inverse if invert else verbalizer.map
    out = []
    for value in verbalizer.words(line.label) if invert else line.label:
        if value not in table:
            what = "token of no class" if invert else "label value never seen in train"
            raise BadInput(f"{what}: {value!r}", line.where)
        out.extend(table[value].split())
    return dataclasses.replace(line, label=out)  # the units and their prosody columns pass through
