"""A tiny experiment run through the chain's tools by hand (no Make), then exported: what the sp-classify
tests and bench_classify compare against. The audio is generated here; the uLM is a random fairseq
transformer_lm built with fairseq's own classes (prompt_fixtures), the HuBERT a random small one
(test_quantize.save_hubert)."""
from __future__ import annotations

import json
import os
from types import SimpleNamespace

import numpy as np
import soundfile as sf

from conftest import sp
from prompt_fixtures import make_lm

K = 16
MAX_UNITS = 40  # small, so some utterances are cropped as sp-lmdata crops them
CLASSES = ("low", "high", "sweep")
LOGMEL = ("--encoder", "logmel", "--deltas", "--cmvn", "--subsample", "2")


def clip(label: str, seconds: float, rng: np.random.Generator, rate: int = 16000) -> np.ndarray:
    """A tone, a higher tone or a rising sweep, at a random place in noise: three classes a prompt can tell."""
    t = np.arange(int(seconds * rate)) / rate
    f0 = {"low": 300.0, "high": 1800.0, "sweep": 400.0}[label] * rng.uniform(0.9, 1.1)
    phase = 2 * np.pi * (f0 * t + (900.0 * t * t if label == "sweep" else 0.0))
    tone = np.sin(phase) * np.clip(np.sin(np.pi * t / t[-1]) * 3, 0, 1)
    x = 0.3 * tone + 0.02 * rng.standard_normal(len(t))
    return (x / np.abs(x).max() * rng.uniform(0.3, 0.7)).astype(np.float32)


def write_corpus(root, counts=None, seed=0, seconds=(0.4, 1.3)):
    """root/SPLIT/LABEL/N.wav and a manifest per split; lengths vary (0.4-1.3 s). One test file is
    8 kHz stereo, so the chain and sp-classify both resample and mix it down."""
    counts = counts or {"train": 30, "valid": 9, "test": 12}
    rng = np.random.default_rng(seed)
    manifests = {}
    for split, n in counts.items():
        rows = []
        for i in range(n):
            label = CLASSES[i % len(CLASSES)]
            wave = clip(label, rng.uniform(*seconds), rng)
            rate = 16000
            if split == "test" and i == 1:
                rate, wave = 8000, np.stack([wave[::2], 0.5 * wave[::2]], axis=1)
            path = root / "audio" / split / label / f"{i:03d}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, wave, rate)
            rows.append(f"{label}/{i:03d}\t{path}\t0\t{len(wave)}\t{label}\n")
        manifests[split] = root / "manifest" / f"{split}.tsv"
        manifests[split].parent.mkdir(parents=True, exist_ok=True)
        manifests[split].write_text("".join(rows))
    return manifests


def run_chain(root, encoder_args=LOGMEL, counts=None, epochs=3, k=K, max_units=MAX_UNITS, lm_shape=None):
    """The chain of mk/experiment.mk by hand: k-means, quantize | dedup, lmdata (cropped), verbalize,
    binarize, a random uLM (`lm_shape`: prompt_fixtures.build_lm's sizes), sp-train, sp-sample,
    sp-score; then sp-export to root/bundle and bundle.tar."""
    manifests = write_corpus(root, counts)
    km = root / "km.bin"
    sp("kmeans", *encoder_args, "-k", k, "--seed", 1, "--device", "cpu", "--threads", 1, manifests["train"], "-o", km)
    for split, manifest in manifests.items():  # as Make runs them, `sp-quantize | sp-dedup`, forked one by one
        frames = sp("quantize", *encoder_args, "--kmeans", km, "--device", "cpu", "--threads", 1, manifest).stdout
        sp("dedup", "-o", root / f"{split}.units", input=frames)
        sp("lmdata", "--max-units", max_units, "--crop", "center", root / f"{split}.units", "-o", root / f"{split}.lm")
    lm = make_lm(str(root / "ulm"), units=k, **(lm_shape or dict(layers=2, dim=32, heads=4, ffn=64)))
    dictionary = root / "ulm" / "dict.txt"
    sp("verbalize", "fit", "--method", "freq", "--seed", 1, "--dict", dictionary, root / "train.lm",
       "-o", root / "verbalizer.json")
    for split in manifests:
        sp("verbalize", "apply", root / "verbalizer.json", root / f"{split}.lm", "-o", root / f"{split}.vlm")
    sp("binarize", "--dict", dictionary, "--out", root / "data-bin", *(f"{s}={root}/{s}.vlm" for s in manifests))
    sp("train", root / "data-bin", "--base", lm, "--verbalizer", root / "verbalizer.json", "--max-epoch", epochs,
       "--batch-size", 8, "--prompt-length", 3, "--lr", 3e-2, "--seed", 1, "--device", "cpu", "--threads", 1,
       "-o", root / "prompt.pt")
    sp("sample", root / "data-bin", "--split", "test", "--prompt", root / "prompt.pt", "--verbalizer",
       root / "verbalizer.json", "--device", "cpu", "--threads", 1, "-o", root / "predictions.jsonl")
    sp("score", root / "predictions.jsonl", "-o", root / "metrics.json")
    sp("export", "--prompt", root / "prompt.pt", "--verbalizer", root / "verbalizer.json", "--kmeans", km,
       *encoder_args, "--max-units", max_units, "--crop", "center", "--metrics", root / "metrics.json",
       "--name", "tiny", "-o", root / "bundle", "--tar", root / "bundle.tar")
    predictions = {}
    for line in (root / "predictions.jsonl").read_text().splitlines():
        record = json.loads(line)
        predictions[record["id"]] = record
    return SimpleNamespace(root=root, manifests=manifests, km=km, lm=lm, bundle=root / "bundle",
                           tar=root / "bundle.tar", predictions=predictions, audio=root / "audio")


def split_files(chain):
    """(id, path) of the test split's files, as its manifest lists them."""
    rows = [line.split("\t") for line in chain.manifests["test"].read_text().splitlines()]
    return [(row[0], row[1]) for row in rows]


def flip_byte(path, offset=None):
    """Change one byte of a file (in the middle by default)."""
    data = bytearray(open(path, "rb").read())
    offset = len(data) // 2 if offset is None else offset
    data[offset] ^= 0x01
    open(path, "wb").write(bytes(data))


def files_below(directory):
    return sorted(os.path.relpath(os.path.join(d, f), directory) for d, _, fs in os.walk(directory) for f in fs)
