"""Backbones: the frozen unit LMs a prompt is tuned on, behind one small interface.

A prompt (`prompting/model.py`), the training loop (`prompting/loop.py`), decoding (`sp-sample`) and
`sp-baseline --features ulm-states` use a uLM only through the methods of `Backbone` below. Adding a
backbone is one module here that subclasses it, and one line in `KINDS`:

    vocab            Vocabulary: symbol <-> index, the special indices (bos = the separator `<s>`,
                     eos `</s>`, pad, unk), and where the units are (`units`, a range of indices)
    shape            Shape: layers, width, heads (and key/value heads), head size, vocabulary size,
                     maximum positions
    embed_tokens     tokens (B x T) -> token vectors (B x T x E): what a trainable separator replaces at `<s>`
    layer_input      token vectors and their positions -> the input of the first layer (B x T x D):
                     scaling, position embeddings, input projections, as the LM does it; and, for a
                     multi-stream LM, the other input streams of each token (`streams`, below)
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

Streams. A multi-stream uLM (pGSLM: units, their durations and their F0) reads more than the tokens:
`layer_input(vectors, positions, streams)` takes them as one B x T x S integer tensor beside the
tokens, S = 2 (duration in frames, F0 in cents), one row a token, encoded as `prosody/__init__.py`
says (`NONE` where the token is no unit: `</s>`, `<s>`, the label, padding); `streams=None` means
NONE everywhere. They join at `layer_input`, not `embed_tokens`, so that the trainable separator
replaces only `<s>`'s token vector and keeps the prosody the position carries. The backbone turns the
values into what its model reads (caps, bins, shifts between the streams); a backbone of one stream
ignores them. `PromptLM.features`/`forward`, the training loop's `Batch` and sp-sample carry them
where the data-bin has them.

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

KINDS = {"fairseq": "fairseq_lm", "hf": "hf_lm", "pgslm": "pgslm"}  # kind -> module of this package
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
    units: tuple[int, int] | None = None  # [first, last + 1) of the unit symbols; default: after 4 specials

    def __post_init__(self):
        self._index = {s: i for i, s in enumerate(self.symbols)}
        if self.units is None:
            self.units = (4, len(self.symbols))  # fairseq's Dictionary: <s> <pad> </s> <unk>, then the units

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

    def layer_input(self, vectors: torch.Tensor, positions: torch.Tensor,
                    streams: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError

    def run(self, x, positions, mask, prefix=None, past=None, states=None):
        raise NotImplementedError

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def walk(self, layers, x, mask, prefix=None, past=None, states=None, **extra):
        """`x` through `layers` in order, each by `self._layer(layer, x, mask, its prefix, its past, **extra)`
        (a backbone's own layer): the output, and this call's per-layer (keys, values); each layer's output is
        appended to `states` when given a list. What `run` does between its input and its final norm."""
        cache = []
        for i, layer in enumerate(layers):
            x, kv = self._layer(layer, x, mask, None if prefix is None else prefix[i],
                                None if past is None else past[i], **extra)
            cache.append(kv)
            if states is not None:
                states.append(x)
        return x, cache

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


def check_streams(kind: str, data: str, has_streams: bool) -> None:
    """Refuse, in one line, a data-bin without prosody streams for a backbone that reads them."""
    from ...io import BadInput

    if getattr(_module(kind), "READS_STREAMS", False) and not has_streams:
        raise BadInput(f"the {kind} backbone reads each unit's duration and F0, and this data-bin has no prosody "
                       f"streams (SPLIT.dur, SPLIT.f0): make its units with sp-dedup --durations and sp-f0 "
                       f"(Make: BACKBONE={kind} does)", data)


def companion(kind: str, path: str, given: str | None = None) -> str | None:
    """The file a backbone reads beside its checkpoint (fairseq: dict.txt; pgslm: its F0 bins), the one given
    first; None where the kind needs none and there is none."""
    find = getattr(_module(kind), "companion", None)
    return find(path, given) if find else given


def vocabulary(kind: str, path: str, dict_path: str | None = None) -> Vocabulary:
    """The backbone's vocabulary, without loading its weights."""
    return _module(kind).vocabulary(path, dict_path)
