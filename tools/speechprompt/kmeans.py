"""sp-kmeans: fit k-means on encoder frames of a manifest (`kmeans_model` loads and applies it).

    sp-kmeans train.tsv -o km.bin                      # logmel, K=100
    sp-kmeans train.tsv -o km.bin --encoder hubert --checkpoint hubert_base_ls960.pt --layer 6

The model is a scikit-learn MiniBatchKMeans; its centres and the encoder's
spec are saved as an `.npz` that loads without pickle (`kmeans_model`,
which also reads GSLM's joblib `km.bin`). Frames come from a seeded sample of the
manifest's utterances (`--percent`), kept by reservoir sampling so at most
`--max-frames` frames are ever held.
"""
from __future__ import annotations

import random

import click
import numpy as np
import torch
from tqdm import tqdm

from .encoders import EncoderOptionError, encoder_from_options, encoder_options
from .encoders.stream import encode
from .io import (BadInput, Skipper, atomic_path, command, input_argument, input_name, log, output_path_option,
                 pick_device, read_manifest, runtime_options, skip_bad_option, usage_errors)
from .kmeans_model import save_kmeans


# ------------------------------------------------------------------ fitting
class Reservoir:
    """A uniform sample of at most `size` rows from a stream of [n, D] arrays (seeded algorithm R)."""

    def __init__(self, size: int, seed: int):
        self.size, self.seen, self.rows = size, 0, None
        self.rng = np.random.default_rng(seed)

    def add(self, x: np.ndarray) -> None:
        if self.rows is None:
            self.rows = np.empty((self.size, x.shape[1]), dtype=np.float32)
        take = min(len(x), max(0, self.size - self.seen))
        self.rows[self.seen:self.seen + take] = x[:take]
        rest = x[take:]
        if len(rest):
            slots = self.rng.integers(0, self.seen + take + np.arange(1, len(rest) + 1))
            keep = slots < self.size
            self.rows[slots[keep]] = rest[keep]
        self.seen += len(x)

    def sample(self) -> np.ndarray:
        if self.rows is None:
            return np.empty((0, 0), dtype=np.float32)
        return self.rows[:min(self.seen, self.size)]


@command("Fit k-means (MiniBatchKMeans; centres saved as .npz, no pickle) on encoder frames of a manifest.")
@input_argument
@output_path_option("-o", "--output", required=True, help="The k-means file (.npz format, any name), e.g. km.bin.")
@encoder_options
@click.option("-k", "--clusters", default=100, show_default=True, help="Number of clusters K.")
@click.option("--percent", default=100.0, show_default=True, type=click.FloatRange(0, 100, min_open=True),
              help="Encode a seeded sample of this percentage of the utterances.")
@click.option("--max-frames", default=250_000, show_default=True,
              help="Fit on at most this many frames (uniform sample).")
@click.option("--kmeans-batch", "km_batch", default=10_000, show_default=True, help="MiniBatchKMeans batch size.")
@click.option("--max-iter", default=100, show_default=True, help="MiniBatchKMeans passes over the frames.")
@click.option("--n-init", default=3, show_default=True, help="k-means++ restarts (GSLM used 20).")
@click.option("--seed", default=0, show_default=True, help="Seeds the utterance and frame samples and k-means.")
@click.option("--batch-seconds", default=60.0, show_default=True, help="Audio per encoder batch.")
@runtime_options()
@skip_bad_option
def main(input, output, clusters, percent, max_frames, km_batch, max_iter, n_init, seed, batch_seconds,
         device, threads, skip_bad, **options):
    from sklearn.cluster import MiniBatchKMeans

    torch.manual_seed(seed)
    skipper = Skipper(skip_bad)
    with usage_errors(EncoderOptionError):
        encoder = encoder_from_options(options, pick_device(device, threads=threads))
    utterances = list(read_manifest(input, skipper))
    if percent < 100:
        count = max(1, round(len(utterances) * percent / 100))
        utterances = [utterances[i] for i in sorted(random.Random(seed).sample(range(len(utterances)), count))]
    reservoir = Reservoir(max_frames, seed)
    for _, feats in tqdm(encode(utterances, encoder, skipper, batch_seconds), total=len(utterances),
                         desc="sp-kmeans: encoding", unit="utt", disable=None):
        if feats is not None:
            reservoir.add(feats.float().cpu().numpy())
    skipper.report("utterances")
    frames = reservoir.sample()
    if not utterances or not len(frames):
        raise BadInput("no frames to fit on (no utterances, or every one skipped)", input_name(input))
    if len(frames) < clusters:
        raise BadInput(f"only {len(frames)} frames for {clusters} clusters", input_name(input))
    log(f"fitting K={clusters} on {len(frames)} of {reservoir.seen} frames ({encoder.name}, dim {encoder.dim})")
    model = MiniBatchKMeans(n_clusters=clusters, init="k-means++", max_iter=max_iter, batch_size=km_batch,
                            n_init=n_init, random_state=seed, compute_labels=False, max_no_improvement=100,
                            reassignment_ratio=0.0, tol=0.0).fit(frames)
    log(f"inertia per frame {-model.score(frames) / len(frames):.4g}")
    with atomic_path(output) as tmp:
        save_kmeans(tmp, model.cluster_centers_, encoder.spec())
