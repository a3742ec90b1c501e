"""Streaming a manifest through an encoder: batches of similar length, in manifest order, bounded memory."""
from __future__ import annotations

from typing import Callable, Iterable, Iterator

import numpy as np
import torch

from .. import audio
from ..io import Skipper, Utterance
from . import Encoder


def batches(lengths: list[int], max_samples: int | None, max_items: int | None) -> Iterator[list[int]]:
    """Indices grouped by length (sorted), each batch at most max_items, or max_samples when padded."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batch: list[int] = []
    for i in order:
        full = len(batch) >= max_items if max_items else (len(batch) + 1) * lengths[i] > max_samples
        if batch and full:
            yield batch
            batch = []
        batch.append(i)
    if batch:
        yield batch


def encode(utterances: Iterable[Utterance], encoder: Encoder, skipper: Skipper,
           batch_seconds: float = 60.0, batch_size: int | None = None,
           window_batches: int = 16, load: Callable[[Utterance, int], np.ndarray] | None = None
           ) -> Iterator[tuple[Utterance, torch.Tensor | None]]:
    """Yield (utterance, [T, dim] features) in input order; (utterance, None) for a skipped one.

    Audio is read a window at a time (about `window_batches` batches), sorted
    by length inside the window so batches pad little, and encoded; only the
    window's audio and one batch's features are held in memory. `load(utterance,
    rate)` reads one utterance's wave (default `audio.load`; sp-classify's
    Python API hands arrays in this way).
    """
    load = load or audio.load
    max_samples = int(batch_seconds * encoder.sample_rate)
    window_samples = max_samples * window_batches
    window_items = batch_size * window_batches if batch_size else None
    window: list[tuple[Utterance, np.ndarray | None]] = []
    held = 0
    for utt in utterances:
        wave = None
        with skipper.guard():
            wave = load(utt, encoder.sample_rate)
        window.append((utt, wave))
        held += 0 if wave is None else len(wave)
        if held >= window_samples or (window_items and len(window) >= window_items):
            yield from _encode_window(window, encoder, max_samples, batch_size)
            window, held = [], 0
    yield from _encode_window(window, encoder, max_samples, batch_size)


def _encode_window(window, encoder, max_samples, batch_size):
    good = [i for i, (_, wave) in enumerate(window) if wave is not None]
    feats: dict[int, torch.Tensor] = {}
    done = 0
    with torch.inference_mode():
        for batch in batches([len(window[i][1]) for i in good], max_samples, batch_size):
            items = [good[b] for b in batch]
            for i, f in zip(items, encoder.features([window[i][1] for i in items], max_samples)):
                feats[i] = f
            while done < len(window) and (window[done][1] is None or done in feats):
                yield window[done][0], feats.pop(done, None)  # in order, as soon as possible
                done += 1
    for utt, _ in window[done:]:
        yield utt, None
