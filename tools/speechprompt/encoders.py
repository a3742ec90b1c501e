"""Speech encoders behind one tiny interface, chosen by name (after textlesslib).

An encoder turns waveforms into frame features:

    encoder = build("logmel", device)           # or build("hubert", device, checkpoint=..., layer=6)
    encoder.sample_rate, encoder.hop, encoder.dim   # Hz, frames per second, feature size
    encoder.features([wave, ...])                   # 1-D float32 arrays at sample_rate -> [T_i, dim] tensors

Audio arrives already at `encoder.sample_rate` (audio.load resamples at the
edge); features are returned on the encoder's device. `encode()` streams a
manifest through an encoder in batches, in manifest order.
"""
from __future__ import annotations

import math
import os
from typing import Iterable, Iterator

import click
import numpy as np
import torch
import torch.nn.functional as F

from . import audio
from .io import BadInput, Skipper, Utterance

ENCODERS: dict[str, type] = {}


def register(name: str):
    def wrap(cls):
        cls.name = name
        ENCODERS[name] = cls
        return cls
    return wrap


class Encoder:
    name: str
    sample_rate: int = 16000
    hop: float  # frames per second
    dim: int
    pad_exact: bool = True  # zero padding does not change the frames of a shorter wave in the batch

    def spec(self) -> dict:
        """What makes its features what they are (not where the files are): stored with a fitted k-means."""
        return {"encoder": self.name}

    def features(self, waves: list[np.ndarray], max_samples: int | None = None) -> list[torch.Tensor]:
        """[T_i, dim] features of each wave; `max_samples` caps the padded samples of one model call."""
        raise NotImplementedError


# ---------------------------------------------------------------------- logmel
def _mel(f):
    return 1127.0 * np.log1p(np.asarray(f, dtype=np.float64) / 700.0)


def kaldi_mel_banks(bins: int, n_fft: int, rate: int, low: float = 20.0, high: float = 0.0) -> np.ndarray:
    """Kaldi's triangular mel filters, [n_fft // 2 + 1, bins] (the Nyquist row is zero, as in Kaldi)."""
    high = high if high > 0 else rate / 2 + high
    edges = np.linspace(_mel(low), _mel(high), bins + 2)
    left, center, right = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    mel = _mel(np.arange(n_fft // 2) * rate / n_fft)[None, :]
    up, down = (mel - left) / (center - left), (right - mel) / (right - center)
    weights = np.where((mel > left) & (mel < right), np.where(mel <= center, up, down), 0.0)
    return np.concatenate([weights.T, np.zeros((1, bins))]).astype(np.float32)


@register("logmel")
class LogMel(Encoder):
    """Kaldi-compatible log-mel filterbank (`compute-fbank-feats` defaults but 80 bins, no dither).

    25 ms povey window, 10 ms shift (100 frames/s), DC removal, pre-emphasis
    0.97, power spectrum, 80 mel bins from 20 Hz to Nyquist, log. Samples are
    scaled to the 16-bit range as Kaldi reads a wav. Written in a few lines of
    torch rather than torchaudio or kaldi-native-fbank: torch is already there,
    the recipe stays readable, and no extra compiled dependency has to match
    the torch build. Every frame is computed alone, so batching is exact.

    Kaldi's usual post-processing, each per utterance and off by default:
    `deltas` appends first and second time derivatives (`add-deltas`, window
    2, edge frames repeated; 3 x bins features); `mean_norm` subtracts the
    utterance's mean and `cmvn` also divides by its standard deviation
    (`apply-cmvn`, per utterance, with or without `--norm-vars`); `subsample`
    keeps every n-th frame, from the first (`subsample-feats --n`).
    """

    window, shift, n_fft, preemph = 400, 160, 512, 0.97

    def __init__(self, device: torch.device, bins: int = 80, mean_norm: bool = False, cmvn: bool = False,
                 deltas: bool = False, subsample: int = 1):
        if subsample < 1:
            raise click.UsageError(f"--subsample {subsample}: keep every n-th frame, n >= 1")
        self.device, self.bins, self.dim = device, bins, bins * (3 if deltas else 1)
        self.mean_norm, self.cmvn, self.deltas, self.subsample = mean_norm, cmvn, deltas, subsample
        self.hop = self.sample_rate / self.shift / subsample
        n = torch.arange(self.window, dtype=torch.float64)
        self.povey = ((0.5 - 0.5 * torch.cos(2 * math.pi * n / (self.window - 1))) ** 0.85).float().to(device)
        self.banks = torch.from_numpy(kaldi_mel_banks(bins, self.n_fft, self.sample_rate)).to(device)

    def spec(self):
        spec = {"encoder": self.name, "bins": self.bins, "mean_norm": self.mean_norm}
        # the options below only when set, so k-means files fitted before they existed still match
        if self.cmvn:
            spec["cmvn"] = True
        if self.deltas:
            spec["deltas"] = True
        if self.subsample > 1:
            spec["subsample"] = self.subsample
        return spec

    def features(self, waves, max_samples=None):
        frames = [self._frames(torch.from_numpy(np.asarray(w, dtype=np.float32)).to(self.device)) for w in waves]
        x = torch.cat(frames)  # all frames of the batch in one FFT and one matmul
        x = x - x.mean(dim=1, keepdim=True)
        x = x - self.preemph * torch.cat([x[:, :1], x[:, :-1]], dim=1)
        spectrum = torch.fft.rfft(x * self.povey, n=self.n_fft).abs().pow(2)
        logmel = (spectrum @ self.banks).clamp_min(torch.finfo(torch.float32).eps).log()
        return [self._post(f) for f in logmel.split([len(f) for f in frames])]

    def _post(self, x):
        if self.deltas:
            first = _delta(x)
            x = torch.cat([x, first, _delta(first)], dim=1)
        if self.cmvn:
            x = (x - x.mean(dim=0)) / x.std(dim=0, unbiased=False).clamp_min(1e-5)
        elif self.mean_norm:
            x = x - x.mean(dim=0)
        return x[::self.subsample]

    def _frames(self, wave):
        if len(wave) < self.window:  # too short for one frame (Kaldi gives none): pad to one
            wave = F.pad(wave, (0, self.window - len(wave)))
        return (wave * 32768.0).unfold(0, self.window, self.shift)


def _delta(x, window: int = 2):
    """Kaldi's delta of [T, dim] features: sum_n n (x[t+n] - x[t-n]) / (2 sum_n n^2), edge frames repeated."""
    padded = torch.cat([x[:1].expand(window, -1), x, x[-1:].expand(window, -1)])
    T, taps = len(x), range(1, window + 1)
    total = sum(n * (padded[window + n:window + n + T] - padded[window - n:window - n + T]) for n in taps)
    return total / (2 * sum(n * n for n in taps))


# ---------------------------------------------------------------------- hubert
def load_hubert(path: str):
    """A fairseq HuBERT checkpoint by path: (model in eval mode, task cfg).

    Unpickled with `weights_only=True` through checkpoints.py's explicit
    allowlist (omegaconf containers, argparse.Namespace, fairseq Dictionary,
    numpy scalars): a checkpoint holding any other class is refused.
    """
    import logging
    import pickle
    import warnings

    from fairseq import checkpoint_utils

    from .checkpoints import fairseq_globals

    def load(overrides=None):
        with fairseq_globals(), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # weight_norm's deprecation, inside fairseq
            return checkpoint_utils.load_model_ensemble_and_task([path], arg_overrides=overrides)

    logging.getLogger("fairseq").setLevel(logging.WARNING)  # its INFO lines print the whole config
    try:
        try:
            models, _cfg, task = load()
        except FileNotFoundError as error:
            if not str(error.filename).endswith(".txt"):
                raise
            models, task = _without_label_dicts(path, load)
    except OSError as error:  # fairseq raises IOError("Model file not found") for a missing path
        raise BadInput(f"cannot read checkpoint: {error}", path) from None
    except pickle.UnpicklingError as error:
        detail = next((ln.strip() for ln in str(error).splitlines() if "GLOBAL" in ln), str(error).splitlines()[0])
        raise BadInput(f"checkpoint refused by the weights-only allowlist: {detail}", path) from None
    model = models[0]
    if not hasattr(model, "extract_features") or not hasattr(model, "feature_extractor"):
        raise BadInput(f"not a HuBERT checkpoint (model {type(model).__name__})", path)
    return model.eval(), task.cfg


def _without_label_dicts(path: str, load):
    """A checkpoint without `task_state`: fairseq wants the pre-training label dicts from their old path.

    Only their sizes matter (they shape `label_embs_concat`, unused here), so
    stand-in `dict.<label>.txt` files of the right size are written.
    """
    import tempfile

    from .checkpoints import load_checkpoint

    state = load_checkpoint(path)
    cfg = state["cfg"] if state.get("cfg") is not None else {"task": vars(state["args"])}
    labels = list(cfg["task"]["labels"])
    rows = state["model"]["label_embs_concat"].shape[0] if "label_embs_concat" in state["model"] else 4 * len(labels)
    del state
    with tempfile.TemporaryDirectory() as tmp:
        for label in labels:  # a Dictionary holds 4 special symbols besides these
            with open(os.path.join(tmp, f"dict.{label}.txt"), "w") as f:
                f.writelines(f"stand-in-{i} 1\n" for i in range(rows // len(labels) - 4))
        models, _cfg, task = load({"data": tmp, "label_dir": tmp})
    return models, task


@register("hubert")
class Hubert(Encoder):
    """Layer `layer` (1-based, default 6) of a fairseq HuBERT checkpoint.

    The waveform is layer-normalised when the checkpoint's `task.normalize`
    says so (HuBERT large), over the whole utterance. Long audio is cut into
    chunks of about `chunk_seconds`; chunks overlap by the conv receptive field
    minus its stride, so their frames are exactly the frames of the whole
    wave, and a tail shorter than the conv kernel yields no frame and is
    dropped (textlesslib crashed on it). A wave shorter than one receptive
    field is zero-padded to one frame. fairseq's transformer stops at
    `output_layer`, so upper layers are never computed.

    Batching: with layer-norm feature extractors, chunks are zero-padded with
    a padding_mask. HuBERT base's first conv block has a GroupNorm over time,
    which padding would change, so there only chunks of equal length share a
    batch (many do: clips of 1 s, and the full chunks of long files).
    """

    def __init__(self, device: torch.device, checkpoint: str | None = None, layer: int = 6,
                 chunk_seconds: float = 30.0):
        if not checkpoint:
            raise click.UsageError("the hubert encoder needs --checkpoint PATH (a fairseq HuBERT .pt)")
        model, task_cfg = load_hubert(checkpoint)
        n_layers = len(model.encoder.layers)
        if not 1 <= layer <= n_layers:
            raise click.UsageError(f"--layer {layer}: the checkpoint has layers 1..{n_layers}")
        self.model, self.layer, self.device = model.to(device), layer, device
        self.sample_rate = int(task_cfg.sample_rate)
        self.normalize = bool(task_cfg.normalize)
        convs = [block[0] for block in model.feature_extractor.conv_layers]
        self.stride = math.prod(c.stride[0] for c in convs)
        self.field = 1 + sum((c.kernel_size[0] - 1) * math.prod(d.stride[0] for d in convs[:i])
                             for i, c in enumerate(convs))  # receptive field of the conv stack, in samples
        self.hop = self.sample_rate / self.stride
        self.dim = model.encoder.embedding_dim
        self.pad_exact = not any(isinstance(m, torch.nn.GroupNorm) for m in model.feature_extractor.modules())
        self.chunk = max(1, round(chunk_seconds * self.hop)) * self.stride

    def spec(self):
        return {"encoder": self.name, "layer": self.layer, "dim": self.dim, "normalize": self.normalize}

    def frames(self, length: int) -> int:
        return (max(length, self.field) - self.field) // self.stride + 1

    def _chunks(self, wave: torch.Tensor) -> list[torch.Tensor]:
        if len(wave) < self.field:
            return [F.pad(wave, (0, self.field - len(wave)))]
        overlap = self.field - self.stride
        pieces = [wave[s:s + self.chunk + overlap] for s in range(0, len(wave), self.chunk)]
        return [p for p in pieces if len(p) >= self.field]

    def features(self, waves, max_samples=None):
        chunks, owner = [], []
        for i, w in enumerate(waves):
            w = torch.from_numpy(np.asarray(w, dtype=np.float32)).to(self.device)
            if self.normalize:
                w = F.layer_norm(w, w.shape)
            for c in self._chunks(w):
                chunks.append(c)
                owner.append(i)
        out = [None] * len(chunks)
        for group in self._groups([len(c) for c in chunks], max_samples):
            lengths = [len(chunks[j]) for j in group]
            longest = max(lengths)
            source = torch.stack([F.pad(chunks[j], (0, longest - len(chunks[j]))) for j in group])
            mask = None
            if min(lengths) < longest:
                # fairseq marks a frame padded when all samples of its share (`per` samples) are; mark from
                # each chunk's last real frame on, so the frames that saw padding are masked out too
                frames = self.frames(longest)
                per = (longest - longest % frames) // frames
                ends = torch.tensor([self.frames(n) * per for n in lengths], device=self.device)
                mask = torch.arange(longest, device=self.device)[None, :] >= ends[:, None]
            x, _ = self.model.extract_features(source, padding_mask=mask, mask=False, output_layer=self.layer)
            for row, j in enumerate(group):
                out[j] = x[row, :self.frames(len(chunks[j]))]
        per_wave = [[] for _ in waves]
        for j, i in enumerate(owner):
            per_wave[i].append(out[j])
        return [torch.cat(parts) for parts in per_wave]

    def _groups(self, lengths: list[int], max_samples: int | None) -> list[list[int]]:
        """Chunks that go through the model together: at most max_samples padded (two chunks by default)."""
        max_samples = max(max_samples or 0, 2 * (self.chunk + self.field))
        if self.pad_exact:
            return list(batches(lengths, max_samples, None))
        same: dict[int, list[int]] = {}
        for j, n in enumerate(lengths):
            same.setdefault(n, []).append(j)
        return [[group[b] for b in batch] for group in same.values()
                for batch in batches([lengths[j] for j in group], max_samples, None)]


# ---------------------------------------------------------------------- build
def build(name: str, device: torch.device, **options) -> Encoder:
    if name not in ENCODERS:
        raise click.UsageError(f"unknown encoder {name!r}; known: {', '.join(sorted(ENCODERS))}")
    cls = ENCODERS[name]
    wanted = cls.__init__.__code__.co_varnames[2:cls.__init__.__code__.co_argcount]
    for key, value in options.items():
        if key not in wanted and value not in (None, False):
            raise click.UsageError(f"--{key.replace('_', '-')} does not apply to the {name} encoder")
    return cls(device, **{k: v for k, v in options.items() if k in wanted and v is not None})


def encoder_options(function):
    """The click options that choose and configure an encoder (shared by sp-kmeans and sp-quantize)."""
    options = [
        click.option("--encoder", "encoder_name", type=click.Choice(sorted(ENCODERS)), default="logmel",
                     show_default=True, help="Speech encoder."),
        click.option("--checkpoint", type=click.Path(dir_okay=False), help="hubert: fairseq HuBERT checkpoint (.pt)."),
        click.option("--layer", type=int, help="hubert: transformer layer, 1-based  [default: 6]"),
        click.option("--chunk-seconds", type=float,
                     help="hubert: cut longer audio into chunks this long  [default: 30]"),
        click.option("--mean-norm", is_flag=True, help="logmel: subtract each utterance's mean feature."),
        click.option("--cmvn", is_flag=True,
                     help="logmel: normalise each utterance's features to mean 0, variance 1."),
        click.option("--deltas", is_flag=True, help="logmel: append first and second time derivatives."),
        click.option("--subsample", type=int, help="logmel: keep every n-th frame  [default: 1]"),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def encoder_from_options(options: dict, device: torch.device) -> Encoder:
    """Pop the encoder options out of a tool's keyword arguments and build the encoder."""
    name = options.pop("encoder_name")
    keys = ("checkpoint", "layer", "chunk_seconds", "mean_norm", "cmvn", "deltas", "subsample")
    return build(name, device, **{k: options.pop(k) for k in keys})


# --------------------------------------------------------------------- stream
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
           window_batches: int = 16) -> Iterator[tuple[Utterance, torch.Tensor | None]]:
    """Yield (utterance, [T, dim] features) in input order; (utterance, None) for a skipped one.

    Audio is read a window at a time (about `window_batches` batches), sorted
    by length inside the window so batches pad little, and encoded; only the
    window's audio and one batch's features are held in memory.
    """
    max_samples = int(batch_seconds * encoder.sample_rate)
    window_samples = max_samples * window_batches
    window_items = batch_size * window_batches if batch_size else None
    window: list[tuple[Utterance, np.ndarray | None]] = []
    held = 0
    for utt in utterances:
        wave = None
        with skipper.guard():
            wave = audio.load(utt, encoder.sample_rate)
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
