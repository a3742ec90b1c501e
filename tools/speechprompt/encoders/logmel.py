"""The `logmel` encoder: a Kaldi-compatible log-mel filterbank with Kaldi's usual post-processing."""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from . import Encoder, EncoderOptionError, register


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
            raise EncoderOptionError(f"--subsample {subsample}: keep every n-th frame, n >= 1")
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


