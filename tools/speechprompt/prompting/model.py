"""SpeechPrompt v2 on a frozen unit LM: the whole prompt model in one module.

The base is a backbone (`prompting/backbones/`: fairseq's `transformer_lm`, GSLM's `hubert100_lm`
or one pretrained by `sp-pretrain`). Its weights stay frozen (`requires_grad=False`, not in the
optimizer); what learns is

- an input prefix prompt, `P x d` vectors placed before the first token;
- deep prompts, per layer a key and a value prefix (`L x 2 x P x kv_dim`) that every
  query of that layer also attends to (prefix tuning);
- a separator embedding that replaces the token embedding of `<s>`;
- optionally the linear verbalizer of SpeechPrompt v2, `Linear(vocab, C)` on
  the LM's output logits.

The extra keys and values of the deep prompts are the same mechanism as a KV cache: `past`
holds the keys and values of a prefix already run, so decoding a label after `<s>` does not
run the units again.
"""
from __future__ import annotations

import dataclasses

import torch
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
    def __init__(self, backbone, config: PromptConfig = PromptConfig()):
        super().__init__()
        self.base = backbone
        self.config = config
        self.finetune = config.finetune
        shape = backbone.shape
        self.sep_index = backbone.vocab.bos
        self.prompt_length = prompt_length = config.prompt_length
        for p in backbone.parameters():
            p.requires_grad_(config.finetune)
        backbone.eval()
        self.input_prompt = self.deep_prompt = self.separator = None
        device = next(backbone.parameters()).device
        if prompt_length:  # start as if P random unit tokens came first: prompts at the scale of real activations
            with torch.no_grad():
                start = torch.randint(*backbone.vocab.units, (1, prompt_length), device=device)
                _, cache = self.features(start)
                self.input_prompt = nn.Parameter(self.embed(start)[0].clone()) if config.input_prompt else None
                self.deep_prompt = nn.Parameter(torch.stack([torch.stack([t[0].transpose(0, 1).flatten(1) for t in kv])
                                                             for kv in cache]).clone()) if config.deep else None
        # the separator starts as the base's own `<s>` embedding
        sep = torch.tensor([[self.sep_index]], device=device)
        self.separator = nn.Parameter(backbone.embed_tokens(sep)[0, 0].detach().clone()) if config.separator else None
        self.verbalizer = nn.Linear(shape.vocab_size, config.num_classes) if config.num_classes else None

    # ----------------------------------------------------------------- params
    def prompt_state(self) -> dict:
        """A copy of the trainable tensors (all of them when fine-tuning), on the CPU: what a checkpoint holds.
        A copy, not a view: on the CPU `.cpu()` returns the parameter itself, which goes on training."""
        return {name: p.detach().cpu().clone() for name, p in self.named_parameters() if p.requires_grad}

    def trainable_count(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def train(self, mode: bool = True):
        super().train(mode)
        if not self.finetune:
            self.base.eval()  # frozen: no dropout in the base either
        return self

    # ---------------------------------------------------------------- forward
    def features(self, tokens, past: Cache | None = None, past_valid=None, offset=None, depth=None, attend=None,
                 streams=None, keep_cache=True):
        """Hidden states after the last layer for `tokens` (B x T, right-padded), and their prosody
        `streams` (B x T x 2) for a multi-stream backbone (backbones/__init__.py).

        Without `past`, the input prompt goes first. With `past` (from an earlier
        call, keys B x H x S x hd and `past_valid` B x S), `tokens` continue
        each row at position `offset` (B,). Returns (B x T x d, cache of this call).
        `depth` (T,) and `attend` (T x T, True: may attend) lay the tokens out as a
        tree instead of a sequence: token t sits at position offset + depth[t] and
        attends to the tokens `attend[t]` marks (its ancestors and itself), so all
        branches of a trie of candidate labels run in one pass. The default is a
        sequence: depth 0, 1, 2, ... and causal attention. `keep_cache=False`: no cache is
        returned (None) where making it costs work (training reads none).
        """
        B, T = tokens.shape
        start = torch.zeros(B, dtype=torch.long, device=tokens.device) if offset is None else offset
        positions = start[:, None] + (torch.arange(T, device=tokens.device) if depth is None else depth)
        x = self.embed(tokens, positions, streams)
        n_in = 0 if self.input_prompt is None else self.input_prompt.shape[0]
        if past is None and n_in and not self.base.training:
            return self._after_shared_prompt(x, positions + n_in, attend, keep_cache)
        if past is None and n_in:
            x = torch.cat([self.input_prompt.to(x.dtype).expand(B, -1, -1), x], 1)
            # the input prompt's rows come first: positions 0..n_in-1 for backbones that use positions in their layers
            positions = torch.cat([torch.arange(n_in, device=tokens.device).expand(B, -1), positions + n_in], 1)
            n_run = n_in
        else:
            positions, n_run = positions + n_in, 0
        mask = self._mask(x.shape[1], past_valid, x.device, attend)
        x, cache = self.base.run(x, positions, mask, self._deep(B, x.dtype), past)
        return x[:, n_run:], cache

    def _deep(self, B, dtype):
        """The deep prompts as each layer's prefix (keys, values), B x Hkv x P x hd, or None."""
        if self.deep_prompt is None:
            return None
        prompt = self.deep_prompt.to(dtype)
        return [(self._heads(prompt[i, 0]).expand(B, -1, -1, -1), self._heads(prompt[i, 1]).expand(B, -1, -1, -1))
                for i in range(prompt.shape[0])]

    def _after_shared_prompt(self, x, positions, attend, keep_cache):
        """The tokens' layer input `x` (B x T x d, at `positions` after the input prompt's) through the base
        after the input prompt, whose rows run once.

        The prompt's rows see no token (they come first, and attention is causal) and the frozen base has
        no dropout, so they compute the same for every sentence: they run as one row, and their keys and
        values join each layer's prefix after the deep prompts', 1/B of the work of running them in every row.
        The hidden states are those of the prompt's rows run in every row; the cache returned holds the
        prompt's rows too (expanded, only when `keep_cache`), as that run's does."""
        B, T = x.shape[:2]
        n_in = self.input_prompt.shape[0]
        prompt = self.input_prompt.to(x.dtype)[None]
        prompt_positions = torch.arange(n_in, device=x.device)[None]
        deep = self._deep(1, x.dtype)
        _, shared = self.base.run(prompt, prompt_positions, self._mask(n_in, None, x.device), deep)
        # every row attends to the deep prompts and the input prompt's rows alike: one prefix of both, one
        # concatenation a layer
        prefix = shared if deep is None else [(torch.cat([dk, k], 2), torch.cat([dv, v], 2))
                                              for (dk, dv), (k, v) in zip(deep, shared)]
        prefix = [(k.expand(B, -1, -1, -1), v.expand(B, -1, -1, -1)) for k, v in prefix]
        y, cache = self.base.run(x, positions, self._mask(T, None, x.device, attend, shared=n_in), prefix)
        if not keep_cache:
            return y, None
        return y, [(torch.cat([pk.expand(B, -1, -1, -1), k], 2), torch.cat([pv.expand(B, -1, -1, -1), v], 2))
                   for (pk, pv), (k, v) in zip(shared, cache)]

    def embed(self, tokens, positions=None, streams=None):
        """Layer-0 input of `tokens`: the backbone's token vectors (the separator's at `<s>`), positions and
        streams."""
        emb = self.base.embed_tokens(tokens)
        if self.separator is not None:
            emb = torch.where((tokens == self.sep_index).unsqueeze(-1), self.separator.to(emb.dtype), emb)
        if positions is None:
            positions = torch.arange(tokens.shape[1], device=tokens.device).expand(tokens.shape[0], -1)
        if streams is None:  # a backbone of one stream need not take them
            return self.base.layer_input(emb, positions)
        return self.base.layer_input(emb, positions, streams)

    def _heads(self, x):  # (P, kv_dim) -> (1, Hkv, P, hd)
        shape = self.base.shape
        return x.unflatten(-1, (shape.kv_heads, shape.head_dim)).transpose(-3, -2)[None]

    def _mask(self, T, past_valid, device, attend=None, shared=0):
        """Boolean mask (True = attend): deep prompts always (and the input prompt's `shared` rows, run once
        a batch, after them), the past where valid, the present causally (or as `attend` says)."""
        causal = torch.ones(T, T, dtype=torch.bool, device=device).tril() if attend is None else attend
        P = shared + (0 if self.deep_prompt is None else self.deep_prompt.shape[2])
        if past_valid is None:
            return torch.cat([causal.new_ones(T, P), causal], -1)  # T x K, the same for every row
        B = past_valid.shape[0]
        return torch.cat([causal.new_ones(B, 1, T, P), past_valid[:, None, None, :].expand(-1, 1, T, -1),
                          causal.expand(B, 1, T, T)], -1)

    def logits(self, features):
        """Vocabulary logits, or class logits through the linear verbalizer."""
        out = self.base.logits(features)
        return out if self.verbalizer is None else self.verbalizer(out.to(self.verbalizer.weight.dtype))

    def forward(self, tokens, targets, streams=None):
        """Logits at the target positions (the `<s>` and label positions), N x V (or N x C): `targets` is a
        B x T boolean mask, or N flat indices (row * T + column), which need no host sync to gather. The
        label is read from the token stream only: a multi-stream backbone's other outputs (the label
        positions' prosody) are not part of the loss."""
        x, _ = self.features(tokens, streams=streams, keep_cache=False)
        return self.logits(x[targets] if targets.dtype == torch.bool else x.flatten(0, 1)[targets])
