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

from .io import BadInput


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


def load_checkpoint(path: str, map_location="cpu", kind: str = "") -> dict:
    """A fairseq (or project) checkpoint as a dict, unpickled through the allowlist.

    Anything else (a class outside the allowlist, a joblib or plain pickle, a
    file that is no checkpoint at all, one cut short) is refused with one line
    `PATH: refused: ...`, and nothing of it is executed. `kind` names what was
    expected in that line (`prompt`: "truncated, or not a prompt checkpoint").
    """
    with refusing(path, kind), fairseq_globals():
        state = torch.load(path, map_location=map_location, weights_only=True)
    if not isinstance(state, dict):
        raise BadInput(f"refused: not a checkpoint (a pickled {type(state).__name__}, not a dict)", path)
    return state


def cut_short(path: str) -> str | None:
    """Why the file at `path` looks cut short (an interrupted copy or save), or None.

    torch's checkpoints are zip files, whose directory is at the end: a zip that starts right but
    whose directory cannot be read was cut. Torch's own errors for it are "Invalid argument" or
    "failed finding central directory"."""
    import zipfile

    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError:
        return None
    if size == 0:
        return "an empty file"
    if head != b"PK\x03\x04":
        return None
    try:
        with zipfile.ZipFile(path) as archive:
            archive.infolist()
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        return f"an incomplete zip of {size} bytes: {str(error).splitlines()[0] if str(error) else 'unreadable'}"
    return None


@contextlib.contextmanager
def refusing(path: str, kind: str = ""):
    """Turn every failure of loading the model file `path` into one line `PATH: refused: reason`.

    `kind` (`prompt`, `unit LM`, ...) names the checkpoint expected, for a file that is cut short."""
    import pickle

    try:
        yield
    except BadInput:
        raise
    except FileNotFoundError as error:
        raise BadInput(f"no such file{'' if error.filename in (None, path) else ': ' + str(error.filename)}",
                       path) from None
    except IsADirectoryError:
        raise BadInput("is a directory, not a model file", path) from None
    except Exception as error:
        cut = cut_short(path) if os.path.isfile(path) else None
        text = str(error).strip().splitlines()
        if not cut and (isinstance(error, EOFError) or any(w in str(error) for w in ("unexpected EOF", "truncated"))):
            cut = f"it ends early: {type(error).__name__}{': ' + text[0] if text else ''}"  # torch's legacy format
        if cut:
            raise BadInput(f"refused: truncated, or not a {kind + ' ' if kind else ''}checkpoint ({cut})",
                           path) from None
        if isinstance(error, OSError):
            raise BadInput(f"cannot read: {error.strerror or error}", path) from None
        if isinstance(error, pickle.UnpicklingError):
            lines = str(error).splitlines()
            detail = next((ln.strip() for ln in lines if "GLOBAL" in ln or "Unsupported global" in ln), None)
            if detail is None:  # not a class off the allowlist: the bytes are no pickle at all
                raise BadInput(f"refused: not a checkpoint ({lines[0] if lines else 'unreadable'})", path) from None
            raise BadInput(f"refused: not loadable through the weights-only allowlist: {detail}", path) from None
        # torch, zipfile and fairseq raise many kinds for a file that is no checkpoint
        raise BadInput(f"refused: not a usable checkpoint ({type(error).__name__}"
                       f"{': ' + text[0] if text else ''})", path) from None


def save_checkpoint(state: dict, path: str) -> None:
    """`torch.save` to `path` atomically. Serialised in memory first: a write that fails (a full disk) then
    raises an OSError with its errno, where torch's zip writer would raise a bare RuntimeError."""
    import io

    from .io import atomic_path

    buffer = io.BytesIO()
    torch.save(state, buffer)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(buffer.getbuffer())


def require_lm(state, path: str) -> None:
    """Refuse, in one line, a loaded checkpoint that is not a fairseq LM's (a prompt checkpoint, say)."""
    if not isinstance(state, dict):
        raise BadInput(f"refused: not a checkpoint (a pickled {type(state).__name__}, not a dict)", path)
    if not isinstance(state.get("model"), dict) or (state.get("cfg") is None and state.get("args") is None):
        what = "a prompt checkpoint from sp-train" if "prompt" in state else "no fairseq model checkpoint"
        raise BadInput(f"refused: {what}, not a unit LM (no 'model' and 'cfg')", path)


def map_lm(path: str) -> dict:
    """A fairseq LM checkpoint through the allowlist, its tensors memory-mapped where the format allows
    (so reading its config or a weight's shape does not read the weights); refused in one line."""
    with refusing(path, "unit LM"), fairseq_globals():
        try:
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError:  # a checkpoint in torch's legacy (non-zip) format cannot be memory-mapped
            state = torch.load(path, map_location="cpu", weights_only=True)
    require_lm(state, path)
    return state


def lm_positions(path: str) -> int:
    """The positions a fairseq LM checkpoint was built for: what `model.max_positions()` returns for it.

    fairseq's transformer_lm takes `max_target_positions`, else the task's `tokens_per_sample`, else 1024.
    Read from the checkpoint's config only; the weights are memory-mapped, not read.
    """
    state = map_lm(path)
    cfg, args = state.get("cfg") or {}, state.get("args")
    sources = [cfg.get("model"), cfg.get("task"), args]
    for key in ("max_target_positions", "tokens_per_sample"):
        for source in sources:
            value = source.get(key) if hasattr(source, "get") else getattr(source, key, None)
            if value:
                return int(value)
    return 1024


def json_identity(path: str) -> str:
    """sha256 of a JSON file's canonical form (sorted keys, no spaces): the same content, the same identity.

    A prompt checkpoint records its verbalizer's this way, so decoding with another map is refused.
    """
    import json

    try:
        with open(path, encoding="utf-8-sig") as f:
            data = json.load(f)
    except OSError as error:
        raise BadInput(f"cannot read: {error.strerror}", path) from None
    except ValueError as error:
        raise BadInput(f"not JSON: {error}", path) from None
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def load_lm(path: str, dict_path: str | None = None, device: str | torch.device = "cpu"):
    """A fairseq unit LM and its Dictionary, via `load_model_ensemble_and_task`.

    `dict_path` is the LM's `dict.txt` (GSLM ships it beside `hubert100_lm`);
    by default the one beside the checkpoint. Returns (model in eval mode, dictionary).
    """
    from fairseq import checkpoint_utils

    dict_path = dict_path or os.path.join(os.path.dirname(os.path.abspath(path)), "dict.txt")
    if not os.path.exists(dict_path):
        raise BadInput(f"the unit LM's dict.txt is missing ({dict_path}; give its path)", path)
    state = load_checkpoint(path, kind="unit LM")  # refused here, with one line, before fairseq sees it
    require_lm(state, path)
    del state
    with tempfile.TemporaryDirectory() as data_dir:  # fairseq wants `<data>/dict.txt`
        shutil.copy(dict_path, os.path.join(data_dir, "dict.txt"))
        with refusing(path, "unit LM"), fairseq_globals():
            models, _cfg, task = checkpoint_utils.load_model_ensemble_and_task(
                [path], arg_overrides={"data": data_dir})
    model = models[0]
    if not hasattr(model, "decoder") or not hasattr(model.decoder, "extract_features"):
        raise BadInput(f"refused: not a unit language model (a {type(model).__name__})", path)
    model = model.to(device).eval()
    return model, task.source_dictionary
