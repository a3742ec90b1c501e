"""A fairseq-train run that survives being killed: sp-pretrain's scratch directory and epoch loop.

fairseq-train trains in the scratch directory SAVE_DIR/.train, which holds

- `settings.json`: the run's settings (fairseq's command line without the paths, logging and
  device options, and a sha256 of each data-bin file), written when the run starts;
- fairseq's own checkpoints: `checkpoint_last.pt` (model, Adam state, learning-rate schedule,
  update count, and the data iterator's place in its epoch), `checkpoint_best.pt`, and with
  `--save-interval-updates N` the newest mid-epoch `checkpoint_E_U.pt`;
- `progress.json`: the valid loss at the end of each epoch, for the patience rule.

A rerun with the same settings resumes from the newest complete checkpoint (a copy that a kill cut
short is passed over), exactly: the checkpoint holds the weights, Adam's state, the schedule's update
count and the iterator's place in its epoch; every update reseeds torch with seed + update number, so
dropout draws the same masks. Two things of fairseq's would still differ after a restart, and both are
met by running fairseq one epoch a call, resumed from checkpoint_last.pt each time, whether or not
the process was interrupted:

- fairseq (ve-fairseq 0.12.3) makes an epoch's batches from seed + the epoch its data iterator was
  created in, and reuses that iterator for every later epoch of the process: a run restarted at epoch
  e would batch epoch e and after differently from one that went through. Created each epoch, the
  iterator batches epoch e by e alone.
- fairseq's patience count is a function attribute of fairseq_cli.train, lost with the process. Its
  patience is off here; the loop stops by the valid losses at the epochs' ends, kept in
  `progress.json` (the same rule as fairseq's when it validates once an epoch).

A rerun with other settings is refused unless told to restart. The scratch directory goes when
the run has succeeded; a killed run's is resumed or, with --restart, removed.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import shutil
import warnings

import torch

from . import distributed
from .checkpoints import fairseq_globals, load_checkpoint
from .io import file_hash
from .io import BadInput, log

SCRATCH = ".train"
DATA_FILES = ("dict.txt", "train.bin", "train.idx", "valid.bin", "valid.idx")
# Options that say where and how a run is logged or placed, not what it computes: they may differ on resume.
UNCOMPARED = {"--save-dir", "--log-interval", "--log-format", "--tensorboard-logdir", "--cpu", "--device-id",
              "--distributed-rank", "--distributed-init-method", "--distributed-backend", "--ddp-backend",
              "--distributed-no-spawn", "--load-checkpoint-on-all-dp-ranks", "--num-workers"}


def config(argv: list[str]):
    """fairseq-train's config for `argv` (its command line, as `fairseq-train` would parse it).

    fairseq's command line ties `--bf16` to TPUs (it sets `--tpu`, from the days when only TPUs had
    bf16); its trainer trains in bf16 on any device (the model cast, fp32 master weights in its
    FP16Optimizer), so that tie is undone on the parsed options."""
    from fairseq import options
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    args = options.parse_args_and_arch(options.get_training_parser(), argv)
    if args.bf16 and "--tpu" not in argv:
        args.tpu = False
    with warnings.catch_warnings():  # hydra's deprecation notices about fairseq's config store
        warnings.simplefilter("ignore", UserWarning)
        return convert_namespace_to_omegaconf(args)


def settings(argv: list[str], data: str, extra: dict) -> dict:
    """What must be the same for a rerun to resume: the options that change what is computed, the
    data-bin's content (not its path), and `extra` (the loop's own stopping rules)."""
    options, key = {}, None
    for word in argv[1:]:  # argv[0] is the data-bin
        if word.startswith("--"):
            key = word
            options[key] = []
        elif key is not None:
            options[key].append(word)
    compared = {k: " ".join(v) for k, v in options.items() if k not in UNCOMPARED}
    data_hashes = {name: file_hash(os.path.join(data, name)) for name in DATA_FILES}
    return {"fairseq": compared, "data": data_hashes, **extra}


def differences(old: dict, new: dict) -> list[str]:
    """The settings that differ, as `--option old -> new` (the data as `the data-bin's train.bin`)."""
    found = []
    for key in sorted(set(old.get("fairseq", {})) | set(new["fairseq"])):
        before, after = old.get("fairseq", {}).get(key), new["fairseq"].get(key)
        if before != after:
            found.append(f"{key} {before if before is not None else '(not given)'} -> "
                         f"{after if after is not None else '(not given)'}")
    for name in DATA_FILES:
        if old.get("data", {}).get(name) != new["data"][name]:
            found.append(f"the data-bin's {name}")
    for key in sorted((set(old) | set(new)) - {"fairseq", "data"}):
        if old.get(key) != new.get(key):
            found.append(f"{key} {old.get(key)} -> {new.get(key)}")
    return found


@dataclasses.dataclass
class Position:
    """Where a checkpoint is in the run."""

    path: str
    epoch: int  # the epoch fairseq runs next (still running it, if `within` > 0)
    within: int  # batches of that epoch already done
    updates: int
    valid_loss: float | None  # of the validation the checkpoint was saved at

    def describe(self) -> str:
        done = f"epoch {self.epoch - 1} done" if not self.within else f"{self.within} batches into epoch {self.epoch}"
        return f"{done}, {self.updates} updates"


def position(path: str) -> Position | None:
    """A checkpoint's place in the run, or None if it cannot be read (a copy cut short by a kill)."""
    try:
        with fairseq_globals():
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        extra, history = state["extra_state"], state["optimizer_history"]
        iterator = extra["train_iterator"]
        return Position(path, int(iterator["epoch"]), int(iterator.get("iterations_in_epoch", 0)),
                        int(history[-1]["num_updates"]), extra.get("val_loss"))
    except Exception:  # any failure to read it: not a checkpoint to resume from
        return None


@dataclasses.dataclass
class Rules:
    """When the run stops: --max-epoch, --max-update (0: none), --patience (epochs; -1: never)."""

    max_epoch: int
    max_update: int
    patience: int

    def next_epoch(self, at: Position | None, losses: dict[int, float]) -> int | None:
        """The epoch to run (or finish) next, or None when the run is over."""
        if at is None:
            return 1
        if self.max_update > 0 and at.updates >= self.max_update:
            return None
        if not at.within and self.max_epoch > 0 and at.epoch > self.max_epoch:
            return None
        if not at.within and self.patience > 0 and losses:
            epochs = sorted(losses)
            best = min(epochs, key=lambda e: (losses[e], e))  # the first of equal losses: later ties are no gain
            if epochs[-1] - best >= self.patience:
                log(f"early stop: no better valid loss in the {self.patience} epochs after epoch {best}")
                return None
        return at.epoch


class Scratch:
    """The scratch directory of one SAVE_DIR, and the run's state in it (see the module's docstring)."""

    def __init__(self, save_dir: str):
        self.save_dir = save_dir
        self.path = os.path.join(save_dir, SCRATCH)

    def file(self, name: str) -> str:
        return os.path.join(self.path, name)

    def newest(self) -> Position | None:
        """The newest complete checkpoint, as checkpoint_last.pt: the file fairseq resumes from."""
        names = sorted(n for n in os.listdir(self.path) if re.fullmatch(r"checkpoint(_last|_best|_\d+_\d+)\.pt", n))
        found = [p for p in (position(self.file(n)) for n in names) if p is not None]
        if not found:
            return None
        last = self.file("checkpoint_last.pt")
        newest = max(found, key=lambda p: (p.updates, p.path == last))
        if newest.path != last:  # checkpoint_last.pt is missing or older: a kill cut its copy short
            shutil.copyfile(newest.path, last + ".tmp")
            os.replace(last + ".tmp", last)
            newest = dataclasses.replace(newest, path=last)
        return newest

    def prepare(self, wanted: dict, restart: bool, if_settings_differ: str = "refuse") -> Position | None:
        """Make the scratch directory ready: resumed (its position), or new (None). `restart`: new whatever
        is there; `if_settings_differ`: `refuse` a stopped run's state saved under other settings in one
        line, or `restart`."""
        for name in os.listdir(self.save_dir):  # older sp-pretrains' per-run directories, dead with their run
            if name.startswith(SCRATCH + ".") and os.path.isdir(os.path.join(self.save_dir, name)):
                shutil.rmtree(os.path.join(self.save_dir, name), ignore_errors=True)
        at, why = None, "--restart" if restart else "no complete checkpoint in it"
        if os.path.isdir(self.path) and not restart:
            at = self.newest()
            if at is not None:
                try:
                    with open(self.file("settings.json"), encoding="utf-8") as f:
                        recorded = json.load(f)
                except (OSError, ValueError):
                    recorded = {}
                changed = differences(recorded, wanted)
                if changed and if_settings_differ == "refuse":
                    raise BadInput(f"a stopped run with other settings ({'; '.join(changed[:3])}) left its state "
                                   f"in {self.path} ({at.describe()}): rerun with its settings to resume it, "
                                   "or give --restart (or --if-settings-differ restart) to discard it", self.save_dir)
                if changed:
                    at, why = None, f"its settings differ: {'; '.join(changed[:3])}; --if-settings-differ restart"
        if at is None:
            if os.path.isdir(self.path):
                log(f"removing {self.path} ({why})")
            self.remove()
            os.makedirs(self.path)
            write_json(self.file("settings.json"), wanted)
        else:
            for name in os.listdir(self.path):  # fairseq's half-written saves
                if name.endswith(".tmp"):
                    os.unlink(self.file(name))
            log(f"resuming the stopped run in {self.path} ({at.describe()})")
        return at

    def losses(self, at: Position | None) -> dict[int, float]:
        """The valid loss at each finished epoch's end; the one of `at`'s checkpoint added if missing
        (a kill after fairseq saved it, before it was noted)."""
        try:
            with open(self.file("progress.json"), encoding="utf-8") as f:
                losses = {int(k): v for k, v in json.load(f)["valid_loss"].items()}
        except (OSError, ValueError, KeyError):
            losses = {}
        if at is not None and not at.within and at.valid_loss is not None and at.epoch - 1 not in losses:
            losses[at.epoch - 1] = float(at.valid_loss)
            write_json(self.file("progress.json"), {"valid_loss": losses})
        return losses

    def resumable(self) -> bool:
        return os.path.isdir(self.path) and self.newest() is not None

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def write_json(path: str, value) -> None:
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        json.dump(value, f, indent=1)
        f.write("\n")
    os.replace(path + ".tmp", path)


def run_epochs(cfg, scratch: Scratch, rules: Rules, writer: bool) -> None:
    """fairseq-train, one epoch a call, until the rules stop it. Under torchrun every process runs this;
    rank 0 reads the checkpoints and tells the others which epoch comes next."""
    from fairseq_cli import train as fairseq_train

    while True:
        upcoming = None
        if writer:
            at = scratch.newest()
            upcoming = rules.next_epoch(at, scratch.losses(at))
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            box = [upcoming]
            torch.distributed.broadcast_object_list(box, src=0)
            upcoming = box[0]
        if upcoming is None:
            return
        cfg.optimization.max_epoch = upcoming  # fairseq resumes from checkpoint_last.pt and stops at its end
        fairseq_train.main(cfg)


def train(cfg, scratch: Scratch, rules: Rules, main: bool) -> None:
    """fairseq's trainer in this process (one of torchrun's, or alone), logging to stderr."""
    from fairseq import distributed_utils

    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s | %(levelname)s | %(name)s | %(message)s"))
    handler.addFilter(one_line_records)
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)  # fairseq logs to stdout otherwise
    cfg.checkpoint.save_dir = scratch.path
    distributed.ready_to_join()  # fairseq makes the process groups, if any (its optimizer imports the same anyway)
    try:
        with fairseq_globals():
            distributed_utils.call_main(cfg, run_epochs, scratch=scratch, rules=rules, writer=main)
    finally:
        forget_process_groups()


def forget_process_groups() -> None:
    """Clear fairseq's cache of the process group it makes for itself (`get_global_group._global_group`;
    fairseq has no call for it), so that `distributed.leave()` frees every group the run made before the
    interpreter's teardown. No code path of fairseq changes: a later call makes a new group, as the first did."""
    from fairseq import distributed_utils

    if hasattr(distributed_utils.get_global_group, "_global_group"):
        delattr(distributed_utils.get_global_group, "_global_group")


def one_line_records(record: logging.LogRecord) -> bool:
    """A traceback that fairseq logs itself (a checkpoint that failed to save) shrinks to its last line:
    the tool reports the error once, in one line."""
    message = record.getMessage()
    if message.startswith("Traceback"):
        record.msg, record.args = message.strip().splitlines()[-1], ()
    return True


def final_checkpoint(best: str, out: str) -> None:
    """fairseq's best checkpoint as the uLM: without the optimizer state, the weights in fp32."""
    state = load_checkpoint(best, kind="unit LM")
    state.pop("last_optimizer_state", None)
    state["model"] = {name: value.float() if value.is_floating_point() else value
                      for name, value in state["model"].items()}
    torch.save(state, out + ".tmp")
    os.replace(out + ".tmp", out)


def disk_full(path: str, error: BaseException) -> bool:
    """Whether `error` (of a write below `path`) comes from a full disk: ENOSPC, or torch's zip writer
    failing (it says "unexpected pos", not why) where hardly any space is left."""
    import errno

    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    try:
        free = shutil.disk_usage(path).free
    except OSError:
        return False
    return isinstance(error, RuntimeError) and free < max(1 << 20, 0.001 * shutil.disk_usage(path).total)


def size_text(count: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "bytes" else f"{count:.1f} {unit}"
        count /= 1024
    return ""

