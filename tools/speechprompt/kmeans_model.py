"""The k-means model applied to features: its file format, loading a model's centres, the nearest-centre `Quantizer`.

`sp-kmeans` fits the model and writes it with `save_kmeans` (an `.npz`, no
pickle); `sp-quantize` (and anything else that maps features to units) loads
it here. GSLM's `km.bin` and older sp-kmeans files are joblib pickles: they are
read by a restricted unpickler that can build numpy arrays and nothing else
(docs/formats.md, "Encoders and k-means").
"""
from __future__ import annotations

import codecs
import json
import pickle
import warnings

import joblib
import numpy as np
import torch

from .io import BadInput


FORMAT = "speechprompt-kmeans/1"


# ------------------------------------------------------------ the .npz format
def save_kmeans(path: str, centers: np.ndarray, encoder: dict) -> None:
    """sp-kmeans's file: a numpy `.npz` (a zip of `.npy` arrays) that loads without pickle.

    `format` and `encoder` (the encoder's spec as JSON) are 0-d unicode arrays,
    `centers` is float32 [K, D]. Written to `path` as is (no `.npz` added).
    """
    with open(path, "wb") as f:
        np.savez(f, format=np.array(FORMAT), centers=np.asarray(centers, dtype=np.float32),
                 encoder=np.array(json.dumps(encoder, sort_keys=True)))


def _load_npz(f, path: str) -> tuple[np.ndarray, dict | None]:
    try:
        with np.load(f, allow_pickle=False) as npz:
            names = set(npz.files)
            if not {"format", "centers"} <= names or str(npz["format"]) != FORMAT:
                raise BadInput(f"refused: a zip file, but not a {FORMAT} k-means file (arrays: "
                               f"{sorted(names)[:4]})", path)
            centers = npz["centers"]
            encoder = json.loads(str(npz["encoder"])) if "encoder" in names else None
    except BadInput:
        raise
    except Exception as error:  # a torch zip, a corrupt archive, an object array (allow_pickle=False)
        raise BadInput(f"refused: not a {FORMAT} k-means file ({type(error).__name__}: "
                       f"{str(error).splitlines()[0] if str(error) else ''})", path) from None
    return centers, encoder if isinstance(encoder, dict) else None


# ---------------------------------------------------------- pickles, restricted
class _State:
    """Stand-in for the sklearn k-means class: holds the pickled state, runs none of sklearn's code."""

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        if isinstance(state, tuple) and len(state) == 2:  # (dict, slots)
            state = {**(state[0] or {}), **(state[1] or {})}
        if isinstance(state, dict):
            self.__dict__.update(state)


class _Inert(_State):
    """What a RandomState pickled as a k-means `random_state` becomes: nothing (the centres do not need it)."""


def _reconstructor(cls, base, state):  # copyreg._reconstructor of protocols 0 and 1, for stand-ins only
    if not (isinstance(cls, type) and issubclass(cls, _State)):
        raise pickle.UnpicklingError(f"refused: copyreg._reconstructor of {cls!r}")
    return cls()


def _allowed() -> dict:
    """(module, name) -> what the restricted unpickler gives for it; every other global is refused."""
    from joblib.numpy_pickle import NumpyArrayWrapper
    from numpy.core import multiarray, numeric

    table = {("_codecs", "encode"): codecs.encode,  # bytes in protocol 2
             ("copyreg", "_reconstructor"): _reconstructor, ("copy_reg", "_reconstructor"): _reconstructor,
             ("builtins", "object"): object, ("__builtin__", "object"): object}
    for module in ("numpy", "numpy.core.multiarray", "numpy._core.multiarray"):
        table[(module, "ndarray")], table[(module, "dtype")] = np.ndarray, np.dtype
        table[(module, "_reconstruct")], table[(module, "scalar")] = multiarray._reconstruct, multiarray.scalar
    for module in ("numpy.core.numeric", "numpy._core.numeric"):
        table[(module, "_frombuffer")] = numeric._frombuffer  # arrays pickled with protocol 5
    for module in ("joblib.numpy_pickle", "sklearn.externals.joblib.numpy_pickle"):  # GSLM's km.bin: the latter
        table[(module, "NumpyArrayWrapper")] = NumpyArrayWrapper
    for module in ("sklearn.cluster._kmeans", "sklearn.cluster.k_means_", "sklearn.cluster._k_means", "sklearn.cluster"):
        for name in ("KMeans", "MiniBatchKMeans"):
            table[(module, name)] = type(name, (_State,), {"__module__": module})
    for name in ("__randomstate_ctor", "__bit_generator_ctor", "__generator_ctor"):
        table[("numpy.random._pickle", name)] = _Inert
    return table


class _RestrictedUnpickler(joblib.numpy_pickle.NumpyUnpickler):
    """joblib's unpickler (it reads the arrays that follow a NumpyArrayWrapper) behind an allowlist.

    Only numpy arrays and dtypes, joblib's array wrapper and stand-ins for the
    sklearn k-means classes can be named; anything else (`os.system`,
    `builtins.eval`, any other class) stops the load before it is called.
    Arrays of Python objects are refused too: they would be a nested pickle.
    """

    dispatch = joblib.numpy_pickle.NumpyUnpickler.dispatch.copy()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.allowed = _allowed()

    def find_class(self, module, name):
        try:
            return self.allowed[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a k-means file") from None

    def load_build(self):
        state, target = self.stack[-1], self.stack[-2]
        dtype = (state.get("dtype") if isinstance(state, dict) else None) if isinstance(
            target, joblib.numpy_pickle.NumpyArrayWrapper) else \
            (state[2] if isinstance(target, np.ndarray) and isinstance(state, tuple) and len(state) > 2 else np.dtype("f4"))
        if not isinstance(dtype, np.dtype) or dtype.hasobject:
            raise pickle.UnpicklingError("an array of Python objects (or of no dtype) is not allowed in a k-means file")
        joblib.numpy_pickle.NumpyUnpickler.load_build(self)

    dispatch[pickle.BUILD[0]] = load_build


def _load_pickle(path: str):
    """A joblib file (plain or compressed) or a plain pickle, through `_RestrictedUnpickler`; never `joblib.load`."""
    with open(path, "rb") as f, joblib.numpy_pickle._validate_fileobject_and_memmap(f, path, None) as (fobj, _):
        return _RestrictedUnpickler(path, fobj, ensure_native_byte_order=True).load()


# ------------------------------------------------------------------ loading
def load_centroids(path: str) -> np.ndarray:
    return load_kmeans(path)[0]


def load_kmeans(path: str) -> tuple[np.ndarray, dict | None]:
    """The [K, D] cluster centres of a k-means file, and the encoder spec sp-kmeans stored with it (or None).

    Read: sp-kmeans's `.npz` (no pickle at all), and joblib pickles of a
    scikit-learn KMeans/MiniBatchKMeans (GSLM's `km.bin`, older sp-kmeans
    files), only through a restricted unpickler. A file that is neither, or a
    pickle naming anything beyond numpy arrays and the k-means class, is refused
    with one line `PATH: refused: ...`; nothing in it runs.
    """
    try:
        with open(path, "rb") as f:
            zipped = f.read(4) == b"PK\x03\x04"
            if zipped:
                f.seek(0)
                centers, spec = _load_npz(f, path)
    except FileNotFoundError:
        raise BadInput("no such k-means file", path) from None
    except IsADirectoryError:
        raise BadInput("is a directory, not a k-means file", path) from None
    except OSError as error:
        raise BadInput(f"cannot read: {error.strerror}", path) from None
    if not zipped:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                model = _load_pickle(path)
            except pickle.UnpicklingError as error:
                raise BadInput(f"refused: {str(error).splitlines()[0] if str(error) else 'not a pickle'}", path) from None
            except Exception as error:  # a truncated or foreign file: joblib and pickle raise many kinds
                text = str(error).splitlines()
                raise BadInput(f"refused: not a k-means file ({type(error).__name__}{': ' + text[0] if text else ''})",
                               path) from None
        centers = model.get("cluster_centers_") if isinstance(model, dict) else getattr(model, "cluster_centers_", None)
        spec = model.get("speechprompt_encoder_") if isinstance(model, dict) else \
            getattr(model, "speechprompt_encoder_", None)  # older sp-kmeans files; absent from GSLM's km.bin
        if centers is None:
            raise BadInput(f"refused: not a k-means model (no cluster_centers_ in a {type(model).__name__})", path)
    if not isinstance(centers, np.ndarray) or centers.ndim != 2 or centers.dtype.kind not in "fiu" or not centers.size:
        raise BadInput("refused: the cluster centres are not a non-empty 2-D numeric array", path)
    if not np.isfinite(centers).all():
        raise BadInput("refused: the cluster centres hold NaN or infinity", path)
    return np.asarray(centers, dtype=np.float32), spec if isinstance(spec, dict) else None


def check_encoder(centers: np.ndarray, fitted_on: dict | None, encoder, path: str, rate: float | None = None) -> None:
    """Refuse, in one line, a k-means whose centres were not fitted on `encoder`'s features: another
    feature size, another frame rate (the one the file records, else `rate`: sp-quantize's
    --kmeans-rate), another spec. sp-quantize, sp-export and sp-classify check alike."""
    if centers.shape[1] != encoder.dim:
        raise BadInput(f"{centers.shape[1]}-dim centres, but the {encoder.name} encoder gives {encoder.dim}-dim "
                       "features (fit with the same encoder)", path)
    rate = (fitted_on or {}).get("hop", rate)
    if rate is not None and abs(float(rate) - encoder.hop) > 1e-6:
        raise BadInput(f"refused: a k-means of {float(rate):g}-frame/s features, but the {encoder.name} encoder gives "
                       f"{encoder.hop:g} frames/s (an encoder and quantizer of different frame rates)", path)
    if fitted_on is not None and fitted_on != encoder.spec():
        raise BadInput(f"fitted on {fitted_on}, but this run's encoder is {encoder.spec()}", path)


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
