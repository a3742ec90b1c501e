"""`--precision`: bf16/fp16 autocast on a GPU, for inference and for fairseq's training loop; and
fairseq's training loop on the device asked for.

Half precision is autocast, never a cast of the model: the weights, the optimizer state and the
checkpoints stay fp32, and a checkpoint trained in bf16 loads and runs on the CPU in fp32.
`pick_device` (io.py) already refuses half precision off the GPU.
"""
from __future__ import annotations

import contextlib

import torch

HALF = {"bf16": torch.bfloat16, "fp16": torch.float16}


def autocast(device: torch.device, precision: str):
    """Inference under autocast to `precision` on `device`; fp32 is a no-op."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=HALF[precision])


def amp_argv(precision: str) -> list[str]:
    """fairseq's options for `precision`: `--amp` (autocast and a loss scaler) for bf16 and fp16.

    fairseq's own `--bf16`/`--fp16` would cast the model itself and save half-precision weights.
    """
    return [] if precision == "fp32" else ["--amp"]


@contextlib.contextmanager
def fairseq_autocast(precision: str):
    """fairseq training (with `amp_argv` on its command line) under autocast to `precision`.

    fairseq's `--amp` runs each training forward in `torch.cuda.amp.autocast()`, which is fp16 only;
    inside this block that call autocasts to bf16 when bf16 is asked for.
    """
    if precision != "bf16":
        yield
        return
    from unittest import mock

    def bf16_autocast(enabled=True, **_):
        return torch.autocast("cuda", dtype=torch.bfloat16, enabled=enabled)

    with mock.patch.object(torch.cuda.amp, "autocast", bf16_autocast):
        yield


@contextlib.contextmanager
def fairseq_on_cpu_only(device: torch.device):
    """fairseq training on the CPU of a machine that has a GPU: inside this block the run sees no GPU.

    fairseq's `utils.clip_grad_norm_` moves the gradient norm to the current GPU whenever
    `torch.cuda.is_available()`, whatever device the model is on, and clipping CPU gradients by it
    then fails ("scalar tensor is expected to be on cpu but is on cuda:0").
    """
    if device.type != "cpu" or not torch.cuda.is_available():
        yield
        return
    from unittest import mock

    with mock.patch.object(torch.cuda, "is_available", lambda: False):
        yield


@contextlib.contextmanager
def fairseq_training(device: torch.device, precision: str):
    """fairseq's training loop (with `amp_argv(precision)` and `--cpu` for the CPU on its command line)
    on `device` in `precision`."""
    with fairseq_on_cpu_only(device), fairseq_autocast(precision):
        yield
