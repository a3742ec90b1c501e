"""sp-binarize: LM data -> a fairseq data-bin directory.

    sp-binarize --dict dict.txt --out data-bin train=train.vlm valid=valid.vlm test=test.vlm

DIR gets `dict.txt` and, per split, `{split}.bin`/`{split}.idx` (mmap, the
same bytes as `fairseq-preprocess --only-source --srcdict dict.txt`, through
fairseq's own binariser) and `{split}.id`, the ids in the order of the
sentences, so predictions join back by id.  The text binarised is the text
after the tab (`<s>` becomes the dictionary's bos index, SpeechPrompt's
separator).  Without --dict the dictionary is GSLM-style, `0 1` ... `K-1 1`,
with K = --units, or one more than the largest unit in the given splits.
DIR is built beside itself and renamed into place, replacing an old DIR.

LM data with prosody columns (durations, and F0: `id<TAB>text<TAB>durations<TAB>f0`, see sp-lmdata)
adds two streams per split, `{split}.dur.bin/.idx` and `{split}.f0.bin/.idx` (the same mmap format,
int32), one value for every token of the sentence: a unit's duration in frames and its F0 in cents,
and for `<s>`, the label and `</s>` the value `NONE` (`prosody/__init__.py`). The lines of all splits
carry the same columns.
"""
from __future__ import annotations

import os
import shutil
import tempfile

import click

from .verbalizer import read_dict_symbols
from .io import (SEP, BadInput, Skipper, UniqueIds, command, is_number, lines, log, output_dir_option,
                 skip_bad_option, writing)
from .io.records import parse_prosody


def parse_split(spec: str) -> tuple[str, str]:
    name, eq, path = spec.partition("=")
    if not eq or not name or not path or "/" in name:
        raise click.BadParameter(f"{spec!r}: expected SPLIT=PATH, e.g. train=train.lm (PATH - is stdin)")
    return name, path


def read_split(path: str, skipper: Skipper, known: set | None, units: int | None = None,
               first: dict | None = None) -> list[tuple]:
    """(id, text after the tab, durations, f0) of each line; with `known`, every token must be in it; with
    `units`, below it. `first["columns"]` holds the prosody columns of the first line read, in this split or
    an earlier one: every line must carry the same."""
    first = {} if first is None else first
    records, ids = [], UniqueIds()
    for where, text in lines(path):
        with skipper.guard():
            uid, *fields = text.split("\t")
            if not fields or not uid or len(fields) > 3:
                raise BadInput("expected 'id<TAB>text[<TAB>durations<TAB>f0]'", where)
            body = fields[0]
            tokens = body.split()
            count = tokens.index(SEP) if SEP in tokens else len(tokens)
            durations, f0 = parse_prosody(fields[1:], count, where)
            carried = [name for name, value in (("durations", durations), ("f0", f0)) if value is not None]
            expected = first.setdefault("columns", carried)
            if carried != expected:
                raise BadInput(f"prosody columns: {' and '.join(carried) or 'none'}, where the first line has "
                               f"{' and '.join(expected) or 'none'}", where)
            if not tokens:
                raise BadInput(f"utterance {uid!r} has no tokens", where)
            if known is not None:
                unknown = [t for t in tokens if t not in known]
                if unknown:
                    raise BadInput(f"token {unknown[0]!r} is not in the dictionary", where)
            elif any(not (is_number(t) or t == SEP) for t in tokens):
                bad = next(t for t in tokens if not (is_number(t) or t == SEP))
                raise BadInput(f"token {bad!r} is not a unit; give the uLM's --dict", where)
            elif units is not None and any(t != SEP and int(t) >= units for t in tokens):
                bad = next(t for t in tokens if t != SEP and int(t) >= units)
                raise BadInput(f"unit {bad} found, but --units is {units} (units 0..{units - 1})", where)
            ids.check(uid, where)
            records.append((uid, body, durations, f0))
    return records


def write_split(directory: str, split: str, records, dictionary) -> int:
    """fairseq-preprocess's path for one split: VocabularyDatasetBinarizer into an mmap builder; and the
    prosody streams, where the lines carry them."""
    import numpy as np
    import torch
    from fairseq.binarizer import BinarizeSummary, VocabularyDatasetBinarizer
    from fairseq.data import indexed_dataset

    from .prosody import NONE, STREAMS, stream_values

    prefix = os.path.join(directory, split)
    builder = indexed_dataset.make_builder(prefix + ".bin", impl="mmap", vocab_size=len(dictionary))
    prosodic = bool(records) and records[0][2] is not None
    streams = [indexed_dataset.MMapIndexedDatasetBuilder(f"{prefix}.{name}.bin", dtype=np.int32)
               for name in STREAMS] if prosodic else []
    binarizer, summary = VocabularyDatasetBinarizer(dictionary, append_eos=True), BinarizeSummary()
    with open(prefix + ".id", "w", encoding="utf-8") as ids:
        for uid, body, durations, f0 in records:
            tokens = binarizer.binarize_line(body, summary)
            builder.add_item(tokens)
            if prosodic:
                dur, pitch = stream_values(durations, f0, len(durations))
                rest = len(tokens) - len(durations)  # `<s>`, the label, `</s>`: no prosody
                streams[0].add_item(torch.tensor(dur + [0] * rest, dtype=torch.int32))
                streams[1].add_item(torch.tensor(pitch + [NONE] * rest, dtype=torch.int32))
            ids.write(uid + "\n")
    builder.finalize(prefix + ".idx")
    for name, stream in zip(STREAMS, streams):
        stream.finalize(f"{prefix}.{name}.idx")
    return summary.num_tok


def replace_dir(tmp: str, out: str) -> None:
    old = None
    if os.path.lexists(out):
        if not os.path.isdir(out):
            raise BadInput("exists and is not a directory", out)
        old = tempfile.mkdtemp(dir=os.path.dirname(out), prefix=f".{os.path.basename(out)}.old.")
        os.rename(out, os.path.join(old, "d"))
    os.rename(tmp, out)
    if old:
        shutil.rmtree(old)


@command("Binarise LM data (`id<TAB>text`) into a fairseq data-bin DIR: dict.txt, SPLIT.bin/.idx/.id.")
@click.argument("splits", nargs=-1, required=True, metavar="SPLIT=PATH...")
@output_dir_option("--out", "out", required=True, type=click.Path(file_okay=False), help="The data-bin directory.")
@click.option("--dict", "dict_path", type=click.Path(exists=True, dir_okay=False),
              help="The uLM's dict.txt, used as is (e.g. GSLM's `0 1` ... `99 1`).")
@click.option("--units", type=click.IntRange(min=1),
              help="Without --dict: the generated dictionary holds units 0..UNITS-1 (default: up to the largest seen).")
@skip_bad_option
def main(splits, out, dict_path, units, skip_bad):
    pairs = [parse_split(s) for s in splits]
    names = [name for name, _ in pairs]
    if len(set(names)) != len(names):
        raise click.BadParameter(f"a split is named twice: {' '.join(names)}")
    if sum(path == "-" for _, path in pairs) > 1:
        raise click.BadParameter("only one split can read stdin")
    if dict_path and units:
        raise click.BadParameter("--units is for the generated dictionary; not with --dict")
    known = {SEP, "<pad>", "</s>", "<unk>", *read_dict_symbols(dict_path)} if dict_path else None
    skipper = Skipper(skip_bad)
    first = {}  # the prosody columns of the first line: every split carries the same
    data = {name: read_split(path, skipper, known, units, first) for name, path in pairs}
    skipper.report("lines")
    from fairseq.data import Dictionary  # slow to import: after the input is checked

    if dict_path:
        dictionary = Dictionary.load(dict_path)
    else:
        largest = max((int(t) for records in data.values() for _, body, *_ in records
                       for t in body.split() if t != SEP), default=-1)
        dictionary = Dictionary()
        for unit in range(units or largest + 1):
            dictionary.add_symbol(str(unit), n=1)
    given, out = out, os.path.abspath(out)
    parent = os.path.dirname(out)
    tmp = None
    try:
        with writing(given, parent):  # a full disk: one line, and the half-written directory removed
            os.makedirs(parent, exist_ok=True)
            tmp = tempfile.mkdtemp(dir=parent, prefix=f".{os.path.basename(out)}.")
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o777 & ~umask)  # mkdtemp's 0700 -> a normal directory
            if dict_path:
                shutil.copyfile(dict_path, os.path.join(tmp, "dict.txt"))
            else:
                dictionary.save(os.path.join(tmp, "dict.txt"))
            for name, records in data.items():
                tokens = write_split(tmp, name, records, dictionary)
                log(f"{name}: {len(records)} sentences, {tokens} tokens (with eos)")
            replace_dir(tmp, out)
    finally:
        if tmp and os.path.exists(tmp):
            shutil.rmtree(tmp)
    log(f"wrote {out} ({len(dictionary)} types incl. {dictionary.nspecial} specials)")
