"""Prompt tuning's training loop: one function, `train`, read top to bottom (nanoGPT's shape).

    batches -> forward -> loss on the label tokens -> backward to the prompts -> Adam step
    every epoch (and every `valid_every` updates): valid accuracy among the labels, the best prompts
    kept, the resume state saved; stop by patience above chance, or at a cap

Batches are made once, before the first epoch (`prompting/batches.py`: by length, collated) and moved to
the device; an epoch only reorders them (a permutation seeded by seed and epoch). So a training step
assembles nothing, and the position in the data is two integers.

The loss is summed over the label tokens (and `</s>`), or over the label classes with the linear
verbalizer, and divided by their count in the whole update: the batches of all processes
(`torchrun`, DistributedDataParallel) and of `update_freq` steps. So N processes with update-freq U
make the same updates as one process with update-freq N x U.

The resume state (prompts, optimizer, schedule, the best prompts so far, the stopping state, the
position in the data, RNG states, the settings and the time spent) is written atomically at every
validation and when SIGTERM or SIGINT arrives (SLURM preemption, Ctrl-C); a rerun with the same
settings continues from it and ends with the prompts an uninterrupted run ends with.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import signal
import sys
import time

import torch
import torch.nn.functional as F

from ..checkpoints import save_checkpoint
from ..io import BadInput, log
from .graphs import GraphedSteps, pad_for_graphs
from .batches import Batch
from .stopping import MAX_EPOCH, MAX_UPDATE, PATIENCE, TIME_CAP, EarlyStop, StopRecord, shown

STATE_FORMAT = "speechprompt-train-state/1"


@dataclasses.dataclass
class Settings:
    """Everything a run's result depends on: a resume state is used only by a run with the same settings."""
    data: str  # sha256 of the data-bin's train and valid splits
    base: str  # sha256 of the backbone's checkpoint
    config: dict  # PromptConfig
    lr: float
    lr_schedule: str = "fixed"
    warmup_updates: int = 0
    batch_size: int = 32
    max_tokens: int = 4096
    update_freq: int = 1
    processes: int = 1
    max_epoch: int = 30
    max_epoch_at_chance: int = 0  # > 0: a run whose valid accuracy never left chance stops after this many epochs
    max_update: int = 0
    max_time: float = 0.0
    patience: int = 10
    valid_every: int = 0
    clip_norm: float = 0.0
    seed: int = 1
    precision: str = "fp32"


def batch_loss(model, batch: Batch) -> torch.Tensor:
    """The summed cross-entropy of the batch's targets (an uncounted class adds nothing). Through the model's
    own call, so that DistributedDataParallel sees the forward pass."""
    return F.cross_entropy(_logits(model, batch).float(), batch.gold, ignore_index=-100, reduction="sum")


def _logits(model, batch: Batch) -> torch.Tensor:
    """The model's logits at the batch's targets, with its prosody streams where it has them."""
    if batch.streams is None:
        return model(batch.tokens, batch.where)
    return model(batch.tokens, batch.where, batch.streams)


@torch.no_grad()
def correct_sentences(model, batch: Batch) -> torch.Tensor:
    """How many sentences of the batch have every target right, each chosen among the allowed tokens (as
    decoding chooses among the candidates), or the class right: a tensor, so no host sync."""
    logits = _logits(model, batch).float()
    if batch.allowed is not None:
        logits = logits.masked_fill(~batch.allowed, float("-inf"))
    wrong = torch.zeros(batch.sentences, device=logits.device)
    wrong.index_add_(0, batch.row, (logits.argmax(-1).ne(batch.gold) | batch.gold.eq(-100)).float())
    return wrong.eq(0).sum()


def schedule(settings: Settings, total_updates: int):
    """The learning-rate factor of an update: fixed, or linear warm-up then decay to 0 at the last update
    (fairseq's polynomial_decay of power 1)."""
    if settings.lr_schedule == "fixed":
        return lambda step: 1.0
    warmup, total = settings.warmup_updates, max(total_updates, 1)

    def linear(step):
        if warmup and step < warmup:
            return (step + 1) / warmup
        return max(0.0, 1 - (step - warmup) / max(total - warmup, 1))
    return linear


class Interrupt:
    """SIGTERM and SIGINT while the block runs: noted, so the loop saves its state at the end of the
    update and exits (status 128 + signal)."""

    def __enter__(self):
        self.signal = 0
        self.previous = {s: signal.signal(s, self._note) for s in (signal.SIGTERM, signal.SIGINT)}
        return self

    def _note(self, signum, frame):
        self.signal = signum

    def __exit__(self, *exc):
        for s, handler in self.previous.items():
            signal.signal(s, handler)


def train(model, train_batches: list[Batch], valid_batches: list[Batch], settings: Settings, state_path: str,
          device: torch.device, world=None, chance: float = 0.0, progress: bool = True,
          cuda_graphs: bool = False) -> tuple[dict, StopRecord]:
    """Tune `model`'s prompts; returns the best prompts (by valid accuracy) and why the run stopped.

    `world` (distributed.World) places this process among torchrun's; rank 0 saves the state. With
    `cuda_graphs`, on one CUDA process, forward and backward replay CUDA graphs (`prompting/graphs.py`)."""
    from torch.nn.parallel import DistributedDataParallel
    from tqdm import tqdm

    rank, size = (world.rank, world.size) if world else (0, 1)
    torch.manual_seed(settings.seed)
    graphed = cuda_graphs and device.type == "cuda" and size == 1
    if graphed:
        train_batches = pad_for_graphs(train_batches, model.base.vocab.pad)
    train_batches = [b.to(device) for b in train_batches]
    valid_batches = [b.to(device) for b in valid_batches]
    per_update = size * settings.update_freq
    updates_per_epoch = math.ceil(len(train_batches) / per_update)
    total_updates = settings.max_update or updates_per_epoch * settings.max_epoch
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=settings.lr, betas=(0.9, 0.999), eps=1e-8,
                                 fused=device.type == "cuda" or None)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule(settings, total_updates))
    half = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(settings.precision)
    autocast = lambda: torch.autocast(device.type, dtype=half, enabled=half is not None)  # noqa: E731
    scaler = torch.amp.GradScaler(device.type) if settings.precision == "fp16" else None
    stop = EarlyStop(settings.patience, chance)
    record = StopRecord(chance=chance)
    position = {"epoch": 1, "batch": 0, "updates": 0, "seconds": 0.0}
    best = {"prompt": model.prompt_state(), "accuracy": None}

    state = load_state(state_path, settings)
    if state is not None:
        model.load_state_dict(state["prompt"], strict=False)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        stop = EarlyStop(**state["stop"])
        position, best = state["position"], state["best"]
        torch.set_rng_state(state["rng"]["torch"])
        if device.type == "cuda" and state["rng"].get("cuda") is not None:
            torch.cuda.set_rng_state(state["rng"]["cuda"], device)
        if rank == 0:
            log(f"resumed from {state_path}: epoch {position['epoch']}, update {position['updates']}, "
                f"{stop.validations} validations, best valid accuracy {shown(stop.best)}")

    def save_state():
        if rank != 0:
            return
        rng = {"torch": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None}
        core = model.module if hasattr(model, "module") else model
        snapshot = {"format": STATE_FORMAT, "settings": dataclasses.asdict(settings), "prompt": core.prompt_state(),
                    "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                    "scaler": scaler.state_dict() if scaler is not None else None,
                    "stop": dataclasses.asdict(stop), "position": dict(position), "best": best, "rng": rng}
        try:
            save_checkpoint(snapshot, state_path)
        except OSError as error:
            raise BadInput(f"cannot save the resume state ({error.strerror}); the previous one is kept",
                           state_path) from None

    def validate() -> float:
        model.eval()
        correct = torch.zeros((), device=device, dtype=torch.long)
        core = model.module if hasattr(model, "module") else model
        with autocast():
            for batch in valid_batches[rank::size]:
                correct += correct_sentences(core, batch)
        if size > 1:
            torch.distributed.all_reduce(correct)
        model.train()
        return int(correct) / sum(b.sentences for b in valid_batches)

    if size > 1:
        model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    model.train()
    step = GraphedSteps(model, batch_loss, autocast, scaler) if graphed else None
    def one_update(chosen: list[int]) -> tuple[torch.Tensor, int]:
        """One optimizer step over the batches `chosen` (this process takes its share); returns their summed
        loss (this process's, on the device) and their target count (all processes')."""
        count = sum(train_batches[i].count for i in chosen)  # every process knows the update's targets
        steps = [(train_batches[i], 1.0) for i in chosen[rank::size]]
        if size > 1:  # every process takes part in every all-reduce, with nothing if its share ran out
            steps += [(train_batches[chosen[0]], 0.0)] * (settings.update_freq - len(steps))
        summed = torch.zeros((), device=device)
        for k, (batch, weight) in enumerate(steps):
            scale = weight * size / max(count, 1)  # the update's gradient: its summed loss over its targets
            if step is not None:
                summed += step(batch, scale) * weight
                continue
            last = k == len(steps) - 1
            with model.no_sync() if size > 1 and not last else contextlib.nullcontext(), autocast():
                loss = batch_loss(model, batch)
                summed += loss.detach() * weight
                loss = loss * scale
            (scaler.scale(loss) if scaler is not None else loss).backward()
        if scaler is not None:
            scaler.unscale_(optimizer)
        if settings.clip_norm:
            torch.nn.utils.clip_grad_norm_(params, settings.clip_norm)
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        optimizer.zero_grad(set_to_none=step is None)  # graphs add into the same gradient tensors
        scheduler.step()
        return summed, count

    started = time.monotonic() - position["seconds"]
    reason = None
    with Interrupt() as interrupt:
        while reason is None:
            epoch = position["epoch"]
            order = torch.randperm(len(train_batches), generator=torch.Generator().manual_seed(settings.seed + epoch))
            updates = [order[u:u + per_update].tolist() for u in range(0, len(order), per_update)]
            bar = tqdm(total=len(updates), initial=position["batch"], desc=f"epoch {epoch}", unit="update",
                       file=sys.stderr, disable=not progress or rank != 0, leave=False)
            epoch_loss, epoch_count = torch.zeros((), device=device), 0
            for u in range(position["batch"], len(updates)):
                lr = scheduler.get_last_lr()[0]
                summed, count = one_update(updates[u])
                epoch_loss += summed
                epoch_count += count
                position["updates"] += 1
                position["batch"] = u + 1
                position["seconds"] = time.monotonic() - started
                bar.update(1)
                if position["updates"] % 50 == 0 and rank == 0:  # a host sync, so not every update
                    bar.set_postfix(loss=f"{float(summed) / max(count, 1) / math.log(2):.3f}")
                at_end = u + 1 == len(updates)
                validating = at_end or (settings.valid_every and position["updates"] % settings.valid_every == 0)
                if validating:
                    if at_end:
                        position["epoch"], position["batch"] = epoch + 1, 0
                    accuracy = validate()
                    if stop.update(accuracy):
                        reason = PATIENCE
                    if stop.best_validation == stop.validations:
                        best = {"prompt": (model.module if size > 1 else model).prompt_state(), "accuracy": accuracy,
                                "epoch": epoch, "updates": position["updates"]}
                    if rank == 0:  # the train loss of this process's batches, in bits a target, as fairseq logs it
                        loss_bits = float(epoch_loss) / max(epoch_count / size, 1) / math.log(2)
                        log(f"epoch {epoch} update {position['updates']}: train loss {loss_bits:.4f}, lr {lr:.4g}; "
                            f"valid accuracy {accuracy:.4f} (best {shown(stop.best)} at validation "
                            f"{stop.best_validation} of {stop.validations})")
                reason = reason or _cap(settings, position, epoch, at_end, stop)
                if reason is None and _interrupted(interrupt, size, device):
                    save_state()
                    if rank == 0:
                        log(f"interrupted at update {position['updates']}: state saved to {state_path}; rerun the "
                            f"same command to resume")
                    raise SystemExit(128 + (interrupt.signal or signal.SIGTERM))
                if reason is not None or validating:
                    save_state()
                if reason is not None:
                    break
            bar.close()
    record.reason = reason
    record.epoch, record.updates, record.seconds = position["epoch"] - (position["batch"] == 0), position["updates"], \
        position["seconds"]
    record.validations, record.best_validation = stop.validations, stop.best_validation
    record.best_valid_accuracy, record.left_chance = stop.best, stop.left_chance
    return best, record


def _cap(settings: Settings, position: dict, epoch: int, at_end: bool, stop: EarlyStop) -> str | None:
    """The cap that ends the run here, if one does."""
    if settings.max_update and position["updates"] >= settings.max_update:
        return MAX_UPDATE
    if settings.max_time and position["seconds"] >= settings.max_time:
        return TIME_CAP
    if at_end and epoch >= settings.max_epoch:
        return MAX_EPOCH
    if at_end and settings.max_epoch_at_chance and epoch >= settings.max_epoch_at_chance and not stop.left_chance:
        return MAX_EPOCH
    return None


def _interrupted(interrupt: Interrupt, size: int, device) -> bool:
    """Whether a signal arrived, agreed by every process (each one stops at the same update)."""
    if size == 1:
        return bool(interrupt.signal)
    flag = torch.tensor([interrupt.signal], device=device)
    torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
    interrupt.signal = int(flag)
    return bool(interrupt.signal)


def load_state(path: str, settings: Settings) -> dict | None:
    """The resume state at `path` if there is one; refused in one line if it was saved under other settings."""
    from ..checkpoints import load_checkpoint

    if not os.path.exists(path):
        return None
    state = load_checkpoint(path)
    if state.get("format") != STATE_FORMAT:
        raise BadInput(f"not a resume state of sp-train (format {state.get('format')!r}); remove it, or rerun "
                       f"with --restart", path)
    saved, now = state["settings"], dataclasses.asdict(settings)
    differ = [key for key in now if saved.get(key) != now[key]]
    if differ:
        what = ", ".join(f"{key} {_show(saved.get(key))} there, {_show(now[key])} here" for key in differ[:4])
        raise BadInput(f"a run with other settings left this resume state ({what}); rerun with its settings to "
                       f"resume it, or with --restart to start afresh", path)
    return state


def _show(value) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {v}" for k, v in value.items()) + "}"
    return str(value)
