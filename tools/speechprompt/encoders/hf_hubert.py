"""The `hf-hubert` encoder: one layer of a HuBERT in transformers' `HubertModel` format (a save_pretrained
directory), such as TWIST's speech tokenizer mHuBERT-base-25Hz (`slprl/mhubert-base-25hz`, layer 11).

Chunking and batching are the `hubert` encoder's (exact frames across chunks of long audio; with a
GroupNorm feature extractor only chunks of equal length share a batch); only loading and the forward
differ. The frame rate comes from the checkpoint's convolutions: 16000 / (5 x 2^7) = 25 frames/s for
mHuBERT-25Hz, whose fourth iteration added a stride-2 convolution to HuBERT base's 50 Hz stack. The
spec stored with a k-means fitted on it holds that rate, so sp-quantize refuses a k-means of another rate.

The weights are read from `model.safetensors` where present (a `pytorch_model.bin` weights-only); no
code from the checkpoint runs. The waveform is normalised per utterance when the checkpoint's
`preprocessor_config.json` says `do_normalize`, as its feature extractor does.
"""
from __future__ import annotations

import glob
import json
import math
import os

import torch
import torch.nn.functional as F

from ..io import BadInput
from . import EncoderOptionError, register
from .hubert import Hubert


def hf_model_dir(path: str) -> str:
    """The save_pretrained directory: `path`, or the directory of its `config.json`."""
    if os.path.isdir(path):
        return path
    if os.path.basename(path) == "config.json":
        return os.path.dirname(os.path.abspath(path))
    raise BadInput("refused: the hf-hubert encoder reads a transformers HubertModel directory (or its config.json); "
                   "a fairseq HuBERT .pt is --encoder hubert", path)


@register("hf-hubert")
class HFHubert(Hubert):
    """Layer `layer` (1-based, default 11: TWIST's tokenizer) of a transformers HubertModel."""

    def __init__(self, device: torch.device, checkpoint: str | None = None, layer: int = 11,
                 chunk_seconds: float = 30.0):
        if not checkpoint:
            raise EncoderOptionError("the hf-hubert encoder needs --checkpoint DIR (a transformers HubertModel "
                                     "directory, or its config.json)")
        from ..checkpoints import refusing
        from ..prompting.backbones.hf_lm import quiet_transformers

        root = hf_model_dir(checkpoint)
        transformers = quiet_transformers(root)
        with refusing(root):
            config = transformers.HubertConfig.from_pretrained(root, local_files_only=True)
        if not 1 <= layer <= config.num_hidden_layers:
            raise EncoderOptionError(f"--layer {layer}: the checkpoint has layers 1..{config.num_hidden_layers}")
        safetensors = bool(glob.glob(os.path.join(root, "*.safetensors")))
        with refusing(root):
            model = transformers.HubertModel.from_pretrained(root, local_files_only=True, trust_remote_code=False,
                                                             use_safetensors=safetensors, weights_only=True,
                                                             dtype=torch.float32)
        self.model, self.layer, self.device = model.eval().to(device), layer, device
        self.sample_rate = 16000  # HuBERT's; audio.load resamples to it
        self.normalize = _do_normalize(root)
        strides, kernels = list(config.conv_stride), list(config.conv_kernel)
        self.stride = math.prod(strides)
        self.field = 1 + sum((k - 1) * math.prod(strides[:i]) for i, k in enumerate(kernels))
        self.hop = self.sample_rate / self.stride
        self.dim = config.hidden_size
        self.pad_exact = False  # chunks of one length a batch: no padding, no attention mask to carry
        self.stable = bool(config.do_stable_layer_norm)
        self.chunk = max(1, round(chunk_seconds * self.hop)) * self.stride

    def spec(self):
        return {"encoder": self.name, "layer": self.layer, "dim": self.dim, "normalize": self.normalize,
                "hop": self.hop}

    def _layer_output(self, source, mask):
        """The model's walk up to layer `self.layer`, as its own forward computes it (upper layers never run)."""
        model = self.model
        x = model.feature_projection(model.feature_extractor(source).transpose(1, 2))
        x = x[0] if isinstance(x, tuple) else x  # older transformers return (hidden, normed features)
        encoder = model.encoder
        x = x + encoder.pos_conv_embed(x)
        if not self.stable:  # HuBERT base: the encoder's layer norm comes before its layers
            x = encoder.layer_norm(x)
        for block in encoder.layers[:self.layer]:
            out = block(x)
            x = out[0] if isinstance(out, tuple) else out
        return x


def _do_normalize(root: str) -> bool:
    path = os.path.join(root, "preprocessor_config.json")
    if not os.path.exists(path):
        return False
    try:
        with open(path, encoding="utf-8") as f:
            return bool(json.load(f).get("do_normalize", False))
    except (OSError, ValueError) as error:
        raise BadInput(f"cannot read: {error}", path) from None
