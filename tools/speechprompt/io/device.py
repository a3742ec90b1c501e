"""`--device`, `--threads`, `--precision`: one meaning in every tool that runs a model."""
from __future__ import annotations

import re
from typing import Callable

import click

from .errors import UsageProblem

DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:\d+)?")


def runtime_options(precision: bool = False) -> Callable:
    """`--device`, `--threads` (and `--precision`): one meaning in every tool that runs a model."""
    options = [
        click.option("--device", default="auto", show_default=True, metavar="auto|cpu|cuda|cuda:N",
                     help="auto: the first GPU when torch sees one, else the CPU."),
        click.option("--threads", type=click.IntRange(min=1),
                     help="CPU threads for torch and the BLAS/OpenMP pools [default: theirs]."),
    ]
    if precision:
        options.append(click.option("--precision", default="fp32", show_default=True,
                                    type=click.Choice(["fp32", "bf16", "fp16"]),
                                    help="bf16/fp16 autocast, only on a GPU; the CPU stays fp32."))

    def wrap(function: Callable) -> Callable:
        for option in reversed(options):
            function = option(function)
        return function

    return wrap


def pick_device(name: str = "auto", precision: str = "fp32", threads: int | None = None):
    """The torch device of `--device`; also applies `--threads`. One-line usage errors for what cannot run.

    `--device cpu` hides the GPUs from the process (CUDA_VISIBLE_DEVICES empty, set before CUDA starts),
    so that code which looks for a GPU on its own finds none: fairseq's `clip_grad_norm_` moves the
    gradient norm to the current GPU whenever torch sees one, and clipping CPU gradients by it fails."""
    import os

    import torch

    if not DEVICE_PATTERN.fullmatch(name):
        raise UsageProblem(f"--device {name}: expected auto, cpu, cuda or cuda:N")
    if name == "cpu" and not torch.cuda.is_initialized():
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    if threads:
        from threadpoolctl import threadpool_limits

        torch.set_num_threads(threads)
        threadpool_limits(threads)  # scikit-learn's and numpy's pools too
    if name == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    elif name.startswith("cuda") and not torch.cuda.is_available():
        raise UsageProblem(f"--device {name}: torch sees no CUDA device")
    else:
        device = torch.device(name)
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UsageProblem(f"--device {name}: torch sees {torch.cuda.device_count()} CUDA device(s)")
        if device.index is not None:  # code that says only "cuda" (fairseq's trainer) uses it too
            torch.cuda.set_device(device.index)
    if precision != "fp32" and device.type != "cuda":
        raise UsageProblem(f"--precision {precision} needs a GPU (--device cuda)")
    return device
