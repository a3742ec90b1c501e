"""fairseq's `transformer_lm` as a backbone: GSLM's `hubert100_lm`, and the uLMs `sp-pretrain` makes.

The forward pass walks fairseq's own modules (embeddings, positions, each layer's q/k/v/out
projections, layer norms, fc1/fc2, output projection) with `F.scaled_dot_product_attention`, so
that the keys and values of a prefix (the deep prompts) and of a cache can join each layer's
attention; with nothing joined it computes what fairseq's decoder computes (tests/test_prompt.py
checks it). Layer options this walk does not implement (adaptive softmax, NormFormer, bias_kv,
zero_attn, cross self-attention) are refused when the model loads.
"""
from __future__ import annotations

import os

import torch
import torch.nn.functional as F

from ...checkpoints import lm_positions, load_lm, map_lm, refusing
from ...io import BadInput
from . import Backbone, Shape, Vocabulary


def dict_path_of(path: str, dict_path: str | None) -> str:
    """The uLM's `dict.txt`: the one given, else the one beside the checkpoint (as GSLM ships it)."""
    return dict_path or os.path.join(os.path.dirname(os.path.abspath(path)), "dict.txt")


companion = dict_path_of


def vocabulary_of(dictionary) -> Vocabulary:
    return Vocabulary(list(dictionary.symbols), dictionary.bos(), dictionary.eos(), dictionary.pad(), dictionary.unk())


def vocabulary(path: str, dict_path: str | None = None) -> Vocabulary:
    from ...databin import load_dictionary

    return vocabulary_of(load_dictionary(dict_path_of(path, dict_path)))


def identity(path: str) -> str:
    from ...io import file_hash

    return file_hash(path)


def read_shape(path: str) -> Shape:
    """From the checkpoint's weights and config, memory-mapped: the weights stay on disk."""
    state = map_lm(path)
    model = state["model"]
    layers = {int(key.split(".")[2]) for key in model if key.startswith("decoder.layers.")}
    key = "decoder.layers.0.self_attn.k_proj.weight"
    if not layers or key not in model:
        raise BadInput("refused: not a fairseq transformer_lm checkpoint (no decoder.layers.N.self_attn weights)", path)
    dim = int(model[key].shape[0])
    cfg, args = state.get("cfg") or {}, state.get("args")
    source = cfg.get("model") if cfg else None
    heads = (source.get("decoder_attention_heads") if hasattr(source, "get") else None) \
        or getattr(args, "decoder_attention_heads", None) or 8
    out = model.get("decoder.output_projection.weight", model.get("decoder.embed_tokens.weight"))
    return Shape(len(layers), dim, int(heads), int(heads), dim // int(heads), int(out.shape[0]), lm_positions(path))


def load(path: str, dict_path: str | None = None, device="cpu") -> FairseqLM:
    model, dictionary = load_lm(path, dict_path_of(path, dict_path), device)
    with refusing(path):
        return FairseqLM(model, dictionary).to(device).freeze()


class FairseqLM(Backbone):
    kind = "fairseq"

    def __init__(self, model, dictionary):
        super().__init__()
        self.model = model
        dec = model.decoder
        _check_supported(dec)
        attn = dec.layers[0].self_attn
        self.vocab = vocabulary_of(dictionary)
        self.shape = Shape(len(dec.layers), dec.embed_dim, attn.num_heads, attn.num_heads, attn.head_dim,
                           dec.output_projection.out_features, model.max_positions())
        self._table = None  # positional embeddings of every position, made once (see `_positions`)

    @property
    def decoder(self):
        return self.model.decoder

    def embed_tokens(self, tokens):
        return self.decoder.embed_tokens(tokens)

    def layer_input(self, vectors, positions, streams=None):
        dec = self.decoder
        x = self._add_streams(dec.embed_scale * vectors, positions, streams)
        if dec.project_in_dim is not None:
            x = dec.project_in_dim(x)
        if dec.embed_positions is not None:
            x = x + self._positions(positions, x)
        if dec.layernorm_embedding is not None:
            x = dec.layernorm_embedding(x)
        return dec.dropout_module(x)

    def _add_streams(self, x, positions, streams):
        """The scaled token vectors plus the decoder's other input streams: transformer_lm has none (prosody
        is not read)."""
        return x

    def run(self, x, positions, mask, prefix=None, past=None, states=None):
        dec = self.decoder
        x, cache = self.walk(dec.layers, x, mask, prefix, past, states)
        if dec.layer_norm is not None:
            x = dec.layer_norm(x)
        return self._project_out(x), cache

    def _project_out(self, x):
        """transformer_lm's projection from the layers' width to the output embedding's, where they differ."""
        project = self.decoder.project_out_dim
        return x if project is None else project(x)

    def logits(self, hidden):
        return self.decoder.output_layer(hidden)

    def _layer(self, layer, x, mask, prefix, past):
        attn = layer.self_attn
        residual = x
        h = layer.self_attn_layer_norm(x) if layer.normalize_before else x
        q, k, v = (self._heads(proj(h)) for proj in (attn.q_proj, attn.k_proj, attn.v_proj))
        kv = (k, v)
        if past is not None:
            k, v = torch.cat([past[0], k], 2), torch.cat([past[1], v], 2)
        if prefix is not None:
            k, v = torch.cat([prefix[0], k], 2), torch.cat([prefix[1], v], 2)
        drop = attn.dropout_module.p if attn.training else 0.0
        h = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=drop)  # scale 1/sqrt(hd), as fairseq
        h = attn.out_proj(h.transpose(1, 2).flatten(2))
        x = residual + layer.dropout_module(h)
        if not layer.normalize_before:
            x = layer.self_attn_layer_norm(x)
        residual = x
        h = layer.final_layer_norm(x) if layer.normalize_before else x
        h = layer.fc2(layer.activation_dropout_module(layer.activation_fn(layer.fc1(h))))
        x = residual + layer.dropout_module(h)
        if not layer.normalize_before:
            x = layer.final_layer_norm(x)
        return x, kv

    def _heads(self, x):  # (..., T, d) -> (..., H, T, hd)
        return x.unflatten(-1, (self.shape.heads, self.shape.head_dim)).transpose(-3, -2)

    def _positions(self, positions, like):
        """The positional embeddings at `positions`, from a table of every position the LM has: made once
        (no host sync a call, so a training step can be captured as a CUDA graph), or each call when the
        embeddings train (--finetune with learned positions)."""
        learned = any(p.requires_grad for p in self.decoder.embed_positions.parameters())
        if learned or self._table is None or self._table.device != like.device:
            with torch.inference_mode(False), torch.set_grad_enabled(learned):
                table = self._position_table(self.shape.max_positions, like.device)
            if learned:
                return table[positions].to(like.dtype)
            self._table = table
        return self._table[positions].to(like.dtype)

    def _position_table(self, n, device):
        """Positional embeddings of positions 0..n-1, as fairseq numbers them (after the padding index)."""
        pad = self.decoder.padding_idx
        dummy = torch.full((1, n), pad + 1, dtype=torch.long, device=device)
        return self.decoder.embed_positions(dummy)[0]


def _check_supported(dec) -> None:
    """Refuse decoders that compute something the walk above does not."""
    if getattr(dec, "adaptive_softmax", None) is not None or getattr(dec, "cross_self_attention", False):
        raise ValueError("unsupported base LM: adaptive softmax or cross self-attention")
    for layer in dec.layers:
        attn = layer.self_attn
        odd = [layer.attn_ln, layer.c_attn, layer.ffn_layernorm, layer.w_resid, attn.bias_k]
        if any(o is not None for o in odd) or attn.add_zero_attn or getattr(attn, "use_xformers", False):
            raise ValueError("unsupported base LM layer (NormFormer/scale_heads/bias_kv/zero_attn)")
