"""The labelled splits prompt tuning reads: a data-bin's sentences, checked, in the backbone's vocabulary."""
from __future__ import annotations

import hashlib
import os

from ..databin import load_dictionary, read_split
from ..io import BadInput, Skipper, log
from .labels import label_tokens


def labelled_sentences(data: str, split: str, vocab, positions: int, skip_bad: bool) -> tuple[list, list[str]]:
    """The sentences of `DATA/SPLIT` that are `units <s> label` and fit the uLM's `positions`, with their
    ids. A sentence without one `<s>` and a label, or too long, is an error naming it, or with `skip_bad`
    a counted skip."""
    split_data = read_split(data, split, vocab.index)
    skipper, kept, ids = Skipper(skip_bad), [], []
    too_long = 0
    for i, seq in enumerate(split_data.sentences):
        with skipper.guard():
            where = split_data.where(data, split, i)
            parts = label_tokens(seq, vocab.bos, vocab.eos)
            if parts is None or not len(parts[1]):
                raise BadInput("expected 'units <s> label'", where)
            if len(seq) > positions:
                too_long += 1
                label = len(parts[1])
                raise BadInput(f"{len(seq)} tokens (`</s> units <s> label`) do not fit the uLM's {positions} "
                               f"positions; crop the units: sp-lmdata --max-units {max(1, positions - label - 2)} "
                               f"(Make: MAX_UNITS)", where)
            kept.append(seq)
            ids.append(split_data.ids[i])
    if skip_bad and skipper.skipped:
        log(f"{split}: skipped {skipper.skipped} bad sentences ({too_long} of them longer than the uLM's {positions} "
            f"positions)")
    if not kept:
        raise BadInput(f"no labelled sentence in the {split} split", os.path.join(data, split))
    return kept, ids


def data_identity(data: str) -> str:
    """sha256 over the files of the train and valid splits and the dictionary: what a resume must find again."""
    digest = hashlib.sha256()
    for name in ("dict.txt", "train.idx", "train.bin", "valid.idx", "valid.bin"):
        with open(os.path.join(data, name), "rb") as f:
            digest.update(hashlib.file_digest(f, "sha256").digest())
    return digest.hexdigest()


def check_units_known(data: str, vocab, base: str) -> None:
    """Every symbol of the data-bin's dict.txt (its units: the k-means' centroids) must be a token of the
    backbone's vocabulary; a unit it lacks would silently read as `<unk>`. Refused in one line."""
    symbols = load_dictionary(os.path.join(data, "dict.txt")).symbols[4:]  # after fairseq's four specials
    missing = [s for s in symbols if vocab.index(s) == vocab.unk and s != vocab.symbols[vocab.unk]]
    if missing:
        units = sum(1 for s in vocab.symbols if s.isdigit())
        raise BadInput(f"the data-bin has {len(symbols)} units, the LM {base} has tokens for {units}: it cannot "
                       f"hold {len(missing)} of them ({', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}); "
                       f"fewer unit tokens than the k-means has centroids", os.path.join(data, "dict.txt"))
