"""sp-verbalize: map label slot values to uLM tokens, and back (the map itself is `verbalizer.py`).

    sp-verbalize fit --method freq train.lm -o verbalizer.json
    sp-verbalize apply verbalizer.json valid.lm -o valid.vlm
    sp-verbalize invert verbalizer.json valid.vlm          # back to slot values
"""
from __future__ import annotations

import os
import sys

import click

from .io import (SEP, Group, Skipper, atomic_output, input_argument, log, output_option, output_path_option, read_lm,
                 skip_bad_option)
from .verbalizer import METHODS, apply, fit, load_verbalizer, read_dict_symbols


@click.group(cls=Group, help="Map labels to uLM tokens: fit a verbalizer on train LM data, apply it, invert it.",
             context_settings={"help_option_names": ["-h", "--help"]})
def main():
    pass


@main.command("fit", help="Fit a verbalizer on train LM data (`id<TAB>units <s> label`); write its JSON.")
@input_argument
@output_path_option("-o", "--output", default="-", show_default=True, help="Verbalizer JSON, - for stdout.")
@click.option("--method", type=click.Choice(METHODS), default="freq", show_default=True,
              help="freq: i-th most frequent value -> i-th most frequent train unit; random: seeded; "
                   "identity: the value itself; spelled: the class index in base V over the unit tokens "
                   "(several tokens a value, any number of classes); learnable: the class index (linear verbalizer).")
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
