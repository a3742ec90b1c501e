"""Training on several processes: torchrun or SLURM starts them; sp-train's loop (`join`) or fairseq's
distributed training (sp-pretrain) joins them.

    torchrun --nproc_per_node N --no-python sp-pretrain DATA --save-dir ULM ...
    torchrun --nproc_per_node N --no-python sp-train DATA --base ULM/checkpoint_best.pt -o prompt.pt ...
    srun --ntasks N --gpus-per-task 1 sp-pretrain DATA --save-dir ULM ...  # one SLURM step, on one node or several

torchrun gives every process RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT. A task of a
SLURM step of several tasks has none of them: `world()` derives them from the step (SLURM_PROCID,
SLURM_LOCALID, SLURM_STEP_NUM_TASKS, the step's first node and a port of the job and step) and
exports them, so the process is placed as torchrun would place it. The process group is initialised
from them (`env://`), with NCCL between GPUs (one GPU a process: `cuda:LOCAL_RANK`, or the one GPU
that SLURM's `--gpus-per-task 1` leaves the process) and gloo between CPU processes. Each process
reads its own share of every epoch's batches, so a batch option (`--max-tokens`, `--batch-size`) is
per process and one update sees processes x update-freq of them: the effective batch. The same
batches make the same updates with N processes and update-freq U as with 1 process and update-freq
N x U.
Only the process of rank 0 writes outputs.
"""
from __future__ import annotations

import dataclasses
import gc
import os
import re

import torch


@dataclasses.dataclass(frozen=True)
class World:
    rank: int = 0  # over all nodes; 0 writes the outputs
    local_rank: int = 0  # on this node; picks the GPU
    size: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def world() -> World:
    """This process's place among torchrun's processes, or among the tasks of a SLURM step (whose
    torchrun variables it then exports, see slurm_environment); a lone process is rank 0 of 1."""
    if "RANK" not in os.environ:
        derived = slurm_environment(os.environ)
        os.environ.update(derived)
        if "OMP_NUM_THREADS" in derived:  # torchrun's default: no process takes every core
            torch.set_num_threads(int(derived["OMP_NUM_THREADS"]))
    return World(int(os.environ.get("RANK", 0)), int(os.environ.get("LOCAL_RANK", 0)),
                 int(os.environ.get("WORLD_SIZE", 1)))


def slurm_environment(env) -> dict[str, str]:
    """torchrun's variables for a task of a SLURM step of several tasks (`srun --ntasks N`); none otherwise.

    The step's own variables only: a batch script has SLURM_PROCID and SLURM_NTASKS of its job too,
    but it is one process, not one of a step's tasks. The rendezvous is on the step's first node, at a
    port that every task computes alike from the job and step ids (10000-29999, below Linux's
    ephemeral ports); MASTER_ADDR, MASTER_PORT and OMP_NUM_THREADS already set are kept.
    """
    tasks = int(env.get("SLURM_STEP_NUM_TASKS", 1))
    if tasks <= 1 or "SLURM_PROCID" not in env:
        return {}
    nodes = env.get("SLURM_STEP_NODELIST") or env.get("SLURM_JOB_NODELIST") or "localhost"
    job, step = int(env.get("SLURM_JOB_ID", 0)), int(env.get("SLURM_STEP_ID", 0))
    derived = {"RANK": env["SLURM_PROCID"], "LOCAL_RANK": env.get("SLURM_LOCALID", "0"), "WORLD_SIZE": str(tasks),
               "MASTER_ADDR": first_host(nodes), "MASTER_PORT": str(10000 + (job * 100 + step) % 20000),
               "OMP_NUM_THREADS": env.get("SLURM_CPUS_PER_TASK", "1")}
    return {name: value for name, value in derived.items() if name not in env}


def first_host(nodelist: str) -> str:
    """The first host of a SLURM host list: `gpu[07-09,12],cpu1` -> `gpu07` (what `scontrol show hostnames`
    prints first, without scontrol)."""
    first = re.match(r"([^,[]|\[[^]]*\])+", nodelist).group(0)
    return re.sub(r"\[([^],-]*)[^]]*\]", r"\1", first)


def process_device(device: torch.device, here: World) -> torch.device:
    """Among several processes, `cuda` means this process's GPU: `cuda:LOCAL_RANK`, or the only GPU the
    process sees (SLURM's `--gpus-per-task 1` shows each task its own GPU alone, as cuda:0)."""
    if here.size > 1 and device.type == "cuda" and device.index is None:
        device = torch.device("cuda", gpu_index(here.local_rank, torch.cuda.device_count()))
        torch.cuda.set_device(device)
    return device


def gpu_index(local_rank: int, visible: int) -> int:
    """The GPU of the process of this local rank, when it sees `visible` GPUs."""
    return 0 if visible == 1 else local_rank


def fairseq_argv(device: torch.device, here: World, update_freq: int = 1) -> list[str]:
    """fairseq-train's options for this process: one process, or one of torchrun's.

    The rank and the init method are given, not inferred: fairseq's own inference for torchrun
    picks the GPU as rank modulo the GPU count, which fails on a machine without one.
    """
    argv = ["--update-freq", str(update_freq), "--distributed-world-size", str(here.size)]
    if device.type == "cuda":
        argv += ["--device-id", str(device.index or 0)]
    if here.size > 1:
        on_gpu = device.type == "cuda"
        argv += ["--distributed-rank", str(here.rank), "--distributed-init-method", "env://",
                 "--distributed-no-spawn", "--distributed-backend", "nccl" if on_gpu else "gloo",
                 # torch's DistributedDataParallel on GPUs; fairseq's own all-reduce of the gradients on CPUs
                 "--ddp-backend", "pytorch_ddp" if on_gpu else "legacy_ddp",
                 # each process reads a resumed checkpoint itself (through the weights-only allowlist), rather
                 # than rank 0 sending it to the others as a pickle of fairseq's own classes
                 "--load-checkpoint-on-all-dp-ranks"]
    return argv


def join(device: torch.device, here: World) -> None:
    """Join the other processes, torchrun's or the SLURM step's (`env://`): NCCL between GPUs, gloo between CPU
    processes."""
    ready_to_join()
    torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo", init_method="env://",
                                         rank=here.rank, world_size=here.size)


def ready_to_join() -> None:
    """Import torch._dynamo before any process group exists. Imported after (an optimizer's construction
    imports it), it keeps references to the default group that `destroy_process_group` cannot drop, and
    the group lives on into the interpreter's teardown (see `leave`)."""
    import torch._dynamo  # noqa: F401


def leave() -> None:
    """Close the process groups and free them here, while the interpreter is whole. A gloo group still
    alive at the interpreter's teardown can abort the process (SIGABRT, "terminate called without an
    active exception") after its work is done, and Make then deletes what the process wrote; a group
    held only by a reference cycle would live until then, so the cycles are collected now."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    gc.collect()


def describe_batch(per_process: int, unit: str, here: World, update_freq: int) -> str:
    """The log line that makes the per-process and the effective batch explicit."""
    return (f"batch: {per_process} {unit} per process x {here.size} process{'es' * (here.size > 1)} x update-freq "
            f"{update_freq} = {per_process * here.size * update_freq} {unit} per update (the effective batch)")
