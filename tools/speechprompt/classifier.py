"""Labels for new audio from an exported model bundle: the Python API, and what sp-classify runs.

    from speechprompt.classifier import Classifier

    classifier = Classifier.load("exp/SCR/bundle.tar")        # or the bundle directory; device="auto"
    classifier.labels                                          # the candidate labels
    for c in classifier.predict(["a.wav", "clips/b.flac"]):
        print(c.id, c.label, c.score, c.top_k)                 # top_k: [(label, probability), ...]
    classifier.predict([wave], sample_rate=8000)               # numpy arrays: 1-D, or frames x channels

Each input goes through exactly what the chain did to the test split, with the same code: audio read,
mixed to mono and resampled (`audio.py`; arrays take the same last two steps), the encoder with the
bundle's options, the nearest k-means centre per frame, runs merged and long sequences cropped
(`units.py`, as sp-dedup and sp-lmdata), `</s> units <s>` scored among the candidate labels
(`prompting/decoding.py`, as sp-sample), and the tokens mapped back to labels by the verbalizer. So a
file of the test split gets the label that the chain's `predictions.jsonl` gives its id.

Audio is encoded in the batches sp-quantize makes (`encoders/stream.py`); sentences are decoded in
token batches over windows of `window` utterances, like sp-sample over a split of that size, so
results stream out in input order with bounded memory.
"""
from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import torch

from . import audio
from .io import BadInput, Prediction, Skipper, UniqueIds, Units, Utterance, lines, log, parse_manifest, read_manifest
from .model_bundle import ModelBundle, open_bundle

DECODE_WINDOW = 4096  # utterances decoded together; larger than most test splits, so batches match sp-sample's


@dataclasses.dataclass
class Classification:
    """One input's result: its id, its audio path (None for an array), the best label and its probability
    among the candidates, and the `top_k` (label, probability) pairs, best first."""

    id: str
    path: str | None
    label: str
    score: float
    top_k: list[tuple[str, float]]

    def row(self) -> str:
        """The JSONL line sp-classify writes (docs/classify.md)."""
        return json.dumps({"id": self.id, "path": self.path, "label": self.label, "score": self.score,
                           "top_k": [{"label": label, "score": score} for label, score in self.top_k]},
                          ensure_ascii=False)


class Classifier:
    """A bundle's encoder, k-means, uLM, prompt and verbalizer, loaded once; `predict` labels audio."""

    def __init__(self, bundle: ModelBundle, device: torch.device):
        from .encoders import EncoderOptionError, build
        from .kmeans_model import Quantizer, check_encoder, load_kmeans
        from .prompting.decoding import Decoder, load_prompt, verbalizer_decoder

        where = bundle.source
        manifest = self.manifest = bundle.manifest
        self.device = device
        encoder = manifest["encoder"]
        options = dict(encoder.get("options") or {})
        if encoder.get("name") == "hubert":
            options["checkpoint"] = bundle.path("hubert")
        try:
            self.encoder = build(str(encoder.get("name")), device, **options)
        except EncoderOptionError as error:
            raise BadInput(f"refused: the bundle's encoder cannot be built: {error}", where) from None
        if self.encoder.spec() != encoder.get("spec"):
            raise BadInput(f"refused: the bundle records encoder {encoder.get('spec')}, but its options build "
                           f"{self.encoder.spec()}", where)
        centers, fitted_on = load_kmeans(bundle.path("kmeans"))
        check_encoder(centers, fitted_on, self.encoder, bundle.path("kmeans"), encoder.get("kmeans_rate"))
        self.quantizer = Quantizer(centers, device)
        units = manifest["units"]
        self.max_units, self.crop = units.get("max_units"), units.get("crop", "center")
        self.model, ckpt = load_prompt(bundle.path("prompt"), device, bundle.path("ulm"), bundle.path("dict"))
        self.vocab = self.model.base.vocab
        candidates = ckpt["labels"]
        if not candidates:
            raise BadInput("refused: the prompt checkpoint lists no train labels", where)
        to_label = verbalizer_decoder(bundle.path("verbalizer"), ckpt, candidates)
        self.labels: list[str] = [to_label(c.split()) for c in candidates]
        self.decoder = Decoder(self.model, self.vocab, candidates)
        self.longest_label = max(len(c.split()) for c in candidates)
        self.positions = self.model.base.shape.max_positions
        self.audio_seconds = 0.0  # read so far, at the encoder's rate

    @classmethod
    def load(cls, path: str | os.PathLike, device: str = "auto", threads: int | None = None) -> Classifier:
        """The classifier of the bundle at `path` (a directory or its tar), verified part by part.

        `device`: auto (the first GPU torch sees, else the CPU), cpu, cuda or cuda:N."""
        from .io import pick_device

        device = pick_device(device, threads=threads)
        with open_bundle(os.fspath(path)) as bundle:  # a tar's temporary copy goes once the parts are loaded
            return cls(bundle, device)

    @property
    def sample_rate(self) -> int:
        """The encoder's rate: files and arrays are resampled to it."""
        return self.encoder.sample_rate

    # ------------------------------------------------------------------ the API
    def predict(self, inputs: Sequence, sample_rate: int | None = None, ids: Sequence[str] | None = None,
                top_k: int = 5, skip_bad: bool = False, progress: bool = False, **options) -> list[Classification | None]:
        """A Classification for each input, in order: audio file paths (str or Path), or numpy arrays
        (float in [-1, 1], or int16 PCM; 1-D, or frames x channels, mixed down) at `sample_rate` Hz.

        `ids`: one per input [default: a path without its suffix, an array's position]. A bad input
        raises `BadInput`; with `skip_bad`, its place holds None instead. `options`: `batch_seconds`,
        `batch_size`, `max_tokens`, `precision`, as sp-classify's."""
        if isinstance(inputs, (str, os.PathLike, np.ndarray)):
            raise TypeError("predict takes a sequence of inputs: predict([path]) or predict([wave], sample_rate=...)")
        if ids is not None and len(ids) != len(inputs):
            raise ValueError(f"{len(ids)} ids for {len(inputs)} inputs")
        skipper = Skipper(skip_bad)
        arrays: dict[int, np.ndarray] = {}  # id() of an array's utterance -> its samples
        position: dict[int, int] = {}  # id() of each utterance -> its input's position
        utterances = []
        for n, item in enumerate(inputs):
            with skipper.guard():
                if isinstance(item, (str, os.PathLike)):
                    path = os.fspath(item)
                    utt = _whole_file(ids[n] if ids is not None else file_id(path), path, "")
                else:
                    if sample_rate is None:
                        raise ValueError("arrays need their sample rate: predict(waves, sample_rate=16000)")
                    wave = as_wave(item, f"input {n}")
                    utt = Utterance(ids[n] if ids is not None else str(n), "", 0, len(wave), None, f"input {n}")
                    arrays[id(utt)] = wave
                position[id(utt)] = n
                utterances.append(utt)

        def load(utt: Utterance, rate: int) -> np.ndarray:
            if id(utt) in arrays:
                return audio.resample(arrays[id(utt)], sample_rate, rate)
            return audio.load(utt, rate)

        results: list[Classification | None] = [None] * len(inputs)
        for utt, result in self.classify(utterances, skipper, top_k=top_k, load=load, progress=progress,
                                         total=len(utterances), **options):
            results[position[id(utt)]] = result
        return results

    # ------------------------------------------------------------ the pipeline
    def classify(self, utterances: Iterable[Utterance], skipper: Skipper, top_k: int = 5, load=None,
                 batch_seconds: float = 60.0, batch_size: int = 64, max_tokens: int = 16384, precision: str = "fp32",
                 window: int = DECODE_WINDOW, progress: bool = True, total: int | None = None
                 ) -> Iterator[tuple[Utterance, Classification | None]]:
        """(utterance, Classification) in input order; None for an utterance skipped under `skipper`."""
        from tqdm import tqdm

        from .encoders.stream import encode

        if precision != "fp32" and self.device.type != "cuda":
            raise ValueError(f"precision {precision} needs a GPU: the CPU stays fp32")
        read = load or audio.load

        def counted(utt: Utterance, rate: int) -> np.ndarray:
            wave = read(utt, rate)
            self.audio_seconds += len(wave) / rate
            return wave

        pending: list[tuple[Utterance, torch.Tensor | None]] = []
        bar = tqdm(total=total, desc="sp-classify", unit="utt", file=sys.stderr, disable=not progress)
        try:
            for utt, feats in encode(utterances, self.encoder, skipper, batch_seconds, load=counted):
                prefix = None
                if feats is not None:
                    with skipper.guard():
                        prefix = self.sentence(feats, utt.where or utt.path)
                pending.append((utt, prefix))
                bar.update()
                if len(pending) >= window:
                    yield from self._decode(pending, top_k, batch_size, max_tokens, precision)
                    pending = []
            yield from self._decode(pending, top_k, batch_size, max_tokens, precision)
        finally:
            bar.close()

    def sentence(self, feats: torch.Tensor, where: str) -> torch.Tensor:
        """Frames -> `</s> units <s>` as token indices: k-means, runs merged, cropped (sp-quantize,
        sp-dedup, sp-lmdata) and mapped through the uLM's dictionary (sp-binarize)."""
        from .prompting.decoding import check_length, sentence_prefix
        from .units import crop, dedup

        with torch.inference_mode():
            frames = [str(u) for u in self.quantizer(feats).tolist()]
        units = dedup(Units("", frames, None)).units
        if self.max_units and len(units) > self.max_units:
            units = crop(units, self.max_units, self.crop)
        tokens = [self.vocab.index(u) for u in units]
        if self.vocab.unk in tokens:
            raise BadInput(f"unit {units[tokens.index(self.vocab.unk)]} is not in the uLM's dictionary", where)
        check_length(len(tokens), self.longest_label, self.positions, where)
        return sentence_prefix(torch.tensor(tokens, dtype=torch.long), self.vocab)

    def _decode(self, pending, top_k, batch_size, max_tokens, precision):
        from .prompting.decoding import score_batches

        items = [(i, prefix, None) for i, (_, prefix) in enumerate(pending) if prefix is not None]
        results = {}
        for batch, probs in score_batches(self.decoder, items, batch_size, max_tokens, self.device, precision):
            for row, (i, _, _) in enumerate(batch):
                utt = pending[i][0]
                best = Prediction.best(utt.id, "", None, self.labels, probs[row].tolist())  # sp-sample's choice
                ranked = sorted(best.scores.items(), key=lambda item: -item[1])[:top_k]  # stable: ties keep order
                results[i] = Classification(utt.id, utt.path or None, best.prediction, best.score, ranked)
        for i, (utt, _) in enumerate(pending):
            yield utt, results.get(i)


# ------------------------------------------------------------------- inputs
def as_wave(array, where: str) -> np.ndarray:
    """An array as float32 mono samples, as audio.load reads a file: int16 PCM scaled to [-1, 1],
    frames x channels averaged."""
    wave = np.asarray(array)
    if wave.dtype == np.int16:
        wave = wave.astype(np.float32) / 32768.0
    elif wave.dtype.kind not in "f":
        raise BadInput(f"an array of {wave.dtype}: give float samples in [-1, 1] or int16 PCM", where)
    wave = wave.astype(np.float32, copy=False)
    if wave.ndim == 2:
        wave = wave.mean(axis=1)
    elif wave.ndim != 1:
        raise BadInput(f"an array of shape {wave.shape}: give samples (1-D) or frames x channels (2-D)", where)
    if not len(wave):
        raise BadInput("empty audio (an array of no samples)", where)
    if not np.isfinite(wave).all():
        raise BadInput("the array holds NaN or infinity", where)
    return wave


def file_id(path: str) -> str:
    return os.path.splitext(path)[0]


def folder_files(directory: str) -> list[tuple[str, str]]:
    """(id, path) of the audio files below `directory`, sorted; the id is the path below it without its
    suffix, made as sp-manifest makes ids (NFC, whitespace runs as `_`)."""
    from .datasets import AUDIO_SUFFIXES, make_id

    found = []
    for top, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.lower().endswith(AUDIO_SUFFIXES) and not name.startswith("."):
                path = os.path.join(top, name)
                found.append((make_id(*Path(os.path.relpath(path, directory)).with_suffix("").parts), path))
    return sorted(found)


def inputs_from(arguments: Sequence[str], skipper: Skipper) -> Iterator[Utterance]:
    """sp-classify's inputs, in order: audio files, folders (their audio files, sorted), manifests (`.tsv`,
    sp-manifest's rows), and `-`: lines of stdin, each a path or a manifest row. Ids must be unique."""
    ids = UniqueIds()
    for utt in _inputs(arguments, skipper):
        good = None
        with skipper.guard():
            ids.check(utt.id, utt.where or utt.path)
            good = utt
        if good is not None:
            yield good


def _inputs(arguments, skipper):
    for argument in arguments:
        if argument == "-":
            for where, text in lines("-"):
                with skipper.guard():
                    if "\t" in text:
                        yield parse_manifest(text, where)
                    else:
                        yield _whole_file(file_id(text), text, where)
        elif os.path.isdir(argument):
            files = folder_files(argument)
            if not files:
                raise BadInput("no audio files in this folder", argument)
            for uid, path in files:
                with skipper.guard():
                    yield _whole_file(uid, path, "")
        elif argument.endswith(".tsv"):
            yield from read_manifest(argument, skipper)
        else:
            with skipper.guard():
                yield _whole_file(file_id(argument), argument, "")


def _whole_file(uid: str, path: str, where: str) -> Utterance:
    """A whole audio file; its header is read now, so an undecodable file is one line before any work."""
    info = audio.probe(path, where or None)
    return Utterance(uid, path, 0, info.frames, None, where)


def log_speed(count: int, seconds_of_audio: float, started: float) -> None:
    took = time.perf_counter() - started
    log(f"classified {count} inputs, {seconds_of_audio:.1f} s of audio in {took:.1f} s "
        f"({seconds_of_audio / max(took, 1e-9):.1f} audio seconds per second)")
