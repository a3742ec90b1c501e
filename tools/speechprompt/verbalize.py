"""sp-verbalize: map label slot values to uLM tokens, and back.

    sp-verbalize fit --method freq train.lm -o verbalizer.json
    sp-verbalize apply verbalizer.json valid.lm -o valid.vlm
    sp-verbalize invert verbalizer.json valid.vlm          # back to slot values

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
import os
import random
import sys

import click

from .io import (SEP, BadInput, LMLine, Skipper, atomic_output, input_argument, log, output_option,
                 read_lm, skip_bad_option)

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


# ----------------------------------------------------------------------- CLI
@click.group(help="Map labels to uLM tokens: fit a verbalizer on train LM data, apply it, invert it.",
             context_settings={"help_option_names": ["-h", "--help"]})
def main():
    pass


@main.command("fit", help="Fit a verbalizer on train LM data (`id<TAB>units <s> label`); write its JSON.")
@input_argument
@click.option("-o", "--output", default="-", show_default=True, help="Verbalizer JSON, - for stdout.")
@click.option("--method", type=click.Choice(METHODS), default="freq", show_default=True,
              help="freq: i-th most frequent value -> i-th most frequent train unit; random: seeded; "
                   "identity: the value itself; learnable: the class index (linear verbalizer).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of --method random.")
@click.option("--dict", "dict_path", type=click.Path(exists=True, dir_okay=False),
              help="The uLM's dict.txt: its tokens are the allowed targets (default: units seen in train).")
@skip_bad_option
def fit_command(input, output, method, seed, dict_path, skip_bad):
    skipper = Skipper(skip_bad)
    lines = list(read_lm(input, skipper))
    skipper.report("lines")
    verbalizer = fit(lines, method, seed, read_dict_symbols(dict_path) if dict_path else None)
    with atomic_output(output) as out:
        verbalizer.dump(out)
    log(f"{method}: {len(verbalizer.classes)} slot values, {verbalizer.num_slots} slot(s), "
        f"from {len(lines)} lines: " + ", ".join(f"{v}->{t}" for v, t in list(verbalizer.map.items())[:12]))


def _stream(verbalizer_path, input, output, skip_bad, invert):
    try:
        _write(verbalizer_path, input, output, skip_bad, invert)
    except BrokenPipeError:  # `sp-verbalize apply ... | head` is fine
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)


def _write(verbalizer_path, input, output, skip_bad, invert):
    verbalizer = load_verbalizer(verbalizer_path)
    skipper = Skipper(skip_bad)
    written = 0
    with atomic_output(output) as out:
        for line in read_lm(input, skipper):
            with skipper.guard():
                out.write(apply(verbalizer, line, invert).row() + "\n")
                written += 1
    skipper.report("lines")
    log(f"wrote {written} lines")


@main.command("apply", help=f"Replace each label value after {SEP} by its token (LM data in, LM data out).")
@click.argument("verbalizer", type=click.Path(exists=True, dir_okay=False))
@input_argument
@output_option
@skip_bad_option
def apply_command(verbalizer, input, output, skip_bad):
    _stream(verbalizer, input, output, skip_bad, invert=False)


@main.command("invert", help=f"Replace each token after {SEP} by its label value (undoes `apply`).")
@click.argument("verbalizer", type=click.Path(exists=True, dir_okay=False))
@input_argument
@output_option
@skip_bad_option
def invert_command(verbalizer, input, output, skip_bad):
    _stream(verbalizer, input, output, skip_bad, invert=True)
