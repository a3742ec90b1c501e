"""Backbones: the frozen unit LMs a prompt is tuned on, behind one small interface.

A prompt (`prompting/model.py`), the training loop (`prompting/loop.py`), decoding (`sp-sample`) and
`sp-baseline --features ulm-states` use a uLM only through the methods of `Backbone` below. Adding a
backbone is one module here that subclasses it, and one line in `KINDS`:

    vocab            Vocabulary: symbol <-> index, and the special indices (bos = the separator `<s>`,
                     eos `</s>`, pad, unk)
    shape            Shape: layers, width, heads (and key/value heads), head size, vocabulary size,
                     maximum positions
    embed_tokens     tokens (B x T) -> token vectors (B x T x E): what a trainable separator replaces at `<s>`
    layer_input      token vectors and their positions -> the input of the first layer (B x T x D):
                     scaling, position embeddings, input projections, as the LM does it
    run              the layer stack over `x` (B x T x D, a prompt's vectors may lead it), with
                     - `positions` (B x T) of every row of x, for LMs that use them inside the layers (RoPE),
                     - `mask` (T x K or B x 1 x T x K, True: may attend), K = prefix + past + T,
                     - `prefix`: per layer (keys, values), each B x Hkv x P x hd, attended by every row
                       (the deep prompts, prefix tuning),
                     - `past`: per layer (keys, values) of tokens run before (the KV cache);
                     returns the final hidden states (after the last norm) and this call's per-layer
                     (keys, values), B x Hkv x T x hd; given a list `states`, it also appends each
                     layer's output to it (sp-baseline --features ulm-states)
    logits           final hidden states -> vocabulary logits

The backbone is frozen: every weight has `requires_grad=False`, and it stays in eval mode (no
dropout) while the prompts train. Prompt checkpoints record the backbone's kind (`base.kind`) and identity (`identity(kind, path)`, a
sha256), so `sp-sample` loads the same one; checkpoints written before kinds existed are fairseq's.

Load one with `load(kind, path, dict_path, device)`; read its shape without loading the weights with
`read_shape(kind, path)`. The kinds:

    fairseq   fairseq's transformer_lm checkpoint (GSLM's hubert100_lm, sp-pretrain's uLMs), dict.txt beside
    hf        a Hugging Face `transformers` causal LM directory (TWIST, sp-pretrain --arch opt's uLMs):
              OPT and the LLaMA family, units mapped to tokens by config.json's `offset` (hf_lm.py);
              needs the optional `transformers`
"""
from __future__ import annotations

import dataclasses
import importlib

import torch
from torch import nn

KINDS = {"fairseq": "fairseq_lm", "hf": "hf_lm"}  # kind -> module of this package
DEFAULT_KIND = "fairseq"


@dataclasses.dataclass(frozen=True)
class Shape:
    layers: int
    embed_dim: int  # the width the prompt defaults follow (prompting/defaults.py)
    heads: int
    kv_heads: int  # fewer than heads under grouped-query attention
    head_dim: int
    vocab_size: int  # rows of the output logits
    max_positions: int

    @property
    def kv_dim(self) -> int:
        """Values a deep prompt vector holds, per layer and per keys or values."""
        return self.kv_heads * self.head_dim


@dataclasses.dataclass
class Vocabulary:
    symbols: list[str]
    bos: int  # `<s>`: the separator between units and label
    eos: int  # `</s>`: a sentence starts after one and a label ends with one
    pad: int
    unk: int

    def __post_init__(self):
        self._index = {s: i for i, s in enumerate(self.symbols)}

    def __len__(self) -> int:
        return len(self.symbols)

    def index(self, symbol: str) -> int:
        return self._index.get(symbol, self.unk)

    def string(self, tokens) -> str:
        return " ".join(self.symbols[int(t)] for t in tokens)


class Backbone(nn.Module):
    """The interface (see the module's documentation); subclasses implement every method."""

    kind: str
    vocab: Vocabulary
    shape: Shape

    def embed_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def layer_input(self, vectors: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def run(self, x, positions, mask, prefix=None, past=None, states=None):
        raise NotImplementedError

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def freeze(self) -> Backbone:
        """No gradients for the weights, no dropout: what every backbone is while prompts train."""
        for p in self.parameters():
            p.requires_grad_(False)
        return self.eval()


def _module(kind: str):
    if kind not in KINDS:
        raise ValueError(f"unknown backbone kind {kind!r} (known: {', '.join(KINDS)})")
    return importlib.import_module(f"{__name__}.{KINDS[kind]}")


def load(kind: str, path: str, dict_path: str | None = None, device="cpu") -> Backbone:
    """The frozen backbone of `kind` from its checkpoint (and vocabulary file, where the kind has one)."""
    return _module(kind).load(path, dict_path, device)


def read_shape(kind: str, path: str) -> Shape:
    """The backbone's shape from its checkpoint, without loading the weights where the format allows."""
    return _module(kind).read_shape(path)


def identity(kind: str, path: str) -> str:
    """sha256 of the backbone's files (the checkpoint; a directory's config and weights): what a prompt records."""
    return _module(kind).identity(path)


def vocabulary(kind: str, path: str, dict_path: str | None = None) -> Vocabulary:
    """The backbone's vocabulary, without loading its weights."""
    return _module(kind).vocabulary(path, dict_path)
