"""sp-train: prompt-tune a frozen unit LM on a data-bin (SpeechPrompt v2), with fairseq's trainer.

    sp-train data-bin/ --base ulm/checkpoint_best.pt -o exp/prompt.pt

Runs fairseq training in this process with the plugin in `speechprompt.prompting`
(task `speech_prompt`, model `prompt_lm`, criterion `label_ce`); fairseq's
checkpoints go to `--work-dir`. The output checkpoint holds only the trained
tensors (the prompts; everything with `--finetune`), the base's path and
sha256, the hyper-parameters, the candidate labels seen in train and, with
`--verbalizer`, the identity of the verbalizer the labels were mapped with
(sp-sample refuses to decode with another).
"""
import contextlib
import dataclasses
import json
import logging
import os
import shutil
import sys

import click
import torch

from . import distributed
from .checkpoints import fairseq_globals, file_hash, json_identity, lm_positions, load_checkpoint
from .io import BadInput, atomic_output, atomic_path, command, log, output_path_option, pick_device, runtime_options
from .precision import amp_argv, fairseq_training


def summary_path(output: str) -> str:
    """The JSON beside a prompt checkpoint: `prompt.pt` -> `prompt.json`."""
    return (output[:-3] if output.endswith(".pt") else output) + ".json"


def valid_labels(data: str, base: str, base_dict: str | None) -> list[str]:
    """The label of every well-formed valid sentence, as text (what chance level is computed from)."""
    from fairseq.data import Dictionary
    from .prompting.plugin import label_of, lm_dict_path, read_split

    dictionary = Dictionary.load(lm_dict_path(base, base_dict))
    sentences, _ = read_split(data, "valid", dictionary)
    return [label for seq in sentences if (label := label_of(seq, dictionary))]


def auto_or_positive(value, number: type, noun: str) -> float | int | str:
    """`auto` or a positive `number` (the click callback of --lr, --prompt-length and --max-epoch)."""
    if value == "auto":
        return value
    try:
        parsed = number(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is neither {noun} nor 'auto'") from None
    if parsed <= 0:
        raise click.BadParameter("must be positive")
    return parsed


def parse_duration(value) -> float:
    """Seconds from `90`, `90s`, `15m` or `2h` (click callback); 0: no cap."""
    text = str(value).strip().lower()
    scale = {"s": 1, "m": 60, "h": 3600}.get(text[-1:], None)
    try:
        seconds = float(text[:-1] if scale else text) * (scale or 1)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a duration (90, 90s, 15m, 2h)") from None
    if seconds < 0:
        raise click.BadParameter("must not be negative")
    return seconds


def read_data(data: str, base: str, base_dict: str | None, skip_bad: bool) -> tuple[list[str], int]:
    """The distinct labels of the train split, sorted, as text (the decoding candidates and the linear
    verbalizer's classes), and the count of its well-formed sentences (`units <s> label`; those are what
    --skip-bad keeps). Every train and valid sentence must fit the uLM's positions (checked here, before
    fairseq allocates anything); with --skip-bad longer ones are counted, and fairseq skips them."""
    from fairseq.data import Dictionary
    from .prompting.plugin import label_of, lm_dict_path, read_split, train_labels

    dictionary = Dictionary.load(lm_dict_path(base, base_dict))
    positions = lm_positions(base)
    for split in ("train", "valid"):
        sentences, ids = read_split(data, split, dictionary)
        long = [i for i, seq in enumerate(sentences) if len(seq) > positions]
        if long and not skip_bad:
            i, seq = long[0], sentences[long[0]]
            label = len(label_of(seq, dictionary).split()) if label_of(seq, dictionary) else 1
            raise BadInput(f"{len(seq)} tokens (`</s> units <s> label`) do not fit the uLM's {positions} positions "
                           f"({len(long)} such sentences); crop the units: sp-lmdata --max-units "
                           f"{max(1, positions - label - 2)} (Make: MAX_UNITS)", f"{data}/{split}:{i + 1} ({ids[i]})")
        if long:
            log(f"{split}: skipping {len(long)} sentences longer than the uLM's {positions} positions")
        if split == "train":
            labels = train_labels(sentences, dictionary)
            n_train = sum(label_of(seq, dictionary) is not None for seq in sentences)
    return labels, n_train


@command("Prompt-tune a frozen unit LM on a data-bin (fairseq plugin speech_prompt); write the prompt checkpoint.")
@click.argument("data", type=click.Path(exists=True, file_okay=False))
@click.option("--base", required=True, type=click.Path(exists=True, dir_okay=False), help="The frozen unit LM (fairseq checkpoint).")
@click.option("--base-dict", type=click.Path(exists=True, dir_okay=False), help="Its dict.txt [default: beside --base].")
@output_path_option("-o", "--output", required=True, help="The prompt checkpoint to write.")
@click.option("--verbalizer", type=click.Path(exists=True, dir_okay=False),
              help="The verbalizer JSON the data-bin's labels were mapped with: recorded, so sp-sample "
                   "refuses another.")
@click.option("--work-dir", help="fairseq's checkpoints and logs, emptied first [default: OUTPUT.work/, removed after].")
@click.option("--prompt-length", default="auto", show_default=True,
              callback=lambda _ctx, _p, v: auto_or_positive(v, int, "a whole number"),
              help="Vectors per prompt (input prefix, and per layer); auto: by the uLM's width (prompting/defaults.py: "
                   "10 at 128 dimensions, 5 at GSLM's 1024).")
@click.option("--deep/--no-deep", default=True, show_default=True, help="Per-layer key/value prompts.")
@click.option("--input-prompt/--no-input-prompt", default=True, show_default=True, help="Input prefix prompt.")
@click.option("--separator/--no-separator", default=True, show_default=True, help="Trainable <s> embedding.")
@click.option("--linear-verbalizer", is_flag=True,
              help="Learn Linear(vocab, classes) on the LM's logits at <s>; a class is one distinct train label.")
@click.option("--num-classes", type=int, help="Classes of the linear verbalizer [default: the distinct train labels].")
@click.option("--finetune", is_flag=True, help="Train the base LM too (full fine-tuning, for comparison).")
@click.option("--lr", default="auto", show_default=True,
              callback=lambda _ctx, _p, v: auto_or_positive(v, float, "a number"),
              help="Adam learning rate; auto: by the uLM's width (prompting/defaults.py: 3e-2 at 128 dimensions, "
                   "5e-3 at GSLM's 1024).")
@click.option("--lr-schedule", default="fixed", show_default=True, type=click.Choice(["fixed", "linear"]),
              help="fixed: constant lr (the paper); linear: warm up for --warmup-updates, then decay to 0 at "
                   "--max-epoch (or --max-update).")
@click.option("--warmup-updates", default=0, show_default=True, help="Linear warm-up of --lr-schedule linear.")
@click.option("--batch-size", default=32, show_default=True,
              help="At most this many sentences per batch, per process (under torchrun, each process reads its own "
                   "batches).")
@click.option("--max-tokens", default=4096, show_default=True, type=click.IntRange(min=1),
              help="At most this many tokens per batch, per process (fairseq's --max-tokens), so long utterances fit "
                   "in memory.")
@click.option("--update-freq", default=1, show_default=True, type=click.IntRange(min=1),
              help="Batches per update, per process: the effective batch is batch-size x processes x this.")
@click.option("--max-epoch", default="auto", show_default=True,
              callback=lambda _ctx, _p, v: auto_or_positive(v, int, "a whole number"),
              help="At most this many epochs; auto: 30, or enough for 3,000 updates on a small train split "
                   "(prompting/defaults.py).")
@click.option("--max-update", default=0, show_default=True, help="Stop after this many updates (0: no limit).")
@click.option("--max-time", default="0", show_default=True, callback=lambda _ctx, _p, v: parse_duration(v),
              help="Stop after this much training time: 90, 90s, 15m, 2h (0: no limit).")
@click.option("--patience", default=10, show_default=True,
              help="Stop when valid accuracy has not improved for this many validations, counted once it is above "
                   "chance (0: never).")
@click.option("--valid-every", default=0, show_default=True, help="Also validate every N updates (0: once an epoch).")
@runtime_options(precision=True)
@click.option("--seed", default=1, show_default=True)
@click.option("--skip-bad", is_flag=True, help="Skip sentences without 'units <s> label' instead of failing.")
def main(data, base, base_dict, output, verbalizer, work_dir, prompt_length, deep, input_prompt, separator,
         linear_verbalizer, num_classes, finetune, lr, lr_schedule, warmup_updates, batch_size, max_tokens, update_freq,
         max_epoch, max_update, max_time, patience, valid_every, device, threads, precision, seed, skip_bad):
    from fairseq import distributed_utils, options
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf
    from fairseq_cli import train as fairseq_train

    from .prompting.defaults import (ANCHORS, LENGTH_ANCHORS, MIN_EPOCHS, MIN_UPDATES, anchors_text, auto_epochs,
                                     auto_lr, auto_prompt_length, read_ulm_shape)
    from .prompting.model import PromptConfig
    from .prompting.plugin import prompt_flags  # importing the plugin registers it before fairseq's parser is built
    from .prompting.stopping import EarlyStop, chance_level, stopping

    for handler in logging.root.handlers:  # fairseq logs to stdout; stdout carries only data
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(sys.stderr)
    if warmup_updates and lr_schedule != "linear":
        raise click.UsageError("--warmup-updates needs --lr-schedule linear")
    here = distributed.world()
    device = distributed.process_device(pick_device(device, precision, threads), here)
    for split in ("train", "valid"):
        if not os.path.exists(os.path.join(data, f"{split}.bin")):
            raise BadInput(f"no {split}.bin in the data-bin", data)
    labels, n_train = read_data(data, base, base_dict, skip_bad)
    layers, embed_dim = read_ulm_shape(base)
    if lr == "auto":
        lr = auto_lr(embed_dim)
        log(f"lr auto: {lr:g} for a uLM of {layers} x {embed_dim} ({anchors_text(ANCHORS)})")
    if prompt_length == "auto":
        prompt_length = auto_prompt_length(embed_dim)
        log(f"prompt length auto: {prompt_length} for a uLM of {layers} x {embed_dim} ({anchors_text(LENGTH_ANCHORS)})")
    # the fewest an epoch can make: --max-tokens may split a batch of long sentences
    updates_per_epoch = -(-n_train // (batch_size * here.size * update_freq))
    if max_epoch == "auto":
        max_epoch = auto_epochs(updates_per_epoch)
        if here.main:
            log(f"max epoch auto: {max_epoch} ({MIN_EPOCHS}, or enough for {MIN_UPDATES:,} updates at "
                f"{updates_per_epoch} an epoch)")
    stop = EarlyStop(patience, chance_level(valid_labels(data, base, base_dict)))
    if linear_verbalizer and num_classes and num_classes < len(labels):
        raise click.UsageError(f"--num-classes {num_classes}: the train split has {len(labels)} distinct labels")
    num_classes = num_classes or len(labels)
    config = PromptConfig(prompt_length, deep, input_prompt, separator, num_classes if linear_verbalizer else 0, finetune)
    verbalizer_record = {"path": os.path.abspath(verbalizer), "sha256": json_identity(verbalizer)} if verbalizer else None
    # under torchrun rank 0 owns the scratch directory: it empties it before it joins the other processes
    with scratch_dir(work_dir or output + ".work", keep=bool(work_dir), owner=here.main) as work_dir:
        argv = [data, "--task", "speech_prompt", "--base", base, "--arch", "prompt_lm", "--criterion", "label_ce",
                *prompt_flags(config), "--optimizer", "adam", "--lr", str(lr),
                "--batch-size", str(batch_size), "--max-tokens", str(max_tokens),
                "--max-epoch", str(max_epoch), "--max-update", str(max_update),
                "--patience", "-1", "--seed", str(seed), "--save-dir", work_dir, "--no-epoch-checkpoints",
                "--best-checkpoint-metric", "accuracy", "--maximize-best-checkpoint-metric", "--num-workers", "0",
                "--required-batch-size-multiple", "1", "--log-format", "simple", "--log-interval", "50",
                "--no-save-optimizer-state", "--validate-interval-updates", str(valid_every),
                "--save-interval-updates", str(valid_every),  # else a mid-epoch best is validated but never saved
                "--stop-time-hours", str(max_time / 3600)]
        if lr_schedule == "linear":  # fairseq's polynomial_decay, power 1, ending at the last update
            total = max_update or updates_per_epoch * max_epoch
            argv += ["--lr-scheduler", "polynomial_decay", "--total-num-update", str(total),
                     "--warmup-updates", str(warmup_updates), "--end-learning-rate", "0"]
        argv += ["--base-dict", base_dict] if base_dict else []
        argv += ["--skip-bad", "--skip-invalid-size-inputs-valid-test"] * skip_bad
        argv += ["--cpu"] * (device.type == "cpu") + distributed.fairseq_argv(device, here, update_freq)
        argv += amp_argv(precision)
        cfg = convert_namespace_to_omegaconf(options.parse_args_and_arch(options.get_training_parser(), argv))
        if here.main:
            log(distributed.describe_batch(batch_size, "sentences at most", here, update_freq))
        with fairseq_globals(), fairseq_training(device, precision), stopping(stop, max_update) as record:
            try:
                distributed_utils.call_main(cfg, fairseq_train.main)
            except ValueError as error:  # a bad sentence in a split (see --skip-bad)
                raise BadInput(str(error), data) from None
            finally:
                distributed.leave()
        if not here.main:  # rank 0 writes the prompt checkpoint
            return
        log(record.message())
        best = os.path.join(work_dir, "checkpoint_best.pt")
        if not os.path.exists(best):
            raise BadInput("fairseq wrote no checkpoint_best.pt", work_dir)
        state = load_checkpoint(best)
    base_dict = os.path.abspath(base_dict) if base_dict else None
    stop_state = dataclasses.asdict(record)
    checkpoint = {"prompt": state["model"], "config": dataclasses.asdict(config), "labels": labels,
                  "training": dict(lr=lr, lr_schedule=lr_schedule, batch_size=batch_size, processes=here.size,
                                   update_freq=update_freq, seed=seed),
                  "base": {"path": os.path.abspath(base), "sha256": file_hash(base), "dict": base_dict},
                  "verbalizer": verbalizer_record,
                  "best": state.get("extra_state", {}).get("best"), "stop": stop_state}
    trained = sum(t.numel() for t in state["model"].values())
    summary = {"best_valid_accuracy": record.best_valid_accuracy, "trainable": trained, "lr": lr,
               "ulm_shape": [layers, embed_dim], "config": dataclasses.asdict(config), "stop": stop_state}
    with atomic_output(summary_path(output)) as f:  # written first: the checkpoint is the file make waits for
        json.dump(summary, f, indent=1)
        f.write("\n")
    with atomic_path(output) as tmp:
        torch.save(checkpoint, tmp)
    log(f"wrote {output} ({trained:,} trained values; best valid accuracy {checkpoint['best']})")


@contextlib.contextmanager
def scratch_dir(path: str, keep: bool, owner: bool = True):
    """fairseq's save dir, emptied first; unless `keep`, removed afterwards, also after a failure. Only its
    `owner` (rank 0 under torchrun) empties and removes it.

    fairseq resumes from <dir>/checkpoint_last.pt: a stale one (other settings, an earlier run) would
    be picked up silently, so every run starts from a fresh directory.
    """
    if owner:
        shutil.rmtree(path, ignore_errors=True)
    try:
        yield path
    finally:
        if owner and not keep:
            shutil.rmtree(path, ignore_errors=True)
