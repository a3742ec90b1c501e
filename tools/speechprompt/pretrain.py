"""sp-pretrain: pretrain a unit LM (fairseq `transformer_lm`) from scratch.

    sp-lmdata --no-label train.units | sp-binarize --out ulm-bin train=- ...   # unlabelled units
    sp-pretrain ulm-bin --save-dir exp/ulm --size small

fairseq's own trainer runs in-process (task language_modeling, one
utterance a sample, `--sample-break-mode eos`), with early stopping on the
valid loss (`--patience`), progress on stderr and optional TensorBoard logs.
It trains in SAVE_DIR/.train (fairseq_run.py): a run that is killed (SIGTERM,
SIGKILL, a full disk) resumes there when rerun with the same settings, to the
same uLM an uninterrupted run gives; other settings are refused unless
`--restart` or `--if-settings-differ restart` (as Make gives it: a changed
setting is a new stage). One sp-pretrain works on a SAVE_DIR at a time (a
lock). `--arch opt` trains a transformers OPT instead (hf_pretrain.py). On
success SAVE_DIR gets `checkpoint_best.pt` (no optimizer state, fp32), the
data-bin's `dict.txt` and `pretrain.json` (the settings, the valid perplexity
of the best checkpoint reloaded through `checkpoints.load_lm`, and an add-one
unigram model's), and the scratch directory goes.

`--arch pgslm` trains pGSLM's multi-stream `transformer_ulm` instead (fairseq's task
`speech_unit_modeling`, criterion `speech_unit_lm_criterion`): units, durations and F0 from a data-bin
with prosody streams (sp-dedup --durations, sp-f0, sp-binarize), laid out as fairseq's pgslm recipe
lays them in SAVE_DIR/.pgslm-data (prosody/pretraining.py); discrete durations (capped at 20) and F0
(32 bins and unvoiced), prosody streams shifted by one (the published models' `1,1`), loss weights 1,
0.5, 0.5. SAVE_DIR then also gets `f0_bins.json`, and the perplexity is the unit stream's.
"""
from __future__ import annotations

import math
import os
import shutil
import time

import click
import numpy as np
import torch

from . import databin, distributed, fairseq_run
from .checkpoints import load_lm
from .distributed import World
from .io import BadInput, command, log, output_dir_option, pick_device, runtime_options, writing
from .locks import exclusive

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
                 here: World = World(), save_interval_updates=0, arch: str = "transformer_lm") -> list[str]:
    """fairseq-train's command line; `shape` (layers, dim, ffn, heads) overrides the size's; `here`: this
    process among torchrun's (see distributed.py). sp-pretrain gives `patience` -1: its own loop stops
    by the valid loss (fairseq_run.Rules). `data`: the data-bin, or pgslm's data config."""
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
            "--no-epoch-checkpoints", "--save-interval-updates", save_interval_updates,
            "--keep-interval-updates", 1,  # the newest mid-epoch checkpoint only
            "--best-checkpoint-metric", "loss", "--num-workers", "0", "--log-format", "simple",
            "--log-interval", log_interval]
    argv += ["--cpu"] if device.type == "cpu" else []
    argv += distributed.fairseq_argv(device, here, update_freq) + precision_argv(precision)
    if tensorboard_logdir:
        argv += ["--tensorboard-logdir", tensorboard_logdir]
    return [str(a) for a in argv]


def precision_argv(precision: str) -> list[str]:
    """fairseq's own options for `--precision`: fp16 is `--amp` (autocast and a loss scaler, fp32 weights),
    bf16 is `--bf16` (the model in bf16, fp32 master weights and Adam state, no scaler: bf16 has fp32's
    range). fairseq's `--amp` autocasts to fp16 only, and its `--fp16` would keep no fp32 weights."""
    return {"fp32": [], "fp16": ["--amp"], "bf16": ["--bf16"]}[precision]


def read_split(data: str, split: str) -> list[np.ndarray]:
    """The sentences of DATA/SPLIT as arrays of dictionary indices (a damaged split is one line)."""
    return [tokens.astype(np.int64) for tokens in databin.read_tokens(os.path.join(data, split))]


def check_databin(data: str) -> None:
    """The train and valid splits whole and within dict.txt, before any work: a truncated or empty split or
    dict.txt is one line naming the file, not an error deep in fairseq."""
    symbols = len(databin.load_dictionary(os.path.join(data, "dict.txt")).symbols)
    for split in ("train", "valid"):
        largest = max((int(tokens.max()) for tokens in read_split(data, split) if len(tokens)), default=0)
        if largest >= symbols:
            raise BadInput(f"token index {largest} is past dict.txt's {symbols} symbols (a truncated dict.txt?)",
                           os.path.join(data, f"{split}.bin"))


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
@output_dir_option("--save-dir", required=True, type=click.Path(file_okay=False),
                   help="Gets checkpoint_best.pt, dict.txt and pretrain.json (and the run's state in .train/ "
                        "while it trains).")
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
@click.option("--max-epoch", type=click.IntRange(min=0), default=20, show_default=True, help="0: no limit.")
@click.option("--max-update", type=click.IntRange(min=0), default=0, show_default=True, help="0: no limit.")
@click.option("--patience", type=int, default=3, show_default=True,
              help="Stop after this many epochs without a better valid loss at an epoch's end (-1: never).")
@click.option("--max-tokens", type=int, default=2048, show_default=True,
              help="Tokens per batch, per process (under torchrun, each process reads its own batches).")
@click.option("--update-freq", type=click.IntRange(min=1), default=1, show_default=True,
              help="Batches per update, per process: the effective batch is max-tokens x processes x this.")
@click.option("--lr", type=float, help="Peak learning rate (default by size: 3e-3 tiny ... 5e-4 big).")
@click.option("--warmup-updates", type=int, default=50, show_default=True, help="inverse_sqrt warm-up.")
@click.option("--dropout", type=float, default=0.1, show_default=True)
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--save-interval-updates", type=click.IntRange(min=0), default=0, show_default=True,
              help="Also save the run's state every N updates (fairseq validates there too), so a killed run "
                   "loses less than an epoch [default: at each epoch's end only].")
@click.option("--restart", is_flag=True, help="Start afresh, discarding the state a stopped run left in SAVE_DIR/.train.")
@click.option("--if-settings-differ", default="refuse", show_default=True, type=click.Choice(["refuse", "restart"]),
              help="What to do with a stopped run's state saved under other settings: refuse in one line, or start "
                   "afresh (Make: a changed setting is a new stage).")
@runtime_options(precision=True)
@click.option("--tensorboard-logdir", type=click.Path(file_okay=False), help="Write TensorBoard logs here.")
@click.option("--log-interval", type=int, default=50, show_default=True, help="Log every N updates.")
def main(data, save_dir, arch, size, layers, embed_dim, ffn_dim, heads, max_epoch, max_update, patience, max_tokens,
         update_freq, lr, warmup_updates, dropout, seed, save_interval_updates, restart, if_settings_differ, device,
         threads, precision, tensorboard_logdir, log_interval):
    here = distributed.world()
    device = distributed.process_device(pick_device(device, precision, threads), here)
    check_databin(data)
    base = SIZES[size][:4]
    shape = tuple(given or default for given, default in zip((layers, embed_dim, ffn_dim, heads), base))
    if shape[1] % shape[3]:
        raise click.BadParameter(f"the model dimension {shape[1]} is not a multiple of {shape[3]} heads")
    if arch == "opt":
        with exclusive(os.path.join(save_dir, ".lock"), save_dir):  # one sp-pretrain a SAVE_DIR
            return pretrain_opt(data, save_dir, shape, lr or SIZES[size][4], warmup_updates, max_tokens, max_epoch,
                                max_update, patience, seed, device, dropout, here)
    scratch = fairseq_run.Scratch(save_dir)
    source = data if arch == "transformer_lm" else pgslm_data(data, os.path.join(save_dir, f".pgslm-data.{here.rank}"))
    argv = fairseq_argv(source, scratch.path, size, lr, warmup_updates, max_tokens, max_epoch, max_update, -1, seed,
                        device, precision, dropout, tensorboard_logdir, log_interval, shape, update_freq, here,
                        save_interval_updates, arch)
    rules = fairseq_run.Rules(max_epoch, max_update, patience)
    if not here.main:  # under torchrun: rank 0 prepares the scratch directory and writes the outputs
        try:
            fairseq_run.train(fairseq_run.config(argv), scratch, rules, main=False)
        finally:
            distributed.leave()
        return
    created = not os.path.exists(save_dir)
    try:
        with exclusive(os.path.join(save_dir, ".lock"), save_dir):  # one sp-pretrain a SAVE_DIR
            started = time.time()
            summary = run(argv, data, save_dir, scratch, rules, shape, device, here, dict(
                arch=arch, size=size, seed=seed, lr=lr or SIZES[size][4], max_tokens=max_tokens, precision=precision,
                processes=here.size, update_freq=update_freq, effective_max_tokens=max_tokens * here.size *
                update_freq), restart, if_settings_differ)
    finally:
        if created and os.path.isdir(save_dir) and not os.listdir(save_dir):
            os.rmdir(save_dir)  # a run that failed at once leaves nothing behind
    for rank in range(here.size):  # pgslm's data laid out for fairseq: no use once the uLM is made
        shutil.rmtree(os.path.join(save_dir, f".pgslm-data.{rank}"), ignore_errors=True)
    log(f"{summary['parameters']:,} parameters, {time.time() - started:.0f} s; valid perplexity "
        f"{summary['valid_ppl']:.2f} (add-one unigram: {summary['unigram_valid_ppl']:.2f}) -> "
        f"{os.path.join(save_dir, 'checkpoint_best.pt')}")


def run(argv, data, save_dir, scratch, rules, shape, device, here, settings: dict, restart: bool = False,
        if_settings_differ: str = "refuse") -> dict:
    """Rank 0's run: the scratch directory made ready (new or resumed), training, the outputs; the scratch
    directory removed after success, kept after a failure while it holds a state to resume from."""
    with writing(save_dir, save_dir):  # a refusal (other settings) leaves the stopped run's state as it is
        at = scratch.prepare(fairseq_run.settings(argv, data, {"patience": rules.patience}), restart,
                             if_settings_differ)
    done = False
    try:
        if at is None:
            log(f"{settings['size']} {settings['arch']} {'x'.join(map(str, shape))} on {device}: "
                f"fairseq-train {' '.join(argv)}")
        log(distributed.describe_batch(settings["max_tokens"], "tokens at most", here, settings["update_freq"]))
        started = time.time()
        try:
            fairseq_run.train(fairseq_run.config(argv), scratch, rules, main=True)
        except (OSError, RuntimeError) as error:
            if not fairseq_run.disk_full(scratch.path, error):
                raise
            raise BadInput(f"cannot write the run's state in {scratch.path}: no space left on device "
                           f"({fairseq_run.size_text(shutil.disk_usage(scratch.path).free)} free)", save_dir) from None
        finally:
            distributed.leave()
        settings["train_seconds"] = round(time.time() - started, 1)
        with writing(save_dir, save_dir):
            summary = finish(data, save_dir, scratch, shape, device, settings)
        done = True
        return summary
    finally:
        if done:
            scratch.remove()
        elif os.path.isdir(scratch.path):
            if scratch.resumable():
                log(f"the run's state stays in {scratch.path}: the same command resumes it")
            else:
                scratch.remove()


def finish(data: str, save_dir: str, scratch, shape, device, settings: dict) -> dict:
    """The run's outputs into SAVE_DIR: the best checkpoint (fp32, no optimizer state), dict.txt, pretrain.json
    with the valid perplexity of that checkpoint as loaded back; the summary."""
    best = scratch.file("checkpoint_best.pt")
    if not os.path.exists(best):
        raise BadInput("fairseq saved no checkpoint (no epoch finished?)", data)
    final = scratch.file("final.pt")
    fairseq_run.final_checkpoint(best, final)
    shutil.copyfile(os.path.join(data, "dict.txt"), scratch.file("dict.txt"))
    valid = read_split(data, "valid")
    outputs = [("dict.txt", "dict.txt"), ("pretrain.json", "pretrain.json")]
    if settings["arch"] == "pgslm":  # the F0 bins it was trained with, beside it; the unit stream's perplexity
        from .prompting import backbones

        shutil.copyfile(os.path.join(save_dir, ".pgslm-data.0", "f0_bins.json"), scratch.file("f0_bins.json"))
        outputs.append(("f0_bins.json", "f0_bins.json"))
        model = backbones.load("pgslm", final, scratch.file("f0_bins.json"), device)
        dictionary = databin.load_dictionary(os.path.join(data, "dict.txt"))
        ppl = backbone_perplexity(model, data, "valid")
    else:
        model, dictionary = load_lm(final, device=device)
        ppl = lm_perplexity(model, dictionary, valid, device)
    unigram = unigram_perplexity(read_split(data, "train"), valid, dictionary)
    layers, dim, ffn, heads = shape
    summary = {"size": settings.pop("size"), "layers": layers, "embed_dim": dim, "ffn_dim": ffn, "heads": heads,
               "parameters": sum(p.numel() for p in model.parameters()), "data": os.path.abspath(data),
               **settings, "device": str(device), "valid_tokens": int(sum(len(s) for s in valid)),
               "valid_ppl": ppl, "unigram_valid_ppl": unigram}
    fairseq_run.write_json(scratch.file("pretrain.json"), summary)
    for name, source in outputs + [("checkpoint_best.pt", "final.pt")]:  # the checkpoint last: make's target
        os.replace(scratch.file(source), os.path.join(save_dir, name))
    return summary


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
