"""Labelled sentences as the training loop reads them: batches by length, collated once.

Sentences are sorted by length and cut into batches of at most `batch_size` sentences and `max_tokens`
padded tokens (fairseq's `batch_by_size`); each batch is collated into the tensors the model reads
(`</s> units <s> label`, right-padded) and the flat positions of its targets (the label tokens and
`</s>`, predicted at `<s>` and after each label token; or the label's class at `<s>` with the linear
verbalizer). The loop moves them to the device once and only reorders them each epoch.
"""
from __future__ import annotations

import dataclasses

import torch

from .labels import CandidateSteps, label_tokens


@dataclasses.dataclass
class Batch:
    """Sentences collated as the model reads them, and where their targets are."""
    tokens: torch.Tensor  # B x T: `</s> units <s> label`, right-padded
    where: torch.Tensor  # N: flat indices (row * T + column) of the target positions
    gold: torch.Tensor  # N: the target at each (a label token or `</s>`; a class index with the linear verbalizer)
    row: torch.Tensor  # N: the sentence each target belongs to
    count: int  # targets that count (a class of -100 does not)
    sentences: int
    allowed: torch.Tensor | None = None  # N x V: the tokens a candidate may have there (valid batches)

    def to(self, device) -> Batch:
        moved = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for name, value in moved.items():
            if isinstance(value, torch.Tensor):
                moved[name] = value.to(device, non_blocking=True)
        return Batch(**moved)


def make_batches(sentences, vocab, batch_size: int, max_tokens: int, classes: dict | None = None,
                 candidates: CandidateSteps | None = None) -> list[Batch]:
    """Labelled sentences (`units <s> label </s>`, vocabulary indices) as batches by length: at most
    `batch_size` sentences and `max_tokens` padded tokens each. With `classes` (label text -> index), the
    target is the label's class at `<s>` (-100 for a label of no class); with `candidates`, each batch
    also holds the tokens allowed at each target position (for the valid accuracy)."""
    order = sorted(range(len(sentences)), key=lambda i: len(sentences[i]))
    groups, group, longest = [], [], 0
    for i in order:
        size = max(longest, len(sentences[i]))
        if group and (len(group) == batch_size or (len(group) + 1) * size > max_tokens):
            groups.append(group)
            group, size = [], len(sentences[i])
        group.append(i)
        longest = size
    if group:
        groups.append(group)
    return [collate([sentences[i] for i in group], vocab, classes, candidates) for group in groups]


def collate(sentences, vocab, classes=None, candidates=None) -> Batch:
    T = max(len(s) for s in sentences)
    tokens = torch.full((len(sentences), T), vocab.pad, dtype=torch.long)
    where, gold, row, rows = [], [], [], []
    for b, seq in enumerate(sentences):
        units, label = label_tokens(seq, vocab.bos, vocab.eos)
        tokens[b, 0] = vocab.eos
        tokens[b, 1:len(seq)] = seq[:-1]
        start = len(units) + 1  # where `<s>` sits in the input (after `</s>` and the units): it predicts the label
        if classes is not None:
            where.append(b * T + start)
            gold.append(classes.get(vocab.string(label), -100))
            row.append(b)
        else:
            targets = seq[start:].tolist()  # the label tokens and `</s>`
            where += [b * T + start + k for k in range(len(targets))]
            gold += targets
            row += [b] * len(targets)
            rows.append(targets)
    gold_tensor = torch.tensor(gold, dtype=torch.long)
    allowed = candidates.allowed(rows, "cpu") if candidates is not None and classes is None else None
    return Batch(tokens, torch.tensor(where, dtype=torch.long), gold_tensor, torch.tensor(row, dtype=torch.long),
                 int(gold_tensor.ne(-100).sum()), len(sentences), allowed)
