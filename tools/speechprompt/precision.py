"""`--precision`: bf16/fp16 autocast on a GPU, for inference.

Half precision never leaves half-precision weights behind: a checkpoint trained in bf16 or fp16
loads and runs on the CPU in fp32. sp-pretrain trains in half precision with fairseq's own options
(pretrain.precision_argv). `pick_device` (io/device.py) already refuses half precision off the GPU.
"""
from __future__ import annotations

import contextlib

import torch

from .io import UsageProblem

HALF = {"bf16": torch.bfloat16, "fp16": torch.float16}


def autocast(device: torch.device, precision: str):
    """Inference under autocast to `precision` on `device`; fp32 is a no-op."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=HALF[precision])


# To be removed with the old sp-train (train.py drives fairseq's trainer; its rewrite does not): the two
# names it imports, kept without run-time patches. `--device cpu` needs nothing here any more: pick_device
# hides the GPUs from the process before CUDA starts. bf16 needs fairseq's `--bf16`, which the old sp-train
# does not pass, and fairseq's `--amp` autocasts to fp16 only, so bf16 is refused rather than run as fp16.
def amp_argv(precision: str) -> list[str]:
    """fairseq's options for `precision` in the old sp-train: `--amp` (fp16 autocast and a loss scaler)."""
    return [] if precision == "fp32" else ["--amp"]


@contextlib.contextmanager
def fairseq_training(device: torch.device, precision: str):
    """The old sp-train's fairseq loop: fp32 or fp16 (`--amp`); bf16 refused in one line."""
    if precision == "bf16":
        raise UsageProblem("--precision bf16: fairseq's trainer autocasts to fp16 only (--amp); use fp16 or fp32")
    yield
