"""sp-manifest: list a dataset's audio per split, with labels.

    sp-manifest speech_commands data/synth --out-dir data/SCR     # train.tsv valid.tsv test.tsv
    sp-manifest fluent_speech_commands /data/fsc --split test     # one split to stdout

Rows are `id  path  offset  num_samples  label  [speaker]` (docs/formats.md; the speaker where the
dataset's adapter names one), sorted by
id within a split.  Each audio file is probed: unreadable, corrupt or empty
audio, a rate other than --sample-rate, more than one channel, a segment past
the end of its file, and a duplicate id are errors (or, with --skip-bad,
counted skips); so is a label with a slot spelled like a uLM symbol (`<unk>`).
Labels are written in Unicode NFC, whichever adapter read them.  Adapters
live in speechprompt/datasets/, one file each.
"""
from __future__ import annotations

import os
from pathlib import Path

import click
from tqdm import tqdm

from . import audio
from .datasets import ADAPTERS, SPLITS, Context, Item
from .io import (BadInput, Skipper, UniqueIds, Utterance, atomic_output, check_label, command, log,
                 normalize_label, output_dir_option, output_path_option, skip_bad_option)


class Checker:
    """Probes each audio file once, checks its format; None for a skipped file."""

    def __init__(self, skip: Skipper, sample_rate: int, any_rate: bool):
        self.skip, self.sample_rate, self.any_rate = skip, sample_rate, any_rate
        self.cache: dict[Path, object] = {}

    def __call__(self, path: Path, where: str | None):
        if path not in self.cache:
            self.cache[path] = None
            with self.skip.guard():
                self.cache[path] = self.check(path, where)
        return self.cache[path]

    def check(self, path: Path, where: str | None):
        if not path.is_file():
            raise BadInput("audio file not found", *locate(path, where))
        info = audio.probe(str(path), where)
        problem = None
        if info.samplerate != self.sample_rate:
            problem = f"sample rate {info.samplerate} Hz, not {self.sample_rate}"
        elif info.channels != 1:
            problem = f"{info.channels} channels, not mono"
        if problem and not self.any_rate:
            raise BadInput(f"{problem} (--any-rate lets it through)", *locate(path, where))
        return info


def locate(path: Path, where: str | None) -> tuple[str]:
    """Message prefix and `where` for a file: its record's file:line, else the file itself."""
    return (f"{where}: {path}",) if where else (str(path),)


def utterance(item: Item, check: Checker) -> Utterance | None:
    path = Path(os.path.abspath(item.path))
    for text in (item.id, str(path), item.label or "", item.speaker or ""):
        if "\t" in text or "\n" in text:
            raise BadInput(f"tab or newline in {text!r}", item.where or str(path))
    label = check_label(normalize_label(item.label), item.where or str(path))  # NFC, whatever the adapter
    info = check(path, item.where)
    if info is None:
        return None
    num_samples = info.frames if item.num_samples is None else item.num_samples
    if item.offset + num_samples > info.frames:
        raise BadInput(f"segment {item.offset}+{num_samples} past the end ({info.frames} samples)",
                       *locate(path, item.where))
    return Utterance(item.id, str(path), item.offset, num_samples, label, item.where or str(path),
                     item.speaker)


@command("List a dataset's audio per split as manifests: id, path, offset, num_samples, label. "
         f"DATASET is one of: {', '.join(sorted(ADAPTERS))}.")
@click.argument("dataset", type=click.Choice(sorted(ADAPTERS)), metavar="DATASET")
@click.argument("root", type=click.Path(path_type=Path))
@output_dir_option("--out-dir", type=click.Path(path_type=Path), help="Write OUT_DIR/{train,valid,test}.tsv.")
@click.option("--split", type=click.Choice(SPLITS), help="Write only this split, to -o.")
@output_path_option("-o", "--output", default="-", show_default=True, help="Output of --split, - for stdout.")
@click.option("--test-dir", type=click.Path(path_type=Path), help="speech_commands: v0.01's separate test set.")
@click.option("--path-column", default="path", show_default=True, help="table: the audio path column.")
@click.option("--label-column", "label_columns", multiple=True, default=["label"], show_default=True,
              help="table: the label column; repeat it for a multi-slot label.")
@click.option("--id-column", help="table: the id column (default: the path without its suffix).")
@click.option("--split-column", help="table: the split column of a single table (default: `split` if present).")
@click.option("--valid-percent", default=10.0, show_default=True, help="Hash-rule share of valid, where used.")
@click.option("--test-percent", default=10.0, show_default=True, help="Hash-rule share of test, where used.")
@click.option("--seed", default=1, show_default=True, help="Seed of the adapters' seeded splits.")
@click.option("--sample-rate", default=16000, show_default=True, help="The rate every file must have.")
@click.option("--any-rate", is_flag=True, help="Let other rates and stereo through (sp-quantize resamples and mixes down).")
@skip_bad_option
def main(dataset, root, out_dir, split, output, test_dir, path_column, label_columns, id_column,
         split_column, valid_percent, test_percent, seed, sample_rate, any_rate, skip_bad):
    if (out_dir is None) == (split is None):
        raise click.UsageError("give either --out-dir DIR or --split NAME [-o FILE]")
    skip = Skipper(skip_bad)
    check = Checker(skip, sample_rate, any_rate)
    ctx = Context(check, test_dir, path_column, tuple(label_columns), id_column, split_column,
                  valid_percent, test_percent, seed, skip)
    wanted = [split] if split else list(SPLITS)
    items = [item for item in ADAPTERS[dataset](root, ctx) if item.split in wanted]
    rows: dict[str, list[Utterance]] = {name: [] for name in wanted}
    ids = UniqueIds()
    for item in tqdm(items, desc=f"sp-manifest {dataset}", unit="file", disable=None):
        with skip.guard():
            utt = utterance(item, check)
            if utt is not None:
                ids.check(utt.id, utt.where)
                rows[item.split].append(utt)
    skip.report("files")
    for name in wanted:
        rows[name].sort(key=lambda utt: utt.id)
        labels = {utt.label for utt in rows[name]}
        log(f"{name}: {len(rows[name])} rows, {len(labels)} labels")
        if not rows[name]:
            log(f"warning: split {name} is empty")
    for name in wanted:
        with atomic_output(str(out_dir / f"{name}.tsv") if out_dir else output) as out:
            for utt in rows[name]:
                out.write(utt.row() + "\n")
