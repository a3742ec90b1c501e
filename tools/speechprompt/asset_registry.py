"""Named pretrained assets: the registry of bundles, built in (GSLM's release) or read from a user's JSON.

A *bundle* (`gslm-hubert100`) names the files one experiment needs (the
HuBERT checkpoint, GSLM's k-means, the unit LM and its dict.txt), each by a
path on a download host, and the Make settings they imply. `asset_store.py`
fetches them into the verified cache.
"""
from __future__ import annotations

import json
import re

from .asset_bundle import GSLM_HOST, Asset, Bundle
from .io import BadInput
from .twist_assets import twist_bundles

FORMAT = "speechprompt-assets/1"
# The acoustic models and k-means of fairseq's examples/textless_nlp/gslm/speech2unit README,
# the unit LMs of its ulm README. Each uLM archive holds DIR/checkpoint_best.pt and DIR/dict.txt.
GSLM_FAMILIES = {
    # GSLM's directory: (about the encoder, encoder checkpoint, uLM archive name for k units, why not runnable here)
    "hubert": ("HuBERT base (LibriSpeech 960 h), layer 6", "hubert/hubert_base_ls960.pt", "hubert{k}_lm", None),
    "cpc": ("modified CPC (Libri-Light 6 kh)", "textless_nlp/gslm/cpc/cpc_big_ll6kh_top_ctc.pt", "cpc{k}_lm",
            "this toolkit has no CPC encoder: quantise with GSLM's quantize_with_kmeans and give UNITS="),
    "w2v2": ("wav2vec 2.0 large (LV-60)", "fairseq/wav2vec/wav2vec_vox_new.pt", "w2v2_{k}_lm",
             "this toolkit has no wav2vec 2.0 encoder: quantise with GSLM's quantize_with_kmeans and give UNITS="),
    "logmel": ("80-bin log-mel filterbank", None, "logmel{k}_lm",
               "GSLM's log-mel k-means was fit on torchaudio fbank of samples in [-1, 1], this toolkit's "
               "log-mel is on Kaldi's 16-bit scale: quantise with GSLM's quantize_with_kmeans and give UNITS="),
}
BUNDLE_NAMES = {"w2v2": "wav2vec"}  # `gslm-w2v2100` would read badly
# GSLM's unit LMs are transformer_lm_big (12 x 1024): the paper's prompt-tuning learning rate.
GSLM_ULM_SETTINGS = {"LR": "0.005"}


def gslm_bundles() -> dict[str, Bundle]:
    bundles = {}
    for family, (about, encoder_ckpt, lm, units_only) in GSLM_FAMILIES.items():
        for k in (50, 100, 200):
            lm_name = lm.format(k=k)
            archive = f"textless_nlp/gslm/{family}/lm_km{k}/{lm_name}.tgz"
            files = {"kmeans": Asset(f"textless_nlp/gslm/{family}/km{k}/km.bin"),
                     "ulm": Asset(archive, f"{lm_name}/checkpoint_best.pt"),
                     "dict": Asset(archive, f"{lm_name}/dict.txt")}
            make = {"K": str(k), "ULM": "{ulm}", "DICT": "{dict}", **GSLM_ULM_SETTINGS}
            if family == "hubert":
                files = {"hubert": Asset(encoder_ckpt), **files}
                make = {"ENCODER": "hubert", "HUBERT": "{hubert}", "LAYER": "6", "KMEANS": "{kmeans}", **make}
            elif encoder_ckpt:
                files = {"encoder": Asset(encoder_ckpt), **files}
            name = f"gslm-{BUNDLE_NAMES.get(family, family)}{k}"
            bundles[name] = Bundle(
                name, f"{about}, k-means {k}, GSLM's unit LM {lm_name} and its dict.txt",
                files, make, units_only=units_only)
    return bundles


def _bad_registry(message: str, path: str):
    return BadInput(f"bad asset registry: {message}", path)


def read_registry(path: str) -> dict[str, Bundle]:
    """A user registry (JSON, docs/assets.md): bundles that add to or replace the built-in ones."""
    try:
        with open(path, encoding="utf-8") as f:
            spec = json.load(f)
    except OSError as error:
        raise BadInput(f"cannot read: {error.strerror}", path) from None
    except json.JSONDecodeError as error:
        raise BadInput(f"not JSON: {error.msg}", f"{path}:{error.lineno}") from None
    if not isinstance(spec, dict) or spec.get("format") != FORMAT:
        raise _bad_registry(f'expected {{"format": "{FORMAT}", "bundles": {{...}}}}', path)
    base_url, pins = spec.get("base_url", GSLM_HOST), spec.get("sha256", {})
    for url, digest in pins.items():
        if not (isinstance(digest, str) and re.fullmatch(r"[0-9a-fA-F]{64}", digest)):
            raise _bad_registry(f"sha256 of {url!r} is not 64 hex digits", path)
    pins = {url: digest.lower() for url, digest in pins.items()}
    bundles = {}
    for name, entry in spec.get("bundles", {}).items():
        try:
            files = {key: Asset(value) if isinstance(value, str) else Asset(value["url"], value.get("member"))
                     for key, value in entry["files"].items()}
            bundle = Bundle(name, entry.get("about", ""), files, dict(entry.get("make", {})), base_url,
                            dict(pins), entry.get("units_only"))
        except (KeyError, TypeError, AttributeError) as error:
            raise _bad_registry(f"bundle {name!r}: {error!r}", path) from None
        for key, value in bundle.make.items():
            for ref in re.findall(r"{(\w+)}", value):
                if ref not in files:
                    raise _bad_registry(f"bundle {name!r}: {key} names {{{ref}}}, not one of its files", path)
        for asset in files.values():
            check_relative(asset.url, f"{path}: bundle {name!r}")
            if asset.member is not None:
                check_relative(asset.member, f"{path}: bundle {name!r}")
        bundles[name] = bundle
    return bundles


def registry(extra: list[str] = ()) -> dict[str, Bundle]:
    bundles = {**gslm_bundles(), **twist_bundles()}
    for path in extra:
        bundles.update(read_registry(path))
    return bundles


def check_relative(path: str, where: str) -> None:
    """A url path or archive member must stay below its root: relative, without `..`."""
    if not path or path.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", path) or "://" in path:
        raise BadInput(f"{path!r} is not a relative path", where)
    if ".." in re.split(r"[/\\]", path):
        raise BadInput(f"{path!r} has a '..' component", where)
