"""SpeechPrompt v2 on a frozen fairseq unit LM: the whole model in one module.

The base is a fairseq `TransformerLanguageModel` (GSLM's `hubert100_lm` or one
pretrained by `sp-pretrain`). Its weights stay frozen (`requires_grad=False`,
not in the optimizer); what learns is

- an input prefix prompt, `P x d` vectors placed before the first token;
- deep prompts, per layer a key and a value prefix (`L x 2 x P x d`) that every
  query of that layer also attends to (prefix tuning);
- a separator embedding that replaces the token embedding of `<s>`;
- optionally the linear verbalizer of SpeechPrompt v2, `Linear(vocab, C)` on
  the LM's output logits.

The forward pass below walks fairseq's own modules (embeddings, positions,
each layer's q/k/v/out projections, layer norms, fc1/fc2, output projection)
with `F.scaled_dot_product_attention`; with the prompts off it computes what
fairseq's decoder computes (tests/test_prompt.py checks it). The extra keys
and values of the deep prompts are the same mechanism as a KV cache: `past`
holds the keys and values of a prefix already run, so decoding a label after
`<s>` does not run the units again.
"""
from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

Cache = list  # per layer (keys, values), each B x H x S x head_dim


@dataclasses.dataclass
class PromptConfig:
    """What is trained on the frozen base; sp-train saves it as it is (`asdict`) in the prompt checkpoint."""

    prompt_length: int = 5  # vectors per prompt (the input prefix, and per layer)
    deep: bool = True  # per-layer key/value prompts
    input_prompt: bool = True  # the input prefix prompt
    separator: bool = True  # a trainable `<s>` embedding
    num_classes: int = 0  # > 0: the linear verbalizer onto this many classes
    finetune: bool = False  # train the base LM too (full fine-tuning, for comparison)

    @classmethod
    def from_dict(cls, values: dict) -> PromptConfig:
        """From a checkpoint's `config` (older checkpoints also kept training settings there)."""
        return cls(**{f.name: values[f.name] for f in dataclasses.fields(cls) if f.name in values})


class PromptLM(nn.Module):
    def __init__(self, base, config: PromptConfig = PromptConfig(), sep_index: int = 0):
        super().__init__()
        self.base = base
        self.config = config
        self.decoder = dec = base.decoder
        _check_supported(dec)
        layer0 = dec.layers[0].self_attn
        self.heads, self.head_dim = layer0.num_heads, layer0.head_dim
        d, vocab = dec.embed_dim, dec.output_projection.out_features
        self.sep_index, self.finetune = sep_index, config.finetune
        self.prompt_length = prompt_length = config.prompt_length
        for p in base.parameters():
            p.requires_grad_(config.finetune)
        base.eval()
        self.input_prompt = self.deep_prompt = self.separator = None
        if prompt_length:  # start as if P random unit tokens came first: prompts at the scale of real activations
            with torch.no_grad():
                start = torch.randint(4, dec.embed_tokens.num_embeddings, (1, prompt_length),
                                      device=dec.embed_tokens.weight.device)
                _, cache = self.features(start)
                self.input_prompt = nn.Parameter(self.embed(start)[0].clone()) if config.input_prompt else None
                self.deep_prompt = nn.Parameter(torch.stack([torch.stack([t[0].transpose(0, 1).flatten(1) for t in kv])
                                                             for kv in cache]).clone()) if config.deep else None
        # the separator starts as the base's own `<s>` embedding
        self.separator = nn.Parameter(dec.embed_tokens.weight[sep_index].detach().clone()) if config.separator else None
        self.verbalizer = nn.Linear(vocab, config.num_classes) if config.num_classes else None

    # ----------------------------------------------------------------- params
    def prompt_state(self) -> dict:
        """The trainable tensors (all of them when fine-tuning): what a checkpoint holds."""
        return {name: p.detach().cpu() for name, p in self.named_parameters() if p.requires_grad}

    def trainable_count(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def train(self, mode: bool = True):
        super().train(mode)
        if not self.finetune:
            self.base.eval()  # frozen: no dropout in the base either
        return self

    # ---------------------------------------------------------------- forward
    def features(self, tokens, past: Cache | None = None, past_valid=None, offset=None, depth=None, attend=None):
        """Hidden states after the last layer for `tokens` (B x T, right-padded).

        Without `past`, the input prompt goes first. With `past` (from an earlier
        call, keys B x H x S x hd and `past_valid` B x S), `tokens` continue
        each row at position `offset` (B,). Returns (B x T x d, cache of this call).
        `depth` (T,) and `attend` (T x T, True: may attend) lay the tokens out as a
        tree instead of a sequence: token t sits at position offset + depth[t] and
        attends to the tokens `attend[t]` marks (its ancestors and itself), so all
        branches of a trie of candidate labels run in one pass. The default is a
        sequence: depth 0, 1, 2, ... and causal attention.
        """
        dec = self.decoder
        B = tokens.shape[0]
        x = self.embed(tokens, offset, depth)
        n_in = 0
        if past is None and self.input_prompt is not None:
            n_in = self.input_prompt.shape[0]
            x = torch.cat([self.input_prompt.to(x.dtype).expand(B, -1, -1), x], 1)
        mask = self._mask(x.shape[1], past_valid, x.device, attend)
        cache = []
        for i, layer in enumerate(dec.layers):
            extra = [] if self.deep_prompt is None else [self._heads(self.deep_prompt[i, j].to(x.dtype)).expand(B, -1, -1, -1) for j in (0, 1)]
            x, kv = self._layer(layer, x, mask, extra, None if past is None else past[i])
            cache.append(kv)
        if dec.layer_norm is not None:
            x = dec.layer_norm(x)
        if dec.project_out_dim is not None:
            x = dec.project_out_dim(x)
        return x[:, n_in:], cache

    def embed(self, tokens, offset=None, depth=None):
        """Layer-0 input of `tokens`: scaled token embeddings (the separator's at `<s>`) plus positions."""
        dec = self.decoder
        B, T = tokens.shape
        emb = dec.embed_tokens(tokens)
        if self.separator is not None:
            emb = torch.where((tokens == self.sep_index).unsqueeze(-1), self.separator.to(emb.dtype), emb)
        x = dec.embed_scale * emb
        if dec.project_in_dim is not None:
            x = dec.project_in_dim(x)
        if dec.embed_positions is not None:
            start = torch.zeros(B, dtype=torch.long, device=tokens.device) if offset is None else offset
            positions = start[:, None] + (torch.arange(T, device=tokens.device) if depth is None else depth)
            x = x + self._position_table(int(positions.max()) + 1, x)[positions]
        if dec.layernorm_embedding is not None:
            x = dec.layernorm_embedding(x)
        return dec.dropout_module(x)

    def _layer(self, layer, x, mask, extra, past):
        attn = layer.self_attn
        residual = x
        h = layer.self_attn_layer_norm(x) if layer.normalize_before else x
        q, k, v = (self._heads(proj(h)) for proj in (attn.q_proj, attn.k_proj, attn.v_proj))
        kv = (k, v)
        if past is not None:
            k, v = torch.cat([past[0], k], 2), torch.cat([past[1], v], 2)
        if extra:
            k, v = torch.cat([extra[0], k], 2), torch.cat([extra[1], v], 2)
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
        return x.unflatten(-1, (self.heads, self.head_dim)).transpose(-3, -2)

    def _mask(self, T, past_valid, device, attend=None):
        """Boolean mask (True = attend): deep prompts always, the past where valid, the present causally
        (or as `attend` says)."""
        causal = torch.ones(T, T, dtype=torch.bool, device=device).tril() if attend is None else attend
        P = 0 if self.deep_prompt is None else self.deep_prompt.shape[2]
        if past_valid is None:
            return torch.cat([causal.new_ones(T, P), causal], -1)  # T x K, the same for every row
        B = past_valid.shape[0]
        return torch.cat([causal.new_ones(B, 1, T, P), past_valid[:, None, None, :].expand(-1, 1, T, -1),
                          causal.expand(B, 1, T, T)], -1)

    def _position_table(self, n, like):
        """Positional embeddings of positions 0..n-1, as fairseq numbers them (after the padding index)."""
        pad = self.decoder.padding_idx
        dummy = torch.full((1, n), pad + 1, dtype=torch.long, device=like.device)
        return self.decoder.embed_positions(dummy)[0].to(like.dtype)

    def logits(self, features):
        """Vocabulary logits, or class logits through the linear verbalizer."""
        out = self.decoder.output_layer(features)
        return out if self.verbalizer is None else self.verbalizer(out.to(self.verbalizer.weight.dtype))

    def forward(self, tokens, target_mask):
        """Logits at the positions of `target_mask` (the `<s>` and label positions), N x V (or N x C)."""
        x, _ = self.features(tokens)
        return self.logits(x[target_mask])


def _check_supported(dec) -> None:
    """Refuse base LMs whose decoder computes something the forward above does not."""
    if getattr(dec, "adaptive_softmax", None) is not None or getattr(dec, "cross_self_attention", False):
        raise ValueError("unsupported base LM: adaptive softmax or cross self-attention")
    for layer in dec.layers:
        attn = layer.self_attn
        odd = [layer.attn_ln, layer.c_attn, layer.ffn_layernorm, layer.w_resid, attn.bias_k]
        if any(o is not None for o in odd) or attn.add_zero_attn or getattr(attn, "use_xformers", False):
            raise ValueError("unsupported base LM layer (NormFormer/scale_heads/bias_kv/zero_attn)")
