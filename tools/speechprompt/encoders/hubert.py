"""The `hubert` encoder: one layer of a fairseq HuBERT checkpoint, chunked so long audio stays exact."""
from __future__ import annotations

import math
import os

import numpy as np
import torch
import torch.nn.functional as F

from ..io import BadInput
from . import Encoder, EncoderOptionError, register
from .stream import batches


def load_hubert(path: str):
    """A fairseq HuBERT checkpoint by path: (model in eval mode, task cfg).

    Unpickled with `weights_only=True` through checkpoints.py's explicit
    allowlist (omegaconf containers, argparse.Namespace, fairseq Dictionary,
    numpy scalars): a checkpoint holding any other class is refused.
    """
    import logging
    import warnings

    from fairseq import checkpoint_utils

    from ..checkpoints import fairseq_globals, refusing

    def load(overrides=None):
        with fairseq_globals(), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # weight_norm's deprecation, inside fairseq
            return checkpoint_utils.load_model_ensemble_and_task([path], arg_overrides=overrides)

    logging.getLogger("fairseq").setLevel(logging.WARNING)  # its INFO lines print the whole config
    with refusing(path):  # any failure: one line `PATH: refused: ...` (or `no such file`)
        try:
            models, _cfg, task = load()
        except FileNotFoundError as error:
            if not str(error.filename).endswith(".txt"):
                raise
            models, task = _without_label_dicts(path, load)
    model = models[0]
    if not hasattr(model, "extract_features") or not hasattr(model, "feature_extractor"):
        raise BadInput(f"refused: not a HuBERT checkpoint (model {type(model).__name__})", path)
    return model.eval(), task.cfg


def _without_label_dicts(path: str, load):
    """A checkpoint without `task_state`: fairseq wants the pre-training label dicts from their old path.

    Only their sizes matter (they shape `label_embs_concat`, unused here), so
    stand-in `dict.<label>.txt` files of the right size are written.
    """
    import tempfile

    from ..checkpoints import load_checkpoint

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
            raise EncoderOptionError("the hubert encoder needs --checkpoint PATH (a fairseq HuBERT .pt)")
        model, task_cfg = load_hubert(checkpoint)
        n_layers = len(model.encoder.layers)
        if not 1 <= layer <= n_layers:
            raise EncoderOptionError(f"--layer {layer}: the checkpoint has layers 1..{n_layers}")
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
            x = self._layer_output(source, mask)
            for row, j in enumerate(group):
                out[j] = x[row, :self.frames(len(chunks[j]))]
        per_wave = [[] for _ in waves]
        for j, i in enumerate(owner):
            per_wave[i].append(out[j])
        return [torch.cat(parts) for parts in per_wave]

    def _layer_output(self, source: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """B x frames x dim: layer `self.layer` of the model for the padded chunks (`mask`: True on padding)."""
        x, _ = self.model.extract_features(source, padding_mask=mask, mask=False, output_layer=self.layer)
        return x

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


