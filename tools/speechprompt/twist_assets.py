"""TWIST's bundles for sp-assets (Hassid et al., 2023): mHuBERT-base-25Hz, its 500-unit k-means, a TWIST LM.

    sp-assets get twist-350m          # encoder (transformers HubertModel), k-means, TWIST-350M
    make TASK=SCR ASSETS=twist-350m predict

Where the files are, as TWIST's release publishes them:
- the encoder, in transformers' HubertModel format: the Hugging Face hub's `slprl/mhubert-base-25hz`
  (converted from textlesslib's fairseq checkpoint; config.json, model.safetensors,
  preprocessor_config.json), at a fixed revision;
- the k-means (a joblib pickle of a scikit-learn KMeans, 500 centres over layer 11, read by the
  restricted unpickler) and the LMs (a zip of a save_pretrained directory whose config.json holds
  TWIST's `offset`) from the host textlesslib's checkpoint manager and examples/twist download from.
  The k-means' sha256 is textlesslib's; the others are recorded on first fetch (assets.lock).

twist-7b is LLaMA-7B-shaped (6.5 B parameters, 24 GiB of fp32 weights): it needs a GPU with 40 GB or more;
on a smaller machine the hf backbone refuses it from its config before loading.
"""
from __future__ import annotations

from .asset_bundle import GSLM_HOST, Asset, Bundle

HF_HOST = "https://huggingface.co/"
MHUBERT = "slprl/mhubert-base-25hz/resolve/e650040c497987a094e5474763ceca241d6d410a/"
KMEANS = "textless_nlp/twist/speech_tokenizer/mhubert_base_25hz_cp_mls_cv_sp_fisher_L11_km500.bin"
PINNED = {KMEANS: "03cc04a9c24fec4285e73e709c485756d8f116aa8e724eac555de6a7cf8d28ad"}  # textlesslib's manager
# bundle name: (archive stem on the host, what it is)
LMS = {
    "twist-350m": ("TWIST-350M", "TWIST-350M (OPT-350M warm start, 24 x 1024)"),
    "twist-1.3b": ("TWIST-1.3B", "TWIST-1.3B (OPT-1.3B warm start, 24 x 2048)"),
    "twist-7b": ("TWIST-7B", "TWIST-7B (LLaMA-7B warm start, 32 x 4096; needs a GPU of 40 GB or more)"),
}


def twist_bundles() -> dict[str, Bundle]:
    bundles = {}
    for name, (stem, about) in LMS.items():
        encoder = {key: Asset(MHUBERT + file) for key, file in
                   (("hubert", "config.json"), ("hubert_weights", "model.safetensors"),
                    ("hubert_preprocessor", "preprocessor_config.json"))}
        files = {**encoder, "kmeans": Asset(KMEANS), "ulm": Asset(f"textless_nlp/twist/lms/{stem}.zip", "config.json")}
        make = {"ENCODER": "hf-hubert", "HUBERT": "{hubert}", "HUBERT_FILES": "{hubert_weights} {hubert_preprocessor}",
                "LAYER": "11", "KMEANS": "{kmeans}", "KMEANS_RATE": "25", "K": "500", "ULM": "{ulm}",
                "BACKBONE": "hf"}
        bundles[name] = Bundle(name, f"mHuBERT-base-25Hz layer 11 (transformers), k-means 500, {about}", files, make,
                               GSLM_HOST, dict(PINNED), hosts={a.url: HF_HOST for a in encoder.values()})
    return bundles
