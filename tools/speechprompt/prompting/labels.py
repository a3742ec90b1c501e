"""Labels as the prompt sees them: token sequences after `<s>`, and the trie of the candidates.

Decoding chooses among the train split's distinct labels (the candidates), and the valid accuracy
that training stops by chooses the same way. Both walk one trie: its nodes are the proper prefixes
of the candidates' token sequences (the root is the empty prefix, at `<s>`), each with the tokens
that may follow it.
"""
from __future__ import annotations

import torch


def label_tokens(seq: torch.Tensor, bos: int, eos: int):
    """`u1 .. un <s> l1 .. lk [</s>]` -> (units, label) tensors; None unless there is exactly one `<s>`."""
    where = (seq == bos).nonzero()
    if len(where) != 1:
        return None
    cut = int(where[0, 0])
    end = len(seq) - int(len(seq) > cut + 1 and seq[-1] == eos)
    return seq[:cut], seq[cut + 1:end]


def label_text(seq: torch.Tensor, vocab) -> str | None:
    """The label tokens after the one `<s>` of `units <s> label </s>`, as text; None if there is no such label."""
    parts = label_tokens(seq, vocab.bos, vocab.eos)
    return vocab.string(parts[1]) if parts is not None and len(parts[1]) else None


def distinct_labels(sentences, vocab) -> list[str]:
    """The distinct labels of the sentences, sorted: the decoding candidates and the linear verbalizer's
    classes (class i is the i-th)."""
    return sorted({label for label in (label_text(seq, vocab) for seq in sentences) if label})


class LabelTrie:
    """The proper prefixes of `rows` (token tuples), numbered in order of first appearance from the root
    (`()`, node 0), each with the set of tokens that follow it in some row."""

    def __init__(self, rows):
        self.node: dict[tuple, int] = {(): 0}
        self.following: dict[tuple, set] = {}
        for row in rows:
            for depth in range(len(row)):
                self.node.setdefault(row[:depth], len(self.node))
                self.following.setdefault(row[:depth], set()).add(row[depth])

    def allowed(self, vocab_size: int) -> torch.Tensor:
        """(nodes + 1) x vocab_size, True where a token may follow the node's prefix; the last row, for a
        prefix of no candidate, allows nothing."""
        table = torch.zeros(len(self.node) + 1, vocab_size, dtype=torch.bool)
        for prefix, tokens in self.following.items():
            table[self.node[prefix], sorted(tokens)] = True
        return table


class CandidateSteps:
    """The tokens that may come next after each prefix of a candidate label, `</s>` where a candidate ends:
    the valid accuracy judges a label token among these, as decoding chooses among the candidates."""

    def __init__(self, labels, eos: int, vocab_size: int):
        self.trie = LabelTrie([(*label, eos) for label in labels])
        self.table = self.trie.allowed(vocab_size)

    def allowed(self, gold_rows: list[list[int]], device) -> torch.Tensor:
        """One row per label position of `gold_rows` (each sentence's label tokens and `</s>`, in order):
        the tokens a candidate may have there after the gold prefix; none after a prefix of no candidate."""
        if self.table.device != torch.device(device):
            self.table = self.table.to(device)
        none = len(self.trie.node)
        nodes = [self.trie.node.get(tuple(row[:depth]), none) for row in gold_rows for depth in range(len(row))]
        return self.table[torch.tensor(nodes, dtype=torch.long, device=device)]
