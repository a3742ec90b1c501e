"""Loading fairseq checkpoints safely.

torch >= 2.6 unpickles checkpoints with `weights_only=True`. fairseq
checkpoints also hold `argparse.Namespace` (old `args`), omegaconf configs,
fairseq `Dictionary` objects and numpy scalars (scores in `extra_state`).
Those classes, and only those, are allowed while a checkpoint loads; the
weights-only check itself stays on, because a checkpoint is a pickle.
"""
from __future__ import annotations

import argparse
import collections
import contextlib
import hashlib
import os
import shutil
import tempfile
import typing

import numpy as np
import torch


def _allowlist() -> list:
    import omegaconf
    from omegaconf import base, nodes
    from fairseq.data.dictionary import Dictionary

    allowed = [argparse.Namespace, collections.defaultdict, collections.OrderedDict, typing.Any,
               omegaconf.DictConfig, omegaconf.ListConfig, base.ContainerMetadata, base.Metadata,
               nodes.AnyNode, nodes.StringNode, nodes.IntegerNode, nodes.FloatNode, nodes.BooleanNode,
               nodes.EnumNode, Dictionary, dict, list, set, tuple, int, float, str, bool,
               np.dtype, np.ndarray, np.core.multiarray.scalar, np.core.multiarray._reconstruct]
    allowed += [type(np.dtype(t)) for t in ("float64", "float32", "int64", "int32", "bool")]
    return allowed


@contextlib.contextmanager
def fairseq_globals():
    """Allow the classes fairseq checkpoints hold, for `torch.load` inside this block."""
    with torch.serialization.safe_globals(_allowlist()):
        yield


def load_checkpoint(path: str, map_location="cpu") -> dict:
    """A fairseq (or project) checkpoint as a dict, unpickled through the allowlist."""
    with fairseq_globals():
        return torch.load(path, map_location=map_location, weights_only=True)


def lm_positions(path: str) -> int:
    """The positions a fairseq LM checkpoint was built for: what `model.max_positions()` returns for it.

    fairseq's transformer_lm takes `max_target_positions`, else the task's `tokens_per_sample`, else 1024.
    Read from the checkpoint's config only; the weights are memory-mapped, not read.
    """
    with fairseq_globals():
        try:
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError:  # a checkpoint in torch's legacy (non-zip) format cannot be memory-mapped
            state = torch.load(path, map_location="cpu", weights_only=True)
    cfg, args = state.get("cfg") or {}, state.get("args")
    sources = [cfg.get("model"), cfg.get("task"), args]
    for key in ("max_target_positions", "tokens_per_sample"):
        for source in sources:
            value = source.get(key) if hasattr(source, "get") else getattr(source, key, None)
            if value:
                return int(value)
    return 1024


def file_hash(path: str, chunk: int = 1 << 20) -> str:
    """sha256 of a file: a prompt checkpoint names its frozen base by path and hash."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def load_lm(path: str, dict_path: str | None = None, device: str | torch.device = "cpu"):
    """A fairseq unit LM and its Dictionary, via `load_model_ensemble_and_task`.

    `dict_path` is the LM's `dict.txt` (GSLM ships it beside `hubert100_lm`);
    by default the one beside the checkpoint. Returns (model in eval mode, dictionary).
    """
    from fairseq import checkpoint_utils

    dict_path = dict_path or os.path.join(os.path.dirname(os.path.abspath(path)), "dict.txt")
    if not os.path.exists(dict_path):
        raise FileNotFoundError(f"{dict_path}: the unit LM's dict.txt is missing")
    with tempfile.TemporaryDirectory() as data_dir:  # fairseq wants `<data>/dict.txt`
        shutil.copy(dict_path, os.path.join(data_dir, "dict.txt"))
        with fairseq_globals():
            models, _cfg, task = checkpoint_utils.load_model_ensemble_and_task(
                [path], arg_overrides={"data": data_dir})
    model = models[0].to(device).eval()
    return model, task.source_dictionary
