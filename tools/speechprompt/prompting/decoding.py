"""Decoding with a trained prompt: its checkpoint loaded onto its backbone, and the candidate labels scored.

Decoding chooses among the candidate labels: the distinct labels of the train split, which sp-train
stores in the prompt checkpoint. So a prediction is always a label the task has, and every candidate
gets a probability.

- Single-token labels (all candidates one token): one forward pass over `</s> units <s>`; the logits
  at `<s>`, restricted to the candidates' tokens (or the linear verbalizer's classes), give the scores.
- Multi-token labels (multi-slot tasks, spelled labels): the units run once, keeping each layer's
  keys and values (the KV cache); then the candidates' trie runs on that cache in one more pass (each
  distinct label prefix once), and a candidate's score is the sum of its tokens' log probabilities
  (and end of sequence when candidates differ in length). Scoring the known candidates instead of
  greedy decoding costs one extra short pass and cannot produce a label the task does not have.
"""
from __future__ import annotations

import os

import torch

from ..checkpoints import json_identity, load_checkpoint
from ..io import BadInput
from ..precision import autocast
from .labels import LabelTrie

PROMPT_KEYS = {"prompt", "config", "labels", "base"}


def read_prompt_checkpoint(path: str) -> dict:
    """A prompt checkpoint from sp-train, through the allowlisted loader; anything else refused in one line."""
    ckpt = load_checkpoint(path, kind="prompt")
    if not PROMPT_KEYS <= set(ckpt):
        what = "a fairseq model checkpoint (a unit LM? give it to sp-train --base)" if "model" in ckpt else \
            f"keys {sorted(map(str, ckpt))[:4]}"
        raise BadInput(f"refused: not a prompt checkpoint from sp-train: {what}", path)
    return ckpt


def base_paths(ckpt: dict, path: str, base: str | None = None, base_dict: str | None = None) -> tuple[str, str | None]:
    """The backbone checkpoint and vocabulary file to load: the ones given win; the recorded ones are hints.

    A recorded path that no longer exists, with nothing given instead, is one line naming the option."""
    from . import backbones

    recorded = ckpt["base"]
    kind = recorded.get("kind", backbones.DEFAULT_KIND)
    if base is None:
        base = recorded["path"]
        if not os.path.exists(base):
            raise BadInput(f"the base LM recorded in the prompt, {base}, is missing (moved?): give its path with "
                           f"--base", path)
    if recorded.get("kind") == "hf":  # its config.json maps units to tokens: no dict.txt
        return base, base_dict
    if base_dict is None and recorded.get("dict"):
        beside = backbones.companion(kind, base)
        if os.path.exists(recorded["dict"]):
            base_dict = recorded["dict"]
        elif beside and os.path.exists(beside):
            base_dict = beside
        else:
            raise BadInput(f"the uLM's dictionary recorded in the prompt, {recorded['dict']}, is missing (moved?): "
                           f"give its path with --base-dict", path)
    elif base_dict is None and kind == "fairseq":
        beside = os.path.join(os.path.dirname(os.path.abspath(base)), "dict.txt")
        if not os.path.exists(beside):
            raise BadInput(f"the uLM's dict.txt is not beside {base}: give its path with --base-dict", path)
    return base, base_dict


def load_prompt(path: str, device, base: str | None = None, base_dict: str | None = None):
    """The PromptLM of a prompt checkpoint, on its backbone (checked by sha256), in eval mode; and the
    checkpoint."""
    from . import backbones
    from .model import PromptConfig, PromptLM

    ckpt = read_prompt_checkpoint(path)
    base, base_dict = base_paths(ckpt, path, base, base_dict)
    kind = ckpt["base"].get("kind", backbones.DEFAULT_KIND)  # checkpoints from before kinds: fairseq's
    if backbones.identity(kind, base) != ckpt["base"]["sha256"]:
        raise BadInput(f"base LM {base} is not the one this prompt was trained on (sha256 differs)", path)
    model = PromptLM(backbones.load(kind, base, base_dict, device), PromptConfig.from_dict(ckpt["config"]))
    tensors = dict(ckpt["prompt"])
    if kind == "fairseq":  # full fine-tuning before backbones named the fairseq model `base.model`
        tensors = {("base.model." + k[5:] if k.startswith("base.decoder.") else k): v for k, v in tensors.items()}
    missing = set(tensors) - set(model.state_dict())
    if missing:
        raise BadInput(f"checkpoint tensors the model does not have: {sorted(missing)[:3]}", path)
    model.load_state_dict(tensors, strict=False)
    return model.to(device).eval(), ckpt


class Decoder:
    """Candidate scoring over a PromptLM; `score(prefix, lengths)` -> log-probabilities, B x candidates.

    The candidates' token sequences form a trie (`LabelTrie`). A candidate's score is the sum, over its
    tokens, of the log-probability of that token after `<s>` and the tokens before it. The first token's
    distribution is the logits at `<s>`; every other one is at a trie node (a proper prefix of some
    candidate), and all nodes run in one more pass on the KV cache of the units, each attending to its
    ancestors only. So 1,251 spelled labels of two tokens over 100 digits cost 13 extra tokens per
    sentence, not 2,502. End of sequence is scored only when candidates differ in length; among labels of
    one length every candidate ends there, and scoring it would run one more token per candidate.
    With the linear verbalizer, candidate i is class i (sp-train's order) and the logits at `<s>` are the
    class scores.
    """

    def __init__(self, model, vocab, labels: list[str]):
        self.model = model
        device = next(model.parameters()).device
        self.linear = model.verbalizer is not None
        rows = [tuple(vocab.index(t) for t in label.split()) for label in labels]
        self.scores_eos = len({len(r) for r in rows}) > 1 and not self.linear
        if self.scores_eos:
            rows = [r + (vocab.eos,) for r in rows]
        if self.linear:
            rows = [(i,) for i in range(len(labels))]  # class indices at <s>
        node = LabelTrie(rows).node  # 0 is the root (`<s>`)
        nodes = sorted(node, key=node.get)[1:]
        self.one_pass = not nodes
        self.tokens = torch.tensor([n[-1] for n in nodes], dtype=torch.long, device=device)
        self.depth = torch.tensor([len(n) - 1 for n in nodes], dtype=torch.long, device=device)
        self.attend = torch.tensor([[a == b[:len(a)] for a in nodes] for b in nodes], dtype=torch.bool,
                                   device=device).reshape(len(nodes), len(nodes))
        # each candidate's steps: (node the token is predicted at, token), padded with (0, 0) and masked
        width = max(map(len, rows))
        self.step_node = torch.tensor([[node[r[:d]] for d in range(len(r))] + [0] * (width - len(r)) for r in rows],
                                      device=device)
        self.step_token = torch.tensor([list(r) + [0] * (width - len(r)) for r in rows], device=device)
        self.step_mask = torch.tensor([[1.0] * len(r) + [0.0] * (width - len(r)) for r in rows], device=device)

    @property
    def extra_tokens(self) -> int:
        """Tokens each sentence runs after its prefix (the trie nodes)."""
        return len(self.tokens)

    def score(self, prefix: torch.Tensor, lengths: torch.Tensor, streams: torch.Tensor | None = None) -> torch.Tensor:
        """`streams`: the prefix's prosody (B x T x 2) for a multi-stream backbone; the label tokens have none."""
        m = self.model
        B = prefix.shape[0]
        x, cache = m.features(prefix, streams=streams, keep_cache=not self.one_pass)  # one pass reads no cache
        hidden = x[torch.arange(B, device=prefix.device), lengths - 1][:, None]  # at <s>
        if not self.one_pass:
            n_in = 0 if m.input_prompt is None else m.input_prompt.shape[0]
            valid = torch.cat([lengths.new_ones(B, n_in, dtype=torch.bool),
                               torch.arange(prefix.shape[1], device=prefix.device) < lengths[:, None]], 1)
            y, _ = m.features(self.tokens.expand(B, -1), cache, valid, lengths, self.depth, self.attend)
            hidden = torch.cat([hidden, y], 1)
        logp = m.logits(hidden).float().log_softmax(-1)  # B x (1 + nodes) x V (or classes)
        return (logp[:, self.step_node, self.step_token] * self.step_mask).sum(-1)


def check_length(units: int, label: int, positions: int, where: str) -> None:
    """`</s> units <s> label` must fit the uLM's positions: a clear error, not an index error in the model."""
    if units + label + 2 > positions:
        raise BadInput(f"{units} units + {label} label tokens + 2 do not fit the uLM's {positions} positions; "
                       f"crop the units: sp-lmdata --max-units {positions - label - 2} (Make: MAX_UNITS)", where)


def token_batches(items: list, extra: int, batch_size: int, max_tokens: int):
    """Batches of items (i, prefix, gold) of similar length: at most `batch_size` sentences and
    `max_tokens` tokens, counting the padded prefix and the `extra` label tokens of each sentence."""
    batch, longest = [], 0
    for item in sorted(items, key=lambda item: len(item[1])):
        size = max(longest, len(item[1])) + extra
        if batch and (len(batch) == batch_size or (len(batch) + 1) * size > max_tokens):
            yield batch
            batch, longest = [], 0
        batch.append(item)
        longest = max(longest, len(item[1]))
    if batch:
        yield batch


def sentence_prefix(units: torch.Tensor, vocab) -> torch.Tensor:
    """`</s> units <s>`: what the uLM reads before the label (a sentence starts after `</s>`, as fairseq's)."""
    return torch.cat([units.new_tensor([vocab.eos]), units, units.new_tensor([vocab.bos])])


def score_batches(decoder: Decoder, items: list, batch_size: int, max_tokens: int, device, precision: str = "fp32",
                  streams: list | None = None):
    """Yield (batch, probabilities) for items (i, prefix, gold) in `token_batches`: a probability per
    candidate, batch size x candidates, on the CPU. sp-sample and sp-classify decode through this one
    function, so the same sentences give the same batches and the same numbers. `streams[i]`: item i's
    prosody (its sentence's, databin.Split.streams), for a multi-stream backbone."""
    from .batches import collate_streams

    pad = decoder.model.base.vocab.pad
    for batch in token_batches(items, decoder.extra_tokens, batch_size, max_tokens):
        with torch.inference_mode(), autocast(device, precision):  # per batch: no mode left on between yields
            lengths = torch.tensor([len(p) for _, p, _ in batch], device=device)
            prefix = collate_prefixes([p for _, p, _ in batch], pad).to(device)
            prosody = None if streams is None else collate_streams(  # the units' rows, after `</s>`
                [streams[i][:len(p) - 2] for i, p, _ in batch], prefix.shape[1], shift=1).to(device)
            probs = decoder.score(prefix, lengths, prosody).softmax(-1).cpu()
        yield batch, probs


def verbalizer_decoder(path: str, ckpt: dict, candidates: list[str]):
    """tokens -> label by the verbalizer at `path`, which must be the one the prompt was trained with.

    A different map would turn truth and prediction alike into `<unk>` (or into
    other labels) and score them as agreeing, so it is refused: by identity when
    sp-train recorded one (`--verbalizer`), and always when a train label has no
    value under it.
    """
    from ..verbalizer import load_verbalizer

    recorded = (ckpt.get("verbalizer") or {}).get("sha256")
    if recorded and json_identity(path) != recorded:
        raise BadInput(f"refused: not the verbalizer the prompt was trained with "
                       f"({ckpt['verbalizer']['path']}; sha256 differs)", path)
    try:
        vb = load_verbalizer(path)
    except (ValueError, KeyError, TypeError) as error:
        raise BadInput(f"not a verbalizer: {error}", path) from None
    unknown = sorted({word for c in candidates for word in vb.words(c.split())} - set(vb.inverse))
    if unknown:
        raise BadInput(f"refused: the prompt's train labels use tokens {unknown[:5]} this verbalizer maps to no "
                       f"label (trained with another verbalizer?)", path)
    return lambda tokens: vb.decode(tokens, default="<unk>")


def collate_prefixes(prefixes: list[torch.Tensor], pad: int) -> torch.Tensor:
    """Right-padded B x T."""
    out = torch.full((len(prefixes), max(len(p) for p in prefixes)), pad, dtype=torch.long)
    for row, p in enumerate(prefixes):
        out[row, :len(p)] = p
    return out
