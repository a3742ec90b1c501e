"""Prompt-tuning defaults chosen by the uLM and the data in use, not by the task: `sp-train --lr auto`,
`--prompt-length auto` and `--max-epoch auto`.

The rule: the learning rate falls with the uLM's width (its decoder embedding dimension) as a power law
through two measured anchors, and is held at the nearer anchor outside them:

    128 dimensions (the small uLM `sp-pretrain` makes, 4 x 128)  ->  3e-2
    1024 dimensions (GSLM's hubert100_lm, 12 x 1024)               ->  5e-3 (the paper's)

so lr = 3e-2 * (128 / dim) ** 0.862 in between (512 dimensions: 9.1e-3). Wider models take smaller Adam
steps for the same change of their output, as in muP's 1 / width rule for hidden weights. Depth is not
part of the rule: nothing measured here separates it from width.

The prompt length follows the same kind of rule through its own two anchors:

    128 dimensions  ->  10 vectors (the best of 5 and 10 on the sweeps of RESULTS.md)
    1024 dimensions ->   5 vectors (the paper's budget: 129,024 trainable values, under its 0.15 M)

so length = 10 * (128 / dim) ** (1/3), rounded (512 dimensions: 6). A vector of a wider uLM carries more
trainable values (layers x 2 x dim of them in the deep prompts), and a narrow one needs more vectors to
steer its states at all.

The epoch cap: 30 epochs, or as many as it takes to make 3,000 updates when the train split is small.
Patience (above chance, prompting/stopping.py) is what ends a run that has converged; the cap only ends
one that is still learning or never learns. A fixed epoch count cannot serve both a 50,000-utterance
split (1,600 updates an epoch) and an 800-utterance one (25 updates an epoch, where 30 epochs stopped a
three-slot intent task still rising at half of what it reaches).
"""
from __future__ import annotations

import math
import re

ANCHORS = ((128, 3e-2), (1024, 5e-3))  # (decoder embed dim, Adam lr of the prompts), measured
LENGTH_ANCHORS = ((128, 10), (1024, 5))  # (decoder embed dim, prompt vectors): measured, the paper's
MIN_EPOCHS, MIN_UPDATES = 30, 3000  # the epoch cap of --max-epoch auto


def power_law(anchors, embed_dim: int) -> float:
    """The value at `embed_dim` of the power law through two (dim, value) anchors, held outside them."""
    (d0, v0), (d1, v1) = anchors
    dim = min(max(embed_dim, d0), d1)
    return v0 * (dim / d0) ** (math.log(v1 / v0) / math.log(d1 / d0))


def anchors_text(anchors) -> str:
    """Two anchors as sp-train logs them beside the value it chose: `0.03 at 128 dimensions, 0.005 at 1024`."""
    (d0, v0), (d1, v1) = anchors
    return f"{v0:g} at {d0} dimensions, {v1:g} at {d1}"


def auto_lr(embed_dim: int) -> float:
    """The prompt learning rate for a uLM this wide (see the module's rule)."""
    return float(f"{power_law(ANCHORS, embed_dim):.2g}")


def auto_prompt_length(embed_dim: int) -> int:
    """The prompt length for a uLM this wide (see the module's rule)."""
    return round(power_law(LENGTH_ANCHORS, embed_dim))


def auto_epochs(updates_per_epoch: int) -> int:
    """The epoch cap for this many updates an epoch (see the module's rule)."""
    return max(MIN_EPOCHS, math.ceil(MIN_UPDATES / max(updates_per_epoch, 1)))


def ulm_shape(state: dict) -> tuple[int, int]:
    """(decoder layers, embed dim) of a fairseq transformer_lm checkpoint, read from its weights (every
    checkpoint format has them; old ones have `args`, new ones `cfg`)."""
    model = state.get("model", state)
    layers = {int(m.group(1)) for key in model if (m := re.match(r"decoder\.layers\.(\d+)\.", key))}
    key = "decoder.layers.0.self_attn.k_proj.weight"
    if not layers or key not in model:
        raise ValueError("not a fairseq transformer_lm checkpoint (no decoder.layers.N.self_attn weights)")
    return len(layers), int(model[key].shape[0])


def read_ulm_shape(path: str) -> tuple[int, int]:
    """`ulm_shape` of a checkpoint file; memory-mapped where the format allows, so the weights stay on disk.
    A file that is no transformer_lm checkpoint is refused in one line."""
    from ..checkpoints import map_lm, refusing

    with refusing(path):
        return ulm_shape(map_lm(path))
