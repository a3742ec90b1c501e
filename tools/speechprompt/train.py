"""sp-train: prompt-tune a frozen unit LM on a data-bin (SpeechPrompt v2).

    sp-train data-bin/ --base ulm/checkpoint_best.pt -o exp/prompt.pt

The loop is `prompting/loop.py`, over the backbone interface of `prompting/backbones/`. The output
checkpoint holds only the trained tensors (the prompts; everything with `--finetune`), the base's
kind, path and sha256, the hyper-parameters, the candidate labels seen in train and, with
`--verbalizer`, the identity of the verbalizer the labels were mapped with (sp-sample refuses to
decode with another).

A run saves its resume state in `--work-dir` at every validation and when stopped by SIGTERM or
SIGINT; rerunning the same command resumes it. A second sp-train aimed at the same output refuses
while the first runs.
"""
import contextlib
import dataclasses
import json
import os
import shutil

import click
import torch

from . import distributed
from .checkpoints import json_identity, save_checkpoint
from .io import BadInput, atomic_output, command, log, output_path_option, pick_device, runtime_options
from .prompting.backbones import KINDS
from .prompting.stopping import shown


def summary_path(output: str) -> str:
    """The JSON beside a prompt checkpoint: `prompt.pt` -> `prompt.json`."""
    return (output[:-3] if output.endswith(".pt") else output) + ".json"


def lock_path(output: str) -> str:
    """The lock of an output, a hidden file beside it: `exp/.prompt.pt.lock`."""
    directory, name = os.path.split(os.path.abspath(output))
    return os.path.join(directory, f".{name}.lock")


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


@command("Prompt-tune a frozen unit LM on a data-bin; write the prompt checkpoint.")
@click.argument("data", type=click.Path(exists=True, file_okay=False))
@click.option("--base", required=True, type=click.Path(exists=True),
              help="The frozen unit LM: a fairseq checkpoint, or a Hugging Face model directory (or its config.json).")
@click.option("--base-dict", type=click.Path(exists=True, dir_okay=False),
              help="Its dict.txt [default: beside --base]; pgslm: its F0 bins (f0_bins.json, or pGSLM's *_f0_bin.th) "
                   "[default: f0_bins.json beside --base].")
@click.option("--backbone", "kind", default="fairseq", show_default=True, type=click.Choice(sorted(KINDS)),
              help="The kind of the unit LM (prompting/backbones/): fairseq (transformer_lm, GSLM's hubert100_lm), "
                   "hf (a transformers OPT or LLaMA-family LM: TWIST, sp-pretrain --arch opt), pgslm (fairseq's "
                   "multi-stream transformer_ulm: units, durations, F0; the data-bin needs prosody streams).")
@output_path_option("-o", "--output", required=True, help="The prompt checkpoint to write.")
@click.option("--verbalizer", type=click.Path(exists=True, dir_okay=False),
              help="The verbalizer JSON the data-bin's labels were mapped with: recorded, so sp-sample "
                   "refuses another.")
@click.option("--work-dir", help="Where the resume state lives while training [default: OUTPUT.work/, removed after].")
@click.option("--restart", is_flag=True, help="Start afresh, discarding a resume state left by an earlier run.")
@click.option("--if-settings-differ", default="refuse", show_default=True, type=click.Choice(["refuse", "restart"]),
              help="What to do with a resume state saved under other settings: refuse in one line, or start "
                   "afresh (what Make asks for: its settings decide what a stage is).")
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
@click.option("--clip-norm", default=0.0, show_default=True, type=click.FloatRange(min=0),
              help="Clip the prompts' gradient to this norm (0: no clipping).")
@click.option("--batch-size", default=32, show_default=True, type=click.IntRange(min=1),
              help="At most this many sentences per batch, per process (under torchrun, each process reads its own "
                   "batches).")
@click.option("--max-tokens", default=4096, show_default=True, type=click.IntRange(min=1),
              help="At most this many padded tokens per batch, per process, so long utterances fit in memory.")
@click.option("--update-freq", default=1, show_default=True, type=click.IntRange(min=1),
              help="Batches per update, per process: the effective batch is batch-size x processes x this.")
@click.option("--max-epoch", default="auto", show_default=True,
              callback=lambda _ctx, _p, v: auto_or_positive(v, int, "a whole number"),
              help="At most this many epochs; auto: patience decides, within 30 epochs (or 3,000 updates) for a "
                   "run still at chance and three times that for one that left it (prompting/defaults.py).")
@click.option("--max-update", default=0, show_default=True, help="Stop after this many updates (0: no limit).")
@click.option("--max-time", default="0", show_default=True, callback=lambda _ctx, _p, v: parse_duration(v),
              help="Stop after this much training time: 90, 90s, 15m, 2h (0: no limit).")
@click.option("--patience", default=10, show_default=True,
              help="Stop when valid accuracy has not improved for this many validations, counted once it is above "
                   "chance (0: never).")
@click.option("--valid-every", default=0, show_default=True, help="Also validate every N updates (0: once an epoch).")
@runtime_options(precision=True)
@click.option("--cuda-graphs/--no-cuda-graphs", default=False, show_default=True,
              help="On one GPU, replay each batch shape's forward and backward as a CUDA graph (prompting/graphs.py; "
                   "docs/gpu.md says how far it is measured).")
@click.option("--seed", default=1, show_default=True)
@click.option("--skip-bad", is_flag=True, help="Skip sentences without 'units <s> label' (or too long) instead of failing.")
def main(data, base, base_dict, kind, output, verbalizer, work_dir, restart, if_settings_differ, prompt_length, deep,
         input_prompt, separator, linear_verbalizer, num_classes, finetune, lr, lr_schedule, warmup_updates, clip_norm,
         batch_size, max_tokens, update_freq, max_epoch, max_update, max_time, patience, valid_every, device, threads,
         precision, cuda_graphs, seed, skip_bad):
    from .locks import exclusive
    from .prompting import backbones
    from .prompting.data import check_units_known, data_identity, labelled_sentences
    from .prompting.defaults import (ANCHORS, LENGTH_ANCHORS, MIN_EPOCHS, MIN_UPDATES, anchors_text, auto_epoch_bound,
                                     auto_epochs, auto_lr, auto_prompt_length)
    from .prompting.labels import CandidateSteps, distinct_labels, label_text
    from .prompting.batches import make_batches
    from .prompting.loop import Settings, train
    from .prompting.model import PromptConfig, PromptLM
    from .prompting.stopping import chance_level

    if warmup_updates and lr_schedule != "linear":
        raise click.UsageError("--warmup-updates needs --lr-schedule linear")
    here = distributed.world()
    device = distributed.process_device(pick_device(device, precision, threads), here)
    work_dir = work_dir or output + ".work"
    state_path = os.path.join(work_dir, "state.pt")
    if kind != "fairseq":  # recorded in the prompt checkpoint, so that sp-sample finds it again
        base_dict = backbones.companion(kind, base, base_dict)
    shape = backbones.read_shape(kind, base)
    vocab = backbones.vocabulary(kind, base, base_dict)
    check_units_known(data, vocab, base)
    train_sentences, _, train_streams = labelled_sentences(data, "train", vocab, shape.max_positions, skip_bad)
    valid_sentences, _, valid_streams = labelled_sentences(data, "valid", vocab, shape.max_positions, skip_bad)
    backbones.check_streams(kind, data, train_streams is not None)
    labels = distinct_labels(train_sentences, vocab)
    if lr == "auto":
        lr = auto_lr(shape.embed_dim)
        log(f"lr auto: {lr:g} for a uLM of {shape.layers} x {shape.embed_dim} ({anchors_text(ANCHORS)})")
    if prompt_length == "auto":
        prompt_length = auto_prompt_length(shape.embed_dim)
        log(f"prompt length auto: {prompt_length} for a uLM of {shape.layers} x {shape.embed_dim} "
            f"({anchors_text(LENGTH_ANCHORS)})")
    if kind == "hf":
        from .prompting.backbones.hf_lm import PROMPT_RESERVE

        if prompt_length > PROMPT_RESERVE:
            raise click.UsageError(f"--prompt-length {prompt_length}: the hf backbone keeps {PROMPT_RESERVE} positions "
                                   f"for the input prompt")
    if linear_verbalizer and num_classes and num_classes < len(labels):
        raise click.UsageError(f"--num-classes {num_classes}: the train split has {len(labels)} distinct labels")
    num_classes = num_classes or len(labels)
    config = PromptConfig(prompt_length, deep, input_prompt, separator, num_classes if linear_verbalizer else 0,
                          finetune)
    classes = {label: i for i, label in enumerate(labels)} if linear_verbalizer else None
    candidates = CandidateSteps([tuple(vocab.index(t) for t in label.split()) for label in labels], vocab.eos,
                                shape.vocab_size)
    train_batches = make_batches(train_sentences, vocab, batch_size, max_tokens, classes, streams=train_streams)
    valid_batches = make_batches(valid_sentences, vocab, batch_size, max_tokens, classes, candidates, valid_streams)
    updates_per_epoch = -(-len(train_batches) // (here.size * update_freq))
    at_chance = 0
    if max_epoch == "auto":
        max_epoch, at_chance = auto_epoch_bound(updates_per_epoch), auto_epochs(updates_per_epoch)
        if here.main:
            log(f"max epoch auto: {at_chance} while at chance ({MIN_EPOCHS}, or enough for {MIN_UPDATES:,} "
                f"updates at {updates_per_epoch} an epoch), {max_epoch} once above it; patience decides")
    lock = exclusive(lock_path(output), output) if here.main else contextlib.nullcontext()
    with lock:  # taken once the inputs are read: a refused input leaves nothing beside -o
        base_hash = backbones.identity(kind, base)
        settings = Settings(data_identity(data), base_hash, dataclasses.asdict(config), lr, lr_schedule, warmup_updates,
                            batch_size, max_tokens, update_freq, here.size, max_epoch, at_chance, max_update, max_time,
                            patience, valid_every, clip_norm, seed, precision)
        if restart and here.main:
            shutil.rmtree(work_dir, ignore_errors=True)
        if if_settings_differ == "restart" and here.main:
            _discard_if_other(state_path, settings)
        if here.size > 1:
            distributed.join(device, here)
        torch.manual_seed(seed)
        model = PromptLM(backbones.load(kind, base, base_dict, device), config).to(device)
        if here.main:
            log(f"trainable parameters: {model.trainable_count():,}")
            log(distributed.describe_batch(batch_size, "sentences at most", here, update_freq))
        try:
            best, record = train(model, train_batches, valid_batches, settings, state_path, device, here,
                                 chance_level([label_text(seq, vocab) for seq in valid_sentences]),
                                 cuda_graphs=cuda_graphs)
        finally:
            distributed.leave()
        if not here.main:  # rank 0 writes the prompt checkpoint
            return
        log(record.message())
        stop_state = dataclasses.asdict(record)
        checkpoint = {"prompt": best["prompt"], "config": dataclasses.asdict(config), "labels": labels,
                      "training": dict(lr=lr, lr_schedule=lr_schedule, batch_size=batch_size, processes=here.size,
                                       update_freq=update_freq, seed=seed),
                      "base": {"kind": kind, "path": os.path.abspath(base), "sha256": base_hash,
                               "dict": os.path.abspath(base_dict) if base_dict else None},
                      "verbalizer": {"path": os.path.abspath(verbalizer), "sha256": json_identity(verbalizer)}
                      if verbalizer else None,
                      "best": best["accuracy"], "stop": stop_state}
        trained = sum(t.numel() for t in best["prompt"].values())
        summary = {"best_valid_accuracy": record.best_valid_accuracy, "trainable": trained, "lr": lr,
                   "ulm_shape": [shape.layers, shape.embed_dim], "backbone": kind, "config": dataclasses.asdict(config),
                   "stop": stop_state}
        try:
            with atomic_output(summary_path(output)) as f:  # written first: the checkpoint is the file make waits for
                json.dump(summary, f, indent=1)
                f.write("\n")
            save_checkpoint(checkpoint, output)
        except OSError as error:
            raise BadInput(f"cannot write: {error.strerror} (the resume state in {work_dir} is kept)", output) from None
        shutil.rmtree(work_dir, ignore_errors=True)
    log(f"wrote {output} ({trained:,} trained values; best valid accuracy {shown(checkpoint['best'])})")


def _discard_if_other(state_path: str, settings) -> None:
    """Remove a resume state saved under other settings (Make's reruns: a changed setting is a new stage)."""
    from .prompting.loop import load_state

    try:
        load_state(state_path, settings)
    except BadInput as error:
        log(f"starting afresh: {error.format_message()}")
        os.unlink(state_path)

