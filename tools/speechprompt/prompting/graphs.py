"""A training step's forward and backward as CUDA graphs: one graph a batch shape, replayed.

On a GPU a prompt-tuning step is small arithmetic (the frozen LM's forward, and a backward that only
carries gradients through it to the prompts) behind many kernel launches, each waiting on Python. A CUDA
graph records the launches of one step once and replays them as one, so the step runs at the speed of
its arithmetic. A graph replays fixed shapes on fixed memory: batches are padded to a few shapes
(`pad_for_graphs`: lengths rounded up to a multiple, targets to a fixed count a row, padded targets
ignored by the loss), each shape is captured the first time it comes, and a batch is copied into its
shape's inputs before the replay. The optimizer step stays outside the graph.

Used by the loop on one CUDA process with `sp-train --cuda-graphs`; DistributedDataParallel's all-reduce
and the CPU run the same step eagerly.
"""
from __future__ import annotations

import dataclasses

import torch

ROUND = 16  # batch lengths are rounded up to a multiple of this: a handful of shapes, a graph each
MAX_GRAPHS = 32  # shapes beyond this many run eagerly (memory is held by each graph's activations)


def pad_for_graphs(batches, pad: int, multiple: int = ROUND) -> list:
    """The batches padded to few shapes: lengths to a multiple of `multiple`, and the targets to a fixed
    count a row (the most any row of any batch has), padded targets pointing at position 0 with gold -100."""
    per_row = max(max(int(torch.bincount(b.row, minlength=b.sentences).max()) for b in batches), 1)
    out = []
    for b in batches:
        B, T = b.tokens.shape
        length, n = -(-T // multiple) * multiple, B * per_row
        if (length, n) == (T, len(b.where)):  # padded already
            out.append(b)
            continue
        tokens = torch.full((B, length), pad, dtype=b.tokens.dtype, device=b.tokens.device)
        tokens[:, :T] = b.tokens
        row, column = b.where // T, b.where % T
        where = torch.zeros(n, dtype=torch.long, device=b.where.device)
        gold = torch.full((n,), -100, dtype=torch.long, device=b.where.device)
        rows = torch.zeros(n, dtype=torch.long, device=b.where.device)
        where[:len(b.where)], gold[:len(b.gold)], rows[:len(b.row)] = row * length + column, b.gold, b.row
        out.append(dataclasses.replace(b, tokens=tokens, where=where, gold=gold, row=rows))
    return out


class GraphedSteps:
    """`step(batch, scale)`: the summed loss of `batch` (detached), with the gradient of `loss * scale` added to
    the parameters' `.grad`, by replaying the CUDA graph of the batch's shape (captured on first use)."""

    def __init__(self, model, loss_of, autocast, scaler=None):
        self.model, self.loss_of, self.autocast, self.scaler = model, loss_of, autocast, scaler
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.graphs: dict[tuple, tuple] = {}
        self.pool = torch.cuda.graph_pool_handle()

    def __call__(self, batch, scale: float) -> torch.Tensor:
        key = (tuple(batch.tokens.shape), batch.where.numel())
        if key not in self.graphs:
            if len(self.graphs) >= MAX_GRAPHS:
                return self._eager(batch, torch.tensor(scale, device=batch.tokens.device))
            self.graphs[key] = self._capture(batch)
        graph, static, scale_tensor, loss = self.graphs[key]
        static.tokens.copy_(batch.tokens, non_blocking=True)
        static.where.copy_(batch.where, non_blocking=True)
        static.gold.copy_(batch.gold, non_blocking=True)
        scale_tensor.fill_(scale)
        graph.replay()
        return loss

    def _eager(self, batch, scale):
        with self.autocast():
            loss = self.loss_of(self.model, batch)
        scaled = loss * scale
        (self.scaler.scale(scaled) if self.scaler is not None else scaled).backward()
        return loss.detach()

    def _capture(self, batch):
        static = dataclasses.replace(batch, tokens=batch.tokens.clone(), where=batch.where.clone(),
                                     gold=batch.gold.clone())
        scale = torch.zeros((), device=batch.tokens.device)  # warm-up and capture add nothing to the gradients
        for p in self.params:  # the graph accumulates into these very tensors
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        kept = [p.grad.clone() for p in self.params]
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):  # warm-up: lazy initialisation happens outside the capture
                self._eager(static, scale)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self.pool):
            loss = self._eager(static, scale)
        for p, grad in zip(self.params, kept):
            p.grad.copy_(grad)
        return graph, static, scale, loss
