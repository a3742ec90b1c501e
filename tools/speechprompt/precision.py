"""`--precision`: bf16/fp16 autocast on a GPU, for inference.

Half precision never leaves half-precision weights behind: a checkpoint trained in bf16 or fp16
loads and runs on the CPU in fp32. sp-pretrain trains in half precision with fairseq's own options
(pretrain.precision_argv). `pick_device` (io/device.py) already refuses half precision off the GPU.
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
