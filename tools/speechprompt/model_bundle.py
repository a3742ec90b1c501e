"""The model bundle: a trained prompt with every part that turns audio into its labels.

`sp-export` (`make TASK=X export`) writes one; `sp-classify` and `classifier.Classifier` read it. The
format is documented in docs/classify.md. In short, a directory (and a tar of it) with

    bundle.json      the manifest: `format`, the encoder and its options, the unit settings (dedup,
                     crop), the labels, the metrics on test, and `parts`: each part's file and sha256
    prompt.pt        the prompt checkpoint (sp-train)
    verbalizer.json  the verbalizer (sp-verbalize fit)
    kmeans.bin       the k-means file (sp-kmeans's .npz, or GSLM's joblib km.bin)
    ulm.pt, dict.txt the frozen uLM and its dictionary
    hubert.pt        the HuBERT checkpoint (ENCODER=hubert only)
    metrics.json     sp-score's metrics on the test split

A part that came from the named-asset cache (`ASSETS=gslm-hubert100`: GSLM's HuBERT, k-means, uLM and
dict, hundreds of MB) is not copied: the manifest names the asset (bundle name, key, url path on its
host) and the part's sha256, and loading takes the file from the cache, fetching it if the cache lacks
it. `--copy-assets` copies them too, for a bundle that needs no cache and no network.

Loading checks the format (another version is refused in one line) and the sha256 of every part (a
changed part is refused in one line naming it). No code from a bundle runs: checkpoints load through
the weights-only allowlist (checkpoints.py), k-means files through the restricted reader
(kmeans_model.py), the rest is JSON and text.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tarfile
import tempfile
from typing import Iterator

from . import __version__
from .io import BadInput, atomic_path, file_hash
from .units import CROPS

FORMAT = "speechprompt-bundle/1"
MANIFEST = "bundle.json"
# role -> file name inside the bundle
FILES = {"prompt": "prompt.pt", "verbalizer": "verbalizer.json", "kmeans": "kmeans.bin", "ulm": "ulm.pt",
         "dict": "dict.txt", "hubert": "hubert.pt", "metrics": "metrics.json"}
REQUIRED = ("prompt", "verbalizer", "kmeans", "ulm", "dict")
# Parts are single files so far: backbones and encoders that read a model directory (the hf backbone,
# the hf-hubert encoder) are refused at export.
SINGLE_FILE_BACKBONES = ("fairseq",)
SINGLE_FILE_ENCODERS = ("logmel", "hubert")


# ------------------------------------------------------------------ assets
def asset_refs(paths: dict[str, str], asset_names: list[str]) -> dict[str, dict]:
    """For each part whose file is a fetched file of one of the named assets (the cache's copy), the
    reference the manifest keeps instead of the file: {bundle, key, url, member, base_url}."""
    from .asset_registry import registry
    from .asset_store import Store, cache_dir

    if not asset_names:
        return {}
    bundles = registry([p for p in os.environ.get("SPEECHPROMPT_REGISTRY", "").split(":") if p])
    store = Store(cache_dir())
    unknown = [name for name in asset_names if name not in bundles]
    if unknown:
        raise BadInput(f"--assets {unknown[0]}: no such asset bundle (`sp-assets list` names them)")
    cached = {}  # realpath of a fetched file -> its reference
    for name in asset_names:
        bundle = bundles[name]
        for key, asset in bundle.files.items():
            try:
                path = store.find(bundle, key)
            except BadInput:  # not fetched: no part can be it
                continue
            cached.setdefault(os.path.realpath(path), {"bundle": name, "key": key, "url": asset.url,
                                                       "member": asset.member,
                                                       "base_url": bundle.hosts.get(asset.url, bundle.base_url)})
    return {role: cached[os.path.realpath(path)] for role, path in paths.items()
            if os.path.realpath(path) in cached}


def fetch_asset(ref: dict, where: str) -> str:
    """The local path of a referenced asset, from the cache (fetched into it if missing)."""
    from .asset_bundle import Asset, Bundle
    from .asset_registry import check_relative
    from .asset_store import Store, cache_dir

    for field in ("bundle", "key", "url", "base_url"):
        if not isinstance(ref.get(field), str) or not ref[field]:
            raise BadInput(f"refused: an asset reference without {field!r}", where)
    check_relative(ref["url"], where)
    if ref.get("member"):
        check_relative(ref["member"], where)
    bundle = Bundle(ref["bundle"], "", {ref["key"]: Asset(ref["url"], ref.get("member"))}, {}, ref["base_url"])
    store = Store(cache_dir(), os.environ.get("SPEECHPROMPT_MIRROR") or None)
    return store.fetch(bundle, [ref["key"]])[ref["key"]]


# ------------------------------------------------------------------ writing
@contextlib.contextmanager
def atomic_directory(path: str) -> Iterator[str]:
    """Yield a fresh directory beside `path`, renamed over it when the block succeeds.

    An existing `path` is replaced only if it is a bundle (it holds bundle.json) or empty: a directory of
    something else is refused, never deleted."""
    if os.path.lexists(path) and not os.path.isdir(path):
        raise BadInput("exists and is not a directory; not replaced", path)
    if os.path.isdir(path) and os.listdir(path) and not os.path.exists(os.path.join(path, MANIFEST)):
        raise BadInput(f"exists and is not a model bundle (no {MANIFEST}); not replaced", path)
    parent, name = os.path.split(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=parent, prefix=f".{name}.", suffix=".tmp")
    old = None
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())
        if os.path.isdir(path):
            old = tempfile.mkdtemp(dir=parent, prefix=f".{name}.", suffix=".old")
            os.rename(path, os.path.join(old, name))
        os.rename(tmp, path)
    finally:
        for leftover in (tmp, old):
            if leftover and os.path.exists(leftover):
                shutil.rmtree(leftover)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_tar(directory: str, path: str) -> None:
    """A tar of the bundle under its directory's name, the same bytes for the same files: members
    sorted, times, owners and modes fixed. Written atomically."""
    top = os.path.basename(os.path.abspath(directory))
    with atomic_path(path) as tmp, tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(_member(top + "/", tarfile.DIRTYPE, 0))
        for name in sorted(os.listdir(directory)):
            size = os.path.getsize(os.path.join(directory, name))
            with open(os.path.join(directory, name), "rb") as f:
                tar.addfile(_member(f"{top}/{name}", tarfile.REGTYPE, size), f)


def _member(name: str, kind: bytes, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name.rstrip("/"))
    info.type, info.size, info.mtime = kind, size, 0
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def write_bundle(out_dir: str, manifest: dict, paths: dict[str, str], refs: dict[str, dict],
                 tar: str | None = None) -> dict:
    """Write the bundle: `manifest` (without `parts`) completed with every part of `paths` (role -> file),
    copied, or named by its asset reference where `refs` has one. Returns the manifest written."""
    parts = {}
    with atomic_directory(out_dir) as tmp:
        for role, source in paths.items():
            if role in refs:
                parts[role] = {"asset": refs[role], "sha256": file_hash(source), "bytes": os.path.getsize(source)}
                continue
            target = os.path.join(tmp, FILES[role])
            shutil.copyfile(source, target)
            parts[role] = {"file": FILES[role], "sha256": file_hash(target), "bytes": os.path.getsize(target)}
        manifest = {"format": FORMAT, **manifest, "created_by": f"speechprompt {__version__} sp-export",
                    "parts": parts}
        with open(os.path.join(tmp, MANIFEST), "w", encoding="utf-8") as f:
            json.dump(manifest, f, indent=1, ensure_ascii=False)
            f.write("\n")
    if tar:
        write_tar(out_dir, tar)
    return manifest


# ------------------------------------------------------------------ reading
class ModelBundle:
    """An opened, verified bundle: `manifest`, and `path(role)`, the local file of each part.

    A bundle given as a tar is unpacked into a temporary directory, which `close()` removes (the
    Classifier closes it once every part is loaded)."""

    def __init__(self, source: str, root: str, manifest: dict, paths: dict[str, str], tmp: str | None = None):
        self.source, self.root, self.manifest, self.paths, self._tmp = source, root, manifest, paths, tmp

    def path(self, role: str) -> str | None:
        return self.paths.get(role)

    def close(self) -> None:
        if self._tmp and os.path.exists(self._tmp):
            shutil.rmtree(self._tmp)
        self._tmp = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def open_bundle(path: str) -> ModelBundle:
    """Open the bundle at `path` (its directory, or the tar of it), check its format and every part's
    sha256; referenced assets are taken from the cache (fetched into it if it lacks them)."""
    path = os.fspath(path)
    tmp = None
    if os.path.isdir(path):
        root = path
    elif os.path.isfile(path) and tarfile.is_tarfile(path):
        tmp = tempfile.mkdtemp(prefix="speechprompt-bundle.")
        try:
            root = _unpack(path, tmp)
        except BaseException:
            shutil.rmtree(tmp)
            raise
    elif os.path.exists(path):
        raise BadInput("refused: not a model bundle (neither a bundle directory nor a tar of one)", path)
    else:
        raise BadInput("no such model bundle", path)
    try:
        manifest = read_manifest(root, path)
        paths = verify_parts(root, manifest, path)
    except BaseException:
        if tmp:
            shutil.rmtree(tmp)
        raise
    return ModelBundle(path, root, manifest, paths, tmp)


def _unpack(archive: str, into: str) -> str:
    """Unpack a bundle tar (every member checked, as the asset cache does) and return the directory that
    holds bundle.json: the tar's one top folder, or its root."""
    from .asset_store import unpack

    target = os.path.join(into, "bundle")
    unpack(archive, target, archive)
    if os.path.exists(os.path.join(target, MANIFEST)):
        return target
    tops = os.listdir(target)
    if len(tops) == 1 and os.path.exists(os.path.join(target, tops[0], MANIFEST)):
        return os.path.join(target, tops[0])
    raise BadInput(f"refused: not a model bundle (the tar holds no {MANIFEST})", archive)


def read_manifest(root: str, where: str) -> dict:
    manifest_path = os.path.join(root, MANIFEST)
    if not os.path.exists(manifest_path):
        raise BadInput(f"refused: not a model bundle (no {MANIFEST})", where)
    try:
        with open(manifest_path, encoding="utf-8") as f:
            manifest = json.load(f)
    except (OSError, ValueError) as error:
        raise BadInput(f"refused: {MANIFEST} is not readable JSON ({str(error).splitlines()[0]})", where) from None
    if not isinstance(manifest, dict) or "format" not in manifest:
        raise BadInput(f"refused: not a model bundle ({MANIFEST} has no 'format')", where)
    if manifest["format"] != FORMAT:
        raise BadInput(f"refused: bundle format {manifest['format']!r}, but this version of speechprompt reads "
                       f"{FORMAT!r} (export the experiment again with this version's sp-export)", where)
    for key, kind in (("parts", dict), ("encoder", dict), ("units", dict), ("labels", list)):
        if not isinstance(manifest.get(key), kind):
            raise BadInput(f"refused: {MANIFEST} has no {key!r} {kind.__name__}", where)
    units = manifest["units"]
    max_units = units.get("max_units")
    if units.get("dedup") is not True or units.get("crop", "center") not in CROPS or not (
            max_units is None or (type(max_units) is int and max_units >= 1)):
        raise BadInput(f"refused: {MANIFEST}: units {json.dumps(units)} are not dedup true, max_units null or a "
                       f"positive integer, crop one of {', '.join(CROPS)}", where)
    return manifest


def verify_parts(root: str, manifest: dict, where: str) -> dict[str, str]:
    """role -> local path of every part, each checked against its recorded sha256."""
    parts = manifest["parts"]
    needed = list(REQUIRED) + (["hubert"] if manifest["encoder"].get("name") == "hubert" else [])
    missing = [role for role in needed if role not in parts]
    if missing:
        raise BadInput(f"refused: {MANIFEST} lists no part {missing[0]!r}", where)
    paths = {}
    for role, part in parts.items():
        if role not in FILES or not isinstance(part, dict) or not re.fullmatch(r"[0-9a-f]{64}", str(part.get("sha256"))):
            raise BadInput(f"refused: {MANIFEST}: part {role!r} is not one of {', '.join(FILES)} with a sha256", where)
        if "asset" in part:
            if not isinstance(part["asset"], dict):
                raise BadInput(f"refused: {MANIFEST}: part {role!r} has an asset that is not an object", where)
            local = fetch_asset(part["asset"], f"{where}: part {role!r}")
            what = f"part {role!r} (asset {part['asset'].get('bundle')} {part['asset'].get('key')}, {local})"
        else:
            name = part.get("file")
            if name != FILES[role]:
                raise BadInput(f"refused: {MANIFEST}: part {role!r} must be the file {FILES[role]!r}", where)
            local = os.path.join(root, name)
            what = f"part {role!r} ({name})"
        if not os.path.isfile(local):
            raise BadInput(f"refused: {what} is missing", where)
        digest = file_hash(local)
        if digest != part["sha256"]:
            raise BadInput(f"refused: {what} changed: its sha256 is {digest[:12]}..., the manifest says "
                           f"{part['sha256'][:12]}...", where)
        paths[role] = local
    return paths


# ------------------------------------------------------------------ export
def export(out_dir: str, *, prompt: str, verbalizer: str, kmeans: str, encoder_name: str, encoder_options: dict,
           kmeans_rate: float | None = None, base: str | None = None, base_dict: str | None = None,
           max_units: int | None = None, crop: str = "center", metrics: str | None = None, name: str | None = None,
           assets: list[str] = (), copy_assets: bool = False, tar: str | None = None) -> dict:
    """Check that the parts belong together, as the chain's stages check them, and write the bundle.

    The encoder options are those sp-quantize ran with (Make passes the same arguments), and the k-means
    must have been fitted on that encoder (`kmeans_rate`: sp-quantize's --kmeans-rate); the uLM must be
    the one the prompt was trained on (its sha256) and the verbalizer the one its labels were mapped
    with. `encoder_options` holds the encoder's keyword arguments, `checkpoint` among them for HuBERT.
    Raises EncoderOptionError for an option the encoder does not take."""
    import torch

    from .encoders import build
    from .kmeans_model import check_encoder, load_kmeans
    from .prompting import backbones
    from .prompting.decoding import base_paths, read_prompt_checkpoint, verbalizer_decoder

    ckpt = read_prompt_checkpoint(prompt)
    kind = ckpt["base"].get("kind", backbones.DEFAULT_KIND)
    if kind not in SINGLE_FILE_BACKBONES:
        raise BadInput(f"refused: the prompt was tuned on a {kind!r} backbone, a model directory; a bundle holds "
                       f"single-file parts, so far the {', '.join(SINGLE_FILE_BACKBONES)} backbone's only", prompt)
    if encoder_name not in SINGLE_FILE_ENCODERS:
        raise BadInput(f"refused: the {encoder_name} encoder reads a model directory; a bundle holds single-file "
                       f"parts, so far the {' and '.join(SINGLE_FILE_ENCODERS)} encoders' only")
    base, base_dict = base_paths(ckpt, prompt, base, base_dict)
    base_dict = base_dict or os.path.join(os.path.dirname(os.path.abspath(base)), "dict.txt")
    if backbones.identity(kind, base) != ckpt["base"]["sha256"]:
        raise BadInput(f"base LM {base} is not the one this prompt was trained on (sha256 differs)", prompt)
    candidates = ckpt["labels"]
    if not candidates:
        raise BadInput("the prompt checkpoint lists no train labels", prompt)
    to_label = verbalizer_decoder(verbalizer, ckpt, candidates)
    encoder = build(encoder_name, torch.device("cpu"), **encoder_options)
    centers, fitted_on = load_kmeans(kmeans)
    check_encoder(centers, fitted_on, encoder, kmeans, kmeans_rate)
    summary = None
    if metrics:
        try:
            with open(metrics, encoding="utf-8") as f:
                scores = json.load(f)
            summary = {**scores["headline"], "n": scores.get("n")}
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise BadInput(f"not sp-score's metrics JSON ({type(error).__name__}: {error})", metrics) from None
    options = {k: v for k, v in encoder_options.items() if k != "checkpoint" and v not in (None, False)}
    manifest = {
        "name": name,
        "encoder": {"name": encoder.name, "options": options, "spec": encoder.spec(),
                    "sample_rate": encoder.sample_rate, "kmeans_rate": kmeans_rate},
        "units": {"dedup": True, "max_units": max_units, "crop": crop},
        "backbone": {"kind": kind},
        "labels": [to_label(c.split()) for c in candidates],
        "metrics": summary,
    }
    paths = {"prompt": prompt, "verbalizer": verbalizer, "kmeans": kmeans, "ulm": base, "dict": base_dict}
    if encoder.name == "hubert":
        paths["hubert"] = encoder_options["checkpoint"]
    if metrics:
        paths["metrics"] = metrics
    refs = {} if copy_assets else asset_refs(paths, list(assets))
    return write_bundle(out_dir, manifest, paths, refs, tar)
