"""The k-means model applied to features: loading a fitted model's centres, and the nearest-centre `Quantizer`.

`sp-kmeans` fits and writes the model; `sp-quantize` (and anything else that
maps features to units) loads it here.
"""
from __future__ import annotations

import warnings

import joblib
import numpy as np
import torch

from .io import BadInput


class _State:
    """Stand-in for a class the restricted unpickler will not import: keeps only its state."""

    def __init__(self, *args, **kwargs):
        self.__dict__["_args"] = args

    def __setstate__(self, state):
        if isinstance(state, tuple) and len(state) == 2:  # (dict, slots)
            state = {**(state[0] or {}), **(state[1] or {})}
        if isinstance(state, dict):
            self.__dict__.update(state)


def _stand_in(module: str, name: str) -> type:
    return type(name, (_State,), {"__module__": module})


class _StateUnpickler(joblib.numpy_pickle.NumpyUnpickler):
    """joblib's unpickler, but only numpy and builtin containers are real; any other class is a _State."""

    real = {("builtins", n) for n in ("dict", "list", "tuple", "set", "frozenset", "int", "float", "str",
                                       "bytes", "bool", "complex", "slice")}

    def find_class(self, module, name):
        top = module.split(".")[0]
        if (module, name) in self.real or top == "numpy" or module.startswith("joblib.numpy_pickle"):
            return super().find_class(module, name)
        if (module, name) in {("copyreg", "_reconstructor"), ("copy_reg", "_reconstructor")}:
            return lambda cls, base, state: cls()
        return _stand_in(module, name)


def _state_load(path: str):
    open_validated = getattr(joblib.numpy_pickle, "_validate_fileobject_and_memmap", None)
    with open(path, "rb") as f:
        if open_validated is not None:
            with open_validated(f, path, None) as (fobj, _):
                return _StateUnpickler(path, fobj, True).load()
        with joblib.numpy_pickle._read_fileobject(f, path, None) as fobj:
            return _StateUnpickler(path, fobj, True).load()


def load_centroids(path: str) -> np.ndarray:
    return load_kmeans(path)[0]


def load_kmeans(path: str) -> tuple[np.ndarray, dict | None]:
    """The [K, D] cluster centres of a joblib k-means (GSLM's km.bin or ours), whatever sklearn pickled it,
    and the encoder spec sp-kmeans stored with it (None for other k-means files).

    Only `cluster_centers_` is used. Version warnings are silenced; if the
    pickled sklearn class cannot be rebuilt (an old module path, a missing
    class), a restricted unpickler reads the object's state instead.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # InconsistentVersionWarning and friends: only the centres matter
        try:
            model = joblib.load(path)
        except FileNotFoundError:
            raise BadInput("no such k-means file", path) from None
        except Exception as error:
            try:
                model = _state_load(path)
            except Exception:
                raise BadInput(f"cannot read k-means model: {type(error).__name__}: {error}", path) from None
    centers = model.get("cluster_centers_") if isinstance(model, dict) else getattr(model, "cluster_centers_", None)
    if centers is None or np.ndim(centers) != 2:
        raise BadInput(f"not a k-means model (no 2-D cluster_centers_ in a {type(model).__name__})", path)
    spec = getattr(model, "speechprompt_encoder_", None)  # set by sp-kmeans; absent from GSLM's km.bin
    return np.asarray(centers, dtype=np.float32), spec if isinstance(spec, dict) else None


class Quantizer:
    """Nearest centre by squared distance, vectorised in torch on the features' device."""

    def __init__(self, centers: np.ndarray, device: torch.device):
        self.centers = torch.from_numpy(np.ascontiguousarray(centers)).to(device)
        self.norms = self.centers.pow(2).sum(dim=1)

    @property
    def dim(self) -> int:
        return self.centers.shape[1]

    def __call__(self, features: torch.Tensor) -> torch.Tensor:
        # ||x||^2 - 2 x.c + ||c||^2; ||x||^2 is the same for every centre, so it cannot change the argmin
        return (self.norms - 2 * features.float() @ self.centers.T).argmin(dim=1)
