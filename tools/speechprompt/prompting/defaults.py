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

The epoch cap of `--max-epoch auto` bounds time; patience (above chance, prompting/stopping.py) is
what ends a run. A run whose valid accuracy never leaves chance stops after 30 epochs, or as many as it
takes to make 3,000 updates when the train split is small (a fixed epoch count cannot serve both a
50,000-utterance split, 1,600 updates an epoch, and an 800-utterance one, 25 updates an epoch). A run
that has left chance goes on while patience lets it, up to three times that: runs stopped at the cap
alone had their best valid accuracy in the cap's last epochs (FSC intents at validation 29 of 30, the
demo at 41 of 43), still rising.
"""
from __future__ import annotations

import math

ANCHORS = ((128, 3e-2), (1024, 5e-3))  # (decoder embed dim, Adam lr of the prompts), measured
LENGTH_ANCHORS = ((128, 10), (1024, 5))  # (decoder embed dim, prompt vectors): measured, the paper's
MIN_EPOCHS, MIN_UPDATES = 30, 3000  # the epoch cap of --max-epoch auto while at chance
BOUND_FACTOR = 3  # and its multiple once the run has left chance


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
    """The epoch cap of a run still at chance, for this many updates an epoch (see the module's rule)."""
    return max(MIN_EPOCHS, math.ceil(MIN_UPDATES / max(updates_per_epoch, 1)))


def auto_epoch_bound(updates_per_epoch: int) -> int:
    """The epoch cap of a run that has left chance (see the module's rule)."""
    return BOUND_FACTOR * auto_epochs(updates_per_epoch)
