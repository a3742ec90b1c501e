"""sp-pretrain: pretrain a unit LM (fairseq `transformer_lm`) from scratch.

    sp-lmdata --no-label train.units | sp-binarize --out ulm-bin train=- ...   # unlabelled units
    sp-pretrain ulm-bin --save-dir exp/ulm --size small

fairseq's own trainer runs in-process (task language_modeling, one
utterance a sample, `--sample-break-mode eos`), with early stopping on the
valid loss (`--patience`), progress on stderr and optional TensorBoard logs.
It trains in a temporary directory beside SAVE_DIR; on success SAVE_DIR gets
`checkpoint_best.pt` (no optimizer state), the data-bin's `dict.txt` and
`pretrain.json` (the settings, the valid perplexity of the best checkpoint
reloaded through `checkpoints.load_lm`, and an add-one unigram model's).
"""
from __future__ import annotations

import json
import logging
import math
import os
import shutil
import sys
import tempfile
import time
import warnings

import click
import numpy as np
import torch

from .checkpoints import fairseq_globals, load_lm
from . import distributed
from .distributed import World
from .io import BadInput, command, log, pick_device, runtime_options
from .precision import amp_argv, fairseq_training

# name: (layers, embed dim, ffn dim, heads, default lr).  `big` is GSLM's transformer_lm_big shape.
SIZES = {
    "tiny": (2, 64, 128, 2, 3e-3),
    "small": (4, 128, 512, 4, 2e-3),
    "base": (6, 512, 2048, 8, 1e-3),
    "big": (12, 1024, 4096, 16, 5e-4),
}


def fairseq_argv(data, save_dir, size, lr, warmup, max_tokens, max_epoch, max_update, patience, seed,
                 device, precision, dropout, tensorboard_logdir, log_interval, shape=None, update_freq=1,
                 here: World = World()) -> list[str]:
    """fairseq-train's command line; `shape` (layers, dim, ffn, heads) overrides the size's; `here`: this
    process among torchrun's (see distributed.py)."""
    layers, dim, ffn, heads, default_lr = SIZES[size]
    layers, dim, ffn, heads = shape or (layers, dim, ffn, heads)
    argv = [data, "--task", "language_modeling", "--sample-break-mode", "eos", "--tokens-per-sample", "1024",
            "--arch", "transformer_lm", "--decoder-layers", layers, "--decoder-embed-dim", dim,
            "--decoder-input-dim", dim, "--decoder-output-dim", dim,  # else 512, with projections
            "--decoder-ffn-embed-dim", ffn, "--decoder-attention-heads", heads,
            "--share-decoder-input-output-embed", "--dropout", dropout,
            "--criterion", "cross_entropy", "--optimizer", "adam", "--adam-betas", "(0.9, 0.98)",
            "--weight-decay", "0.01", "--clip-norm", "1.0", "--lr", lr or default_lr,
            "--lr-scheduler", "inverse_sqrt", "--warmup-updates", warmup, "--warmup-init-lr", "1e-07",
            "--max-tokens", max_tokens, "--required-batch-size-multiple", 1,  # 8 drops sentences (fairseq#5036)
            "--max-epoch", max_epoch, "--max-update", max_update,
            "--patience", patience, "--seed", seed, "--save-dir", save_dir,
            "--no-epoch-checkpoints", "--no-last-checkpoints", "--no-save-optimizer-state",
            "--best-checkpoint-metric", "loss", "--num-workers", "0", "--log-format", "simple",
            "--log-interval", log_interval]
    argv += ["--cpu"] if device.type == "cpu" else []
    argv += distributed.fairseq_argv(device, here, update_freq) + amp_argv(precision)
    if tensorboard_logdir:
        argv += ["--tensorboard-logdir", tensorboard_logdir]
    return [str(a) for a in argv]


def train(argv: list[str], device: torch.device, precision: str = "fp32") -> None:
    """fairseq-train's main, in this process, logging to stderr."""
    from fairseq import distributed_utils, options
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf
    from fairseq_cli import train as fairseq_train

    logging.basicConfig(format="%(asctime)s | %(levelname)s | %(name)s | %(message)s", level=logging.INFO,
                        stream=sys.stderr, force=True)  # fairseq_cli.train logs to stdout; stdout is for data
    args = options.parse_args_and_arch(options.get_training_parser(), argv)
    with warnings.catch_warnings():  # hydra's deprecation notices about fairseq's config store
        warnings.simplefilter("ignore", UserWarning)
        cfg = convert_namespace_to_omegaconf(args)
    try:
        with fairseq_globals(), fairseq_training(device, precision):
            distributed_utils.call_main(cfg, fairseq_train.main)
    finally:
        distributed.leave()


def read_split(data: str, split: str) -> list[np.ndarray]:
    from fairseq.data.indexed_dataset import MMapIndexedDataset

    return [item.numpy().astype(np.int64) for item in MMapIndexedDataset(os.path.join(data, split))]


@torch.inference_mode()
def lm_perplexity(model, dictionary, sentences, device, max_tokens=8192) -> float:
    """exp of the mean NLL of every token incl. eos, each sentence after an eos (fairseq's LM input)."""
    ordered = sorted(sentences, key=len)
    batches, batch = [], []
    for sentence in ordered:  # ascending lengths: the newest sentence is the longest of its batch
        if batch and (len(batch) + 1) * len(sentence) > max_tokens:
            batches.append(batch)
            batch = []
        batch.append(sentence)
    batches.append(batch)
    total, count = 0.0, 0
    for batch in batches:
        target = torch.full((len(batch), len(batch[-1])), dictionary.pad(), dtype=torch.long)
        for row, sentence in enumerate(batch):
            target[row, :len(sentence)] = torch.from_numpy(sentence)
        source = torch.cat([torch.full((len(batch), 1), dictionary.eos()), target[:, :-1]], dim=1)
        source[source == dictionary.pad()] = dictionary.eos()  # past a sentence's end: not scored
        logits = model(source.to(device))[0].float()
        total += torch.nn.functional.cross_entropy(logits.transpose(1, 2), target.to(device),
                                                   ignore_index=dictionary.pad(), reduction="sum").item()
        count += int((target != dictionary.pad()).sum())
    return math.exp(total / count)


def unigram_perplexity(train_sentences, valid_sentences, dictionary) -> float:
    """Add-one unigram from the train counts over the units and eos, on the valid tokens incl. eos."""
    counts = np.bincount(np.concatenate(train_sentences), minlength=len(dictionary)).astype(np.float64)
    support = np.zeros(len(dictionary), dtype=bool)
    support[dictionary.nspecial:] = True
    support[dictionary.eos()] = True
    probs = np.where(support, counts + 1, 0) / (counts[support].sum() + support.sum())
    valid = np.concatenate(valid_sentences)
    return float(np.exp(-np.log(probs[valid]).mean()))


@command("Pretrain a unit LM (fairseq transformer_lm) from scratch on a data-bin of unlabelled units.")
@click.argument("data", type=click.Path(exists=True, file_okay=False))
@click.option("--save-dir", required=True, type=click.Path(file_okay=False),
              help="Gets checkpoint_best.pt, dict.txt and pretrain.json.")
@click.option("--arch", type=click.Choice(["transformer_lm", "opt"]), default="transformer_lm", show_default=True,
              help="transformer_lm: fairseq's, trained by fairseq-train; opt: a transformers OPT of the same shape, "
                   "trained by a loop of our own (hf_pretrain.py; needs the optional transformers), for the hf "
                   "backbone.")
@click.option("--size", type=click.Choice(list(SIZES)), default="small", show_default=True,
              help="Layers x dim (ffn, heads): tiny 2x64 (128, 2) for tests, small 4x128 (512, 4), "
                   "base 6x512 (2048, 8), big 12x1024 (4096, 16) = GSLM's transformer_lm_big.")
@click.option("--layers", type=click.IntRange(min=1), help="Override the size's number of layers.")
@click.option("--embed-dim", type=click.IntRange(min=8), help="Override the size's model dimension.")
@click.option("--ffn-dim", type=click.IntRange(min=8), help="Override the size's feed-forward dimension.")
@click.option("--heads", type=click.IntRange(min=1), help="Override the size's attention heads.")
@click.option("--max-epoch", type=int, default=20, show_default=True)
@click.option("--max-update", type=int, default=0, show_default=True, help="0: no limit.")
@click.option("--patience", type=int, default=3, show_default=True,
              help="Stop after this many validations without a better valid loss (-1: never).")
@click.option("--max-tokens", type=int, default=2048, show_default=True,
              help="Tokens per batch, per process (under torchrun, each process reads its own batches).")
@click.option("--update-freq", type=click.IntRange(min=1), default=1, show_default=True,
              help="Batches per update, per process: the effective batch is max-tokens x processes x this.")
@click.option("--lr", type=float, help="Peak learning rate (default by size: 3e-3 tiny ... 5e-4 big).")
@click.option("--warmup-updates", type=int, default=50, show_default=True, help="inverse_sqrt warm-up.")
@click.option("--dropout", type=float, default=0.1, show_default=True)
@click.option("--seed", type=int, default=1, show_default=True)
@runtime_options(precision=True)
@click.option("--tensorboard-logdir", type=click.Path(file_okay=False), help="Write TensorBoard logs here.")
@click.option("--log-interval", type=int, default=50, show_default=True, help="Log every N updates.")
def main(data, save_dir, arch, size, layers, embed_dim, ffn_dim, heads, max_epoch, max_update, patience, max_tokens,
         update_freq, lr, warmup_updates, dropout, seed, device, threads, precision, tensorboard_logdir, log_interval):
    here = distributed.world()
    device = distributed.process_device(pick_device(device, precision, threads), here)
    for name in ("dict.txt", "train.bin", "train.idx", "valid.bin", "valid.idx"):
        if not os.path.exists(os.path.join(data, name)):
            raise BadInput(f"not a data-bin with train and valid splits: {name} is missing (see sp-binarize)", data)
    base = SIZES[size][:4]
    shape = tuple(given or default for given, default in zip((layers, embed_dim, ffn_dim, heads), base))
    if shape[1] % shape[3]:
        raise click.BadParameter(f"the model dimension {shape[1]} is not a multiple of {shape[3]} heads")
    if arch == "opt":
        return pretrain_opt(data, save_dir, shape, lr or SIZES[size][4], warmup_updates, max_tokens, max_epoch,
                            max_update, patience, seed, device, dropout, here)
    os.makedirs(save_dir, exist_ok=True)
    work = tempfile.mkdtemp(dir=save_dir, prefix=".train.")  # one a process; fairseq saves from rank 0 only
    try:
        argv = fairseq_argv(data, work, size, lr, warmup_updates, max_tokens, max_epoch, max_update, patience,
                            seed, device, precision, dropout, tensorboard_logdir, log_interval, shape, update_freq,
                            here)
        if here.main:
            log(f"{size} transformer_lm {'x'.join(map(str, shape))} on {device}: fairseq-train {' '.join(argv)}")
            log(distributed.describe_batch(max_tokens, "tokens at most", here, update_freq))
        started = time.time()
        train(argv, device, precision)
        seconds = time.time() - started
        if not here.main:
            return
        best = os.path.join(work, "checkpoint_best.pt")
        if not os.path.exists(best):
            raise BadInput("fairseq saved no checkpoint (no epoch finished?)", data)
        shutil.copyfile(os.path.join(data, "dict.txt"), os.path.join(work, "dict.txt"))
        model, dictionary = load_lm(best, device=device)
        valid = read_split(data, "valid")
        ppl = lm_perplexity(model, dictionary, valid, device)
        unigram = unigram_perplexity(read_split(data, "train"), valid, dictionary)
        layers, dim, ffn, heads = shape
        summary = {"size": size, "layers": layers, "embed_dim": dim, "ffn_dim": ffn, "heads": heads,
                   "parameters": sum(p.numel() for p in model.parameters()), "data": os.path.abspath(data),
                   "seed": seed, "lr": lr or SIZES[size][4], "max_tokens": max_tokens, "device": str(device),
                   "precision": precision, "processes": here.size, "update_freq": update_freq,
                   "effective_max_tokens": max_tokens * here.size * update_freq,
                   "train_seconds": round(seconds, 1), "valid_tokens": int(sum(len(s) for s in valid)),
                   "valid_ppl": ppl, "unigram_valid_ppl": unigram}
        with open(os.path.join(work, "pretrain.json"), "w", encoding="utf-8") as out:
            json.dump(summary, out, indent=1)
            out.write("\n")
        for name in ("dict.txt", "pretrain.json", "checkpoint_best.pt"):  # the checkpoint last: make's target
            os.replace(os.path.join(work, name), os.path.join(save_dir, name))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log(f"{summary['parameters']:,} parameters, {seconds:.0f} s; valid perplexity {ppl:.2f} "
        f"(add-one unigram: {unigram:.2f}) -> {os.path.join(save_dir, 'checkpoint_best.pt')}")


def pretrain_opt(data, save_dir, shape, lr, warmup, max_tokens, max_epoch, max_update, patience, seed, device,
                 dropout, here: World) -> None:
    """`--arch opt`: hf_pretrain.train_opt, one process, with the add-one unigram's perplexity beside its own."""
    from .databin import load_dictionary
    from .hf_pretrain import train_opt

    if here.size > 1:
        raise click.UsageError("--arch opt trains in one process (no torchrun)")
    unigram = unigram_perplexity(read_split(data, "train"), read_split(data, "valid"),
                                 load_dictionary(os.path.join(data, "dict.txt")))
    log(f"OPT {'x'.join(map(str, shape))} on {device}, lr {lr}, {max_tokens} tokens a batch")
    summary = train_opt(data, save_dir, shape, lr, warmup, max_tokens, max_epoch, max_update, patience, seed, device,
                        dropout, read_split, {"unigram_valid_ppl": unigram})
    log(f"{summary['parameters']:,} parameters, {summary['train_seconds']:.0f} s; valid perplexity "
        f"{summary['valid_ppl']:.2f} (add-one unigram: {unigram:.2f}) -> {os.path.join(save_dir, 'config.json')}")
