"""Speech encoders behind one tiny interface, chosen by name (after textlesslib).

An encoder turns waveforms into frame features:

    encoder = build("logmel", device)           # or build("hubert", device, checkpoint=..., layer=6)
                                                # or build("hf-hubert", device, checkpoint=DIR, layer=11)
    encoder.sample_rate, encoder.hop, encoder.dim   # Hz, frames per second, feature size
    encoder.features([wave, ...])                   # 1-D float32 arrays at sample_rate -> [T_i, dim] tensors

Audio arrives already at `encoder.sample_rate` (audio.load resamples at the
edge); features are returned on the encoder's device. The package holds the
registry and interface (here), one module per encoder (`logmel`, `hubert`),
and `stream`, which runs a manifest through an encoder in batches.
"""
from __future__ import annotations

import click
import numpy as np
import torch

ENCODERS: dict[str, type] = {}


class EncoderOptionError(ValueError):
    """An encoder name or option that cannot be used (the tools report it as a usage error)."""


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



# ---------------------------------------------------------------------- build
def build(name: str, device: torch.device, **options) -> Encoder:
    if name not in ENCODERS:
        raise EncoderOptionError(f"unknown encoder {name!r}; known: {', '.join(sorted(ENCODERS))}")
    cls = ENCODERS[name]
    wanted = cls.__init__.__code__.co_varnames[2:cls.__init__.__code__.co_argcount]
    for key, value in options.items():
        if key not in wanted and value not in (None, False):
            raise EncoderOptionError(f"--{key.replace('_', '-')} does not apply to the {name} encoder")
    return cls(device, **{k: v for k, v in options.items() if k in wanted and v is not None})


def encoder_options(function):
    """The click options that choose and configure an encoder (shared by sp-kmeans and sp-quantize)."""
    options = [
        click.option("--encoder", "encoder_name", type=click.Choice(sorted(ENCODERS)), default="logmel",
                     show_default=True, help="Speech encoder."),
        click.option("--checkpoint", type=click.Path(),
                     help="hubert: fairseq HuBERT checkpoint (.pt); hf-hubert: transformers HubertModel directory "
                          "(or its config.json)."),
        click.option("--layer", type=int, help="hubert, hf-hubert: transformer layer, 1-based  [default: 6; "
                                                "hf-hubert: 11, TWIST's]"),
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

from . import hf_hubert, hubert, logmel  # noqa: E402,F401  (each registers itself)
