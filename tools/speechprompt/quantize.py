"""sp-quantize: speech to units, a manifest in, the units table out (one unit per encoder frame).

    sp-quantize test.tsv --kmeans km.bin -o test.units                    # logmel
    sp-quantize test.tsv --kmeans km.bin --encoder hubert --checkpoint hubert_base_ls960.pt --layer 6
    sp-quantize train.tsv --kmeans km.bin --shard 0 --num-shards 4 -o train.0.units   # cat the shards

Units are not merged (sp-dedup does it), as in fairseq's quantize_with_kmeans.
Output streams: each batch is written as soon as it is done, in manifest order.
"""
from __future__ import annotations

import click
import torch
from tqdm import tqdm

from .encoders import EncoderOptionError, encoder_from_options, encoder_options
from .encoders.stream import encode
from .io import (Skipper, Units, atomic_output, command, input_argument, log, output_option,
                 pick_device, read_manifest, runtime_options, skip_bad_option, usage_errors)
from .kmeans_model import Quantizer, check_encoder, load_kmeans


def shard(items: list, index: int, count: int) -> list:
    """The `index`-th of `count` contiguous, near-equal slices: concatenated in order, the shards are `items`."""
    return items[len(items) * index // count: len(items) * (index + 1) // count]


@command("Turn a manifest's audio into units: an encoder's frames, each mapped to its nearest k-means centre.")
@input_argument
@output_option
@click.option("--kmeans", "kmeans_path", required=True, type=click.Path(dir_okay=False),
              help="k-means file: sp-kmeans output (.npz), or a joblib pickle such as GSLM's km.bin (read restricted).")
@click.option("--kmeans-rate", type=click.FloatRange(min=0, min_open=True), metavar="HZ",
              help="The frame rate the k-means was fitted at, for a file that does not record it (GSLM's and "
                   "textlesslib's pickles: 50 for HuBERT base, 25 for TWIST's mHuBERT-25Hz); another encoder rate "
                   "is refused.")
@encoder_options
@click.option("--batch-seconds", default=60.0, show_default=True, help="Audio per batch, counting padding.")
@click.option("--batch-size", type=click.IntRange(min=1), help="Utterances per batch (instead of --batch-seconds).")
@runtime_options()
@click.option("--shard", "shard_index", default=0, show_default=True, help="Which shard to do (0-based).")
@click.option("--num-shards", default=1, show_default=True, type=click.IntRange(min=1),
              help="Split the manifest in this many contiguous shards.")
@skip_bad_option
def main(input, output, kmeans_path, kmeans_rate, batch_seconds, batch_size, device, shard_index, num_shards, threads,
         skip_bad, **options):
    if not 0 <= shard_index < num_shards:
        raise click.UsageError(f"--shard {shard_index} is not in 0..{num_shards - 1}")
    device = pick_device(device, threads=threads)
    skipper = Skipper(skip_bad)
    utterances = shard(list(read_manifest(input, skipper)), shard_index, num_shards)  # cheap checks first
    centers, fitted_on = load_kmeans(kmeans_path)
    with usage_errors(EncoderOptionError):
        encoder = encoder_from_options(options, device)
    check_encoder(centers, fitted_on, encoder, kmeans_path, kmeans_rate)
    quantizer = Quantizer(centers, device)
    written = 0
    with atomic_output(output) as out:
        bar = tqdm(total=len(utterances), desc="sp-quantize", unit="utt", disable=None)
        with torch.inference_mode():
            for utt, feats in encode(utterances, encoder, skipper, batch_seconds, batch_size):
                bar.update()
                if feats is None:
                    continue
                units = quantizer(feats).tolist()
                out.write(Units(utt.id, [str(u) for u in units], utt.label).row() + "\n")
                written += 1
        bar.close()
    skipper.report("utterances")
    log(f"wrote {written} of {len(utterances)} utterances")
