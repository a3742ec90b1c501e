"""Training on several processes: torchrun starts them; sp-train's loop (`join`) or fairseq's distributed
training (sp-pretrain) joins them.

    torchrun --nproc_per_node N --no-python sp-pretrain DATA --save-dir ULM ...
    torchrun --nproc_per_node N --no-python sp-train DATA --base ULM/checkpoint_best.pt -o prompt.pt ...

torchrun gives every process RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT; the
process group is initialised from them (`env://`), with NCCL between GPUs (one GPU a process:
`cuda:LOCAL_RANK`) and gloo between CPU processes. Each process reads its own share of every
epoch's batches, so a batch option (`--max-tokens`, `--batch-size`) is per process and one
update sees processes x update-freq of them: the effective batch. The same batches make the same
updates with N processes and update-freq U as with 1 process and update-freq N x U.
Only the process of rank 0 writes outputs.
"""
from __future__ import annotations

import dataclasses
import os

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
    """This process's place among torchrun's processes; a lone process is rank 0 of 1."""
    return World(int(os.environ.get("RANK", 0)), int(os.environ.get("LOCAL_RANK", 0)),
                 int(os.environ.get("WORLD_SIZE", 1)))


def process_device(device: torch.device, here: World) -> torch.device:
    """Under torchrun, `cuda` means this process's GPU, `cuda:LOCAL_RANK`."""
    if here.size > 1 and device.type == "cuda" and device.index is None:
        device = torch.device("cuda", here.local_rank)
        torch.cuda.set_device(device)
    return device


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
    """Join torchrun's other processes (`env://`): NCCL between GPUs, gloo between CPU processes."""
    torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo", init_method="env://",
                                         rank=here.rank, world_size=here.size)


def leave() -> None:
    """Close the process group, so that the process exits cleanly."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def describe_batch(per_process: int, unit: str, here: World, update_freq: int) -> str:
    """The log line that makes the per-process and the effective batch explicit."""
    return (f"batch: {per_process} {unit} per process x {here.size} process{'es' * (here.size > 1)} x update-freq "
            f"{update_freq} = {per_process * here.size * update_freq} {unit} per update (the effective batch)")
