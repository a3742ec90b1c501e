"""What fairseq's `speech_unit_modeling` task (pGSLM's) reads, made from a data-bin with prosody streams.

`sp-pretrain --arch pgslm` trains fairseq's multi-stream `transformer_ulm` with fairseq's own task,
model and criterion; this module lays its data out as fairseq's pgslm recipe does (`CodeDataset`):
per split `SPLIT.code.npy`, `SPLIT.dur.npy`, `SPLIT.f0q.npy` (all utterances concatenated, each unit
then `</s>`), `SPLIT.leng.txt` and `SPLIT.path.txt` (here the ids), and `data_config.json`.

F0 is given to fairseq already quantized (its `precomp` F0 type): 32 bins of equal mass over the
voiced units of the train split (pGSLM's `quantize_f0.py`: 31 edges at the 1/32 ... 31/32 quantiles of
the speaker-normalised log-F0) and one more value for unvoiced units, so 33 F0 values; `</s>` gets the
F0 dictionary's `<s>`, what the pgslm backbone gives every token that is no unit. The edges are saved
as `f0_bins.json` beside the checkpoint (prompting/backbones/pgslm.py reads them).
"""
from __future__ import annotations

import json
import os

import numpy as np

from . import NONE, UNVOICED

BINS = 32
F0_CODES = BINS + 1  # the bins and the unvoiced value
F0_NAME = "f0q"


def fit_bins(streams, bins: int = BINS) -> list[float]:
    """`bins - 1` edges (cents) at equal-mass quantiles of the voiced units' F0; evenly spaced ones (60 cents
    apart around 0) when the split has fewer voiced units than bins."""
    values = np.concatenate([s[:, 1].numpy() for s in streams]) if streams else np.zeros(0)
    voiced = values[(values != NONE) & (values != UNVOICED)].astype(np.float64)
    if len(np.unique(voiced)) < bins:
        return [(i - (bins - 2) / 2) * 60.0 for i in range(bins - 1)]
    return [float(e) for e in np.quantile(voiced, np.arange(1, bins) / bins)]


def f0_codes(f0: np.ndarray, edges: list[float]) -> np.ndarray:
    """Bin of each unit's F0 (`naive_quantize`: how many edges it exceeds), BINS for unvoiced."""
    codes = np.searchsorted(np.asarray(edges), f0, side="left")
    return np.where(f0 == UNVOICED, BINS, codes)


def write_split(directory: str, split: str, sentences, streams, ids, n_units: int, edges) -> str:
    """One split as CodeDataset's files; returns its manifest prefix. `sentences`: unit indices (0..n-1) and
    `</s>` last, `streams`: T x 2, as databin reads them."""
    prefix = os.path.join(directory, split)
    codes, durs, f0s, lengths = [], [], [], []
    eos, f0_none = n_units + 2, F0_CODES  # UnitDictionary: units, then <s> <pad> </s> <unk>
    for units, values in zip(sentences, streams):
        units, values = units.numpy()[:-1], values.numpy()[:-1]  # the units; `</s>` is appended as CodeDataset does
        codes.append(np.append(units, eos))
        durs.append(np.append(values[:, 0], 0))
        f0s.append(np.append(f0_codes(values[:, 1], edges), f0_none))
        lengths.append(len(units) + 1)
    np.save(prefix + ".code.npy", np.concatenate(codes).astype(np.int16))
    np.save(prefix + ".dur.npy", np.concatenate(durs).astype(np.int16))
    np.save(f"{prefix}.{F0_NAME}.npy", np.concatenate(f0s).astype(np.int16))
    with open(prefix + ".leng.txt", "w") as f:
        f.writelines(f"{n}\n" for n in lengths)
    with open(prefix + ".path.txt", "w") as f:
        f.writelines(f"{uid}\n" for uid in ids)
    return prefix


def write_config(directory: str, manifests: dict[str, str], n_units: int) -> str:
    path = os.path.join(directory, "data_config.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"manifests": manifests, "n_units": n_units, "f0_vq_n_units": F0_CODES, "f0_vq_type": "precomp",
                   "f0_vq_name": F0_NAME, "code_hop_size": 320, "sampling_rate": 16000}, f, indent=1)
    return path


def write_bins(path: str, edges: list[float]) -> None:
    from ..prompting.backbones.pgslm import BINS_FORMAT

    with open(path, "w", encoding="utf-8") as f:
        json.dump({"format": BINS_FORMAT, "edges_cents": edges, "unvoiced": "symbol"}, f, indent=1)
        f.write("\n")
