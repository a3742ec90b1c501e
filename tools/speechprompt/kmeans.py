"""sp-kmeans: fit k-means on encoder frames of a manifest; `load_centroids` and `Quantizer` apply it.

    sp-kmeans train.tsv -o km.bin                      # logmel, K=100
    sp-kmeans train.tsv -o km.bin --encoder hubert --checkpoint hubert_base_ls960.pt --layer 6

The model is a scikit-learn MiniBatchKMeans saved with joblib, the same
kind of object as GSLM's `km.bin`. Frames come from a seeded sample of the
manifest's utterances (`--percent`), kept by reservoir sampling so at most
`--max-frames` frames are ever held.
"""
from __future__ import annotations

import random
import warnings

import click
import joblib
import numpy as np
import torch
from tqdm import tqdm

from .checkpoints import pick_device
from .encoders import encode, encoder_from_options, encoder_options
from .io import BadInput, Skipper, atomic_path, command, input_argument, log, read_manifest, skip_bad_option


# ------------------------------------------------------------------ loading
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


# ------------------------------------------------------------------ fitting
class Reservoir:
    """A uniform sample of at most `size` rows from a stream of [n, D] arrays (seeded algorithm R)."""

    def __init__(self, size: int, seed: int):
        self.size, self.seen, self.rows = size, 0, None
        self.rng = np.random.default_rng(seed)

    def add(self, x: np.ndarray) -> None:
        if self.rows is None:
            self.rows = np.empty((self.size, x.shape[1]), dtype=np.float32)
        take = min(len(x), max(0, self.size - self.seen))
        self.rows[self.seen:self.seen + take] = x[:take]
        rest = x[take:]
        if len(rest):
            slots = self.rng.integers(0, self.seen + take + np.arange(1, len(rest) + 1))
            keep = slots < self.size
            self.rows[slots[keep]] = rest[keep]
        self.seen += len(x)

    def sample(self) -> np.ndarray:
        return self.rows[:min(self.seen, self.size)]


@command("Fit k-means (MiniBatchKMeans, saved with joblib like GSLM's km.bin) on encoder frames of a manifest.")
@input_argument
@click.option("-o", "--output", required=True, help="The k-means model file (joblib), e.g. km.bin.")
@encoder_options
@click.option("-k", "--clusters", default=100, show_default=True, help="Number of clusters K.")
@click.option("--percent", default=100.0, show_default=True, type=click.FloatRange(0, 100, min_open=True),
              help="Encode a seeded sample of this percentage of the utterances.")
@click.option("--max-frames", default=250_000, show_default=True,
              help="Fit on at most this many frames (uniform sample).")
@click.option("--kmeans-batch", "km_batch", default=10_000, show_default=True, help="MiniBatchKMeans batch size.")
@click.option("--max-iter", default=100, show_default=True, help="MiniBatchKMeans passes over the frames.")
@click.option("--n-init", default=3, show_default=True, help="k-means++ restarts (GSLM used 20).")
@click.option("--seed", default=0, show_default=True, help="Seeds the utterance and frame samples and k-means.")
@click.option("--batch-seconds", default=60.0, show_default=True, help="Audio per encoder batch.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda[:N].")
@click.option("--threads", type=int, help="CPU threads for torch and scikit-learn (default: theirs).")
@skip_bad_option
def main(input, output, clusters, percent, max_frames, km_batch, max_iter, n_init, seed, batch_seconds,
         device, threads, skip_bad, **options):
    from sklearn.cluster import MiniBatchKMeans
    from threadpoolctl import threadpool_limits

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    skipper = Skipper(skip_bad)
    encoder = encoder_from_options(options, pick_device(device))
    utterances = list(read_manifest(input, skipper))
    if percent < 100:
        count = max(1, round(len(utterances) * percent / 100))
        utterances = [utterances[i] for i in sorted(random.Random(seed).sample(range(len(utterances)), count))]
    reservoir = Reservoir(max_frames, seed)
    for _, feats in tqdm(encode(utterances, encoder, skipper, batch_seconds), total=len(utterances),
                         desc="sp-kmeans: encoding", unit="utt", disable=None):
        if feats is not None:
            reservoir.add(feats.float().cpu().numpy())
    skipper.report("utterances")
    frames = reservoir.sample()
    if len(frames) < clusters:
        raise BadInput(f"only {len(frames)} frames for {clusters} clusters", input)
    log(f"fitting K={clusters} on {len(frames)} of {reservoir.seen} frames ({encoder.name}, dim {encoder.dim})")
    with threadpool_limits(threads):  # sklearn's OpenMP threads too: on a busy CPU extra ones only spin
        model = MiniBatchKMeans(n_clusters=clusters, init="k-means++", max_iter=max_iter, batch_size=km_batch,
                                n_init=n_init, random_state=seed, compute_labels=False, max_no_improvement=100,
                                reassignment_ratio=0.0, tol=0.0).fit(frames)
        log(f"inertia per frame {-model.score(frames) / len(frames):.4g}")
    model.speechprompt_encoder_ = encoder.spec()  # an extra attribute: still a plain MiniBatchKMeans
    with atomic_path(output) as tmp:
        joblib.dump(model, tmp)
