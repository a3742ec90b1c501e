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

`--arch pgslm` trains pGSLM's multi-stream `transformer_ulm` instead (fairseq's task
`speech_unit_modeling`, criterion `speech_unit_lm_criterion`): units, durations and F0 from a data-bin
with prosody streams (sp-dedup --durations, sp-f0, sp-binarize), laid out as fairseq's pgslm recipe
lays them (prosody/pretraining.py); discrete durations (capped at 20) and F0 (32 bins and unvoiced),
prosody streams shifted by one (the published models' `1,1`), loss weights 1, 0.5, 0.5. SAVE_DIR then
also gets `f0_bins.json`, and the perplexity is the unit stream's.
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


ARCHES = {  # --arch: fairseq's task, model and criterion
    "transformer_lm": ["--task", "language_modeling", "--sample-break-mode", "eos", "--tokens-per-sample", "1024",
                       "--arch", "transformer_lm", "--criterion", "cross_entropy"],
    "pgslm": ["--task", "speech_unit_modeling", "--tokens-per-sample", "1024", "--max-target-positions", "1024",
              "--arch", "transformer_ulm", "--criterion", "speech_unit_lm_criterion", "--loss-weights", "1.0;0.5;0.5",
              "--discrete-duration", "--discrete-f0", "--max-token-duration", "20", "--stream-shifts", "1,1",
              "--ignore-unused-valid-subsets"],  # the data is a config file, not a directory of splits
}


def fairseq_argv(data, save_dir, size, lr, warmup, max_tokens, max_epoch, max_update, patience, seed,
                 device, precision, dropout, tensorboard_logdir, log_interval, shape=None, update_freq=1,
                 here: World = World(), arch: str = "transformer_lm") -> list[str]:
    """fairseq-train's command line; `shape` (layers, dim, ffn, heads) overrides the size's; `here`: this
    process among torchrun's (see distributed.py); `data`: the data-bin, or pgslm's data config."""
    layers, dim, ffn, heads, default_lr = SIZES[size]
    layers, dim, ffn, heads = shape or (layers, dim, ffn, heads)
    argv = [data, *ARCHES[arch], "--decoder-layers", layers, "--decoder-embed-dim", dim,
            "--decoder-input-dim", dim, "--decoder-output-dim", dim,  # else 512, with projections
            "--decoder-ffn-embed-dim", ffn, "--decoder-attention-heads", heads,
            "--share-decoder-input-output-embed", "--dropout", dropout,
            "--optimizer", "adam", "--adam-betas", "(0.9, 0.98)",
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


def pgslm_data(data: str, work: str) -> str:
    """The data-bin's train and valid splits laid out for fairseq's speech_unit_modeling task, in WORK/codes;
    the F0 bins fitted on train saved as WORK/f0_bins.json. Returns the data config's path."""
    from .databin import read_split as read_databin
    from .prosody import pretraining
    from .prompting.backbones.pgslm import _vocabulary

    symbols = [s for s in _dict_symbols(data) if s.isdigit()]
    n_units = max(map(int, symbols)) + 1 if symbols else 0
    vocab = _vocabulary(n_units)
    codes = os.path.join(work, "codes")
    os.makedirs(codes, exist_ok=True)
    splits = {name: read_databin(data, name, vocab.index) for name in ("train", "valid")}
    for name, split in splits.items():
        if split.streams is None:
            raise BadInput(f"--arch pgslm reads each unit's duration and F0, and the {name} split has no prosody "
                           f"streams ({name}.dur, {name}.f0): make its units with sp-dedup --durations and sp-f0", data)
    edges = pretraining.fit_bins(splits["train"].streams)
    pretraining.write_bins(os.path.join(work, "f0_bins.json"), edges)
    manifests = {name: pretraining.write_split(codes, name, split.sentences, split.streams, split.ids, n_units, edges)
                 for name, split in splits.items()}
    return pretraining.write_config(codes, manifests, n_units)


def _dict_symbols(data: str) -> list[str]:
    with open(os.path.join(data, "dict.txt"), encoding="utf-8") as f:
        return [line.split()[0] for line in f if line.strip()]


@torch.inference_mode()
def backbone_perplexity(backbone, data: str, split: str, max_tokens: int = 8192) -> float:
    """exp of the mean NLL of the unit stream (units and eos) of a data-bin split, through the backbone
    interface with the split's prosody streams, each sentence after an eos (as prompts read it)."""
    from .databin import read_split as read_databin
    from .prompting.batches import collate_streams

    vocab = backbone.vocab
    device = next(backbone.parameters()).device
    split_data = read_databin(data, split, vocab.index)
    order = sorted(range(len(split_data.sentences)), key=lambda i: len(split_data.sentences[i]))
    total, count, start = 0.0, 0, 0
    while start < len(order):
        end = start + 1
        while end < len(order) and (end - start + 1) * len(split_data.sentences[order[end]]) <= max_tokens:
            end += 1
        chosen = order[start:end]
        start = end
        T = max(len(split_data.sentences[i]) for i in chosen)
        target = torch.full((len(chosen), T), vocab.pad, dtype=torch.long)
        for row, i in enumerate(chosen):
            target[row, :len(split_data.sentences[i])] = split_data.sentences[i]
        tokens = torch.cat([torch.full((len(chosen), 1), vocab.eos), target[:, :-1]], 1).to(device)
        tokens[tokens == vocab.pad] = vocab.eos  # past a sentence's end: not scored
        streams = None if split_data.streams is None else \
            collate_streams([split_data.streams[i] for i in chosen], T, shift=1).to(device)
        positions = torch.arange(T, device=device).expand(len(chosen), -1)
        mask = torch.ones(T, T, dtype=torch.bool, device=device).tril()
        hidden, _ = backbone.run(backbone.layer_input(backbone.embed_tokens(tokens), positions, streams), positions,
                                 mask)
        logits = backbone.logits(hidden).float()
        total += torch.nn.functional.cross_entropy(logits.transpose(1, 2), target.to(device), ignore_index=vocab.pad,
                                                   reduction="sum").item()
        count += int((target != vocab.pad).sum())
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
@click.option("--arch", type=click.Choice([*ARCHES, "opt"]), default="transformer_lm", show_default=True,
              help="transformer_lm: fairseq's, trained by fairseq-train; pgslm: pGSLM's multi-stream transformer_ulm "
                   "(units, durations, F0; the data-bin needs prosody streams), trained by fairseq-train; opt: a "
                   "transformers OPT of the same shape, trained by a loop of our own (hf_pretrain.py; needs the "
                   "optional transformers), for the hf backbone.")
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
        source = data if arch == "transformer_lm" else pgslm_data(data, work)
        argv = fairseq_argv(source, work, size, lr, warmup_updates, max_tokens, max_epoch, max_update, patience,
                            seed, device, precision, dropout, tensorboard_logdir, log_interval, shape, update_freq,
                            here, arch)
        if here.main:
            log(f"{size} {arch} {'x'.join(map(str, shape))} on {device}: fairseq-train {' '.join(argv)}")
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
        valid = read_split(data, "valid")
        if arch == "pgslm":
            from .databin import load_dictionary
            from .prompting import backbones

            model = backbones.load("pgslm", best, os.path.join(work, "f0_bins.json"), device)
            dictionary = load_dictionary(os.path.join(data, "dict.txt"))
            ppl = backbone_perplexity(model, data, "valid")
        else:
            model, dictionary = load_lm(best, device=device)
            ppl = lm_perplexity(model, dictionary, valid, device)
        unigram = unigram_perplexity(read_split(data, "train"), valid, dictionary)
        layers, dim, ffn, heads = shape
        summary = {"arch": arch, "size": size, "layers": layers, "embed_dim": dim, "ffn_dim": ffn, "heads": heads,
                   "parameters": sum(p.numel() for p in model.parameters()), "data": os.path.abspath(data),
                   "seed": seed, "lr": lr or SIZES[size][4], "max_tokens": max_tokens, "device": str(device),
                   "precision": precision, "processes": here.size, "update_freq": update_freq,
                   "effective_max_tokens": max_tokens * here.size * update_freq,
                   "train_seconds": round(seconds, 1), "valid_tokens": int(sum(len(s) for s in valid)),
                   "valid_ppl": ppl, "unigram_valid_ppl": unigram}
        with open(os.path.join(work, "pretrain.json"), "w", encoding="utf-8") as out:
            json.dump(summary, out, indent=1)
            out.write("\n")
        names = ("dict.txt", "pretrain.json") + (("f0_bins.json",) if arch == "pgslm" else ()) + ("checkpoint_best.pt",)
        for name in names:  # the checkpoint last: make's target
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
