"""TWIST's bundles (twist_assets.py): fetched from a local server on 127.0.0.1 laid out like the real hosts.

The server holds a tiny transformers HubertModel where slprl/mhubert-base-25hz's files go, a tiny joblib
k-means where textlesslib's km500 goes, and a zip of a tiny OPT save_pretrained directory (config.json with
TWIST's `offset`) where TWIST-350M.zip goes. Skipped without `transformers`.
"""
import io
import os
import zipfile

import joblib
import numpy as np
import pytest
from sklearn.cluster import KMeans

pytest.importorskip("transformers", reason="TWIST's bundles are read by the optional `transformers`")

from conftest import BIN, ROOT, sp  # noqa: E402
from hf_fixtures import make_hf_lm  # noqa: E402
from test_assets import Server, files_in, make, one_error_line, sha  # noqa: E402
from test_hf_encoder import save_hf_hubert  # noqa: E402
from speechprompt import encoders, twist_assets  # noqa: E402
from speechprompt.prompting import backbones  # noqa: E402


def zipped(directory, extra=()):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in sorted(os.listdir(directory)):
            archive.write(os.path.join(directory, name), name)
        for name, data in extra:
            archive.writestr(name, data)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def twist_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("twist")
    hubert = save_hf_hubert(root / "mhubert")
    (hubert / "preprocessor_config.json").write_text('{"do_normalize": false, "sampling_rate": 16000}')
    km = root / "km.bin"
    joblib.dump(KMeans(n_clusters=20, n_init=1, random_state=0).fit(np.random.default_rng(0).normal(size=(64, 16))), km)
    lm = make_hf_lm(root / "twist", "opt", units=20, proj_dim=16, pre_norm=False)  # TWIST-350M's layout, tiny
    files = {twist_assets.MHUBERT + name: (hubert / name).read_bytes()
             for name in ("config.json", "model.safetensors", "preprocessor_config.json")}
    files[twist_assets.KMEANS] = km.read_bytes()
    files["textless_nlp/twist/lms/TWIST-350M.zip"] = zipped(lm)
    return files


@pytest.fixture
def served(twist_files, tmp_path, monkeypatch):
    monkeypatch.setenv("SPEECHPROMPT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("SPEECHPROMPT_REGISTRY", raising=False)
    monkeypatch.delenv("SPEECHPROMPT_MIRROR", raising=False)
    server = Server(twist_files)
    yield server, tmp_path / "cache"
    server.close()


def test_the_twist_bundles_are_listed_and_their_urls_name_both_hosts():
    listed = sp("assets", "list").stdout
    assert all(f"twist-{size}\t" in listed for size in ("350m", "1.3b", "7b")) and "40 GB" in listed
    urls = [line.split("\t")[0] for line in sp("assets", "urls", "twist-350m").stdout.splitlines()]
    assert "https://huggingface.co/" + twist_assets.MHUBERT + "model.safetensors" in urls
    assert "https://dl.fbaipublicfiles.com/" + twist_assets.KMEANS in urls
    assert "https://dl.fbaipublicfiles.com/textless_nlp/twist/lms/TWIST-350M.zip" in urls


def test_a_kmeans_whose_sha256_is_not_textlesslibs_is_refused_in_one_line(served, twist_files):
    server, cache = served
    result = sp("assets", "get", "twist-350m", "kmeans", "--mirror", server.url, check=False)
    line = one_error_line(result)
    assert f"{server.url}{twist_assets.KMEANS}: sha256 mismatch" in line
    assert sha(twist_files[twist_assets.KMEANS]) in line and twist_assets.PINNED[twist_assets.KMEANS] in line
    assert files_in(cache) == []


def test_the_bundle_unzips_the_lm_and_its_files_load(served):
    server, cache = served
    out = sp("assets", "get", "twist-350m", "--skip", "kmeans", "--mirror", server.url).stdout
    paths = dict(line.split("\t") for line in out.splitlines())
    assert set(paths) == {"hubert", "hubert_weights", "hubert_preprocessor", "ulm"}
    assert paths["ulm"] == str(cache / "textless_nlp/twist/lms/TWIST-350M/config.json")
    backbone = backbones.load("hf", paths["ulm"])
    assert backbone.vocab.index("19") == 4 + 19 and backbone.kind == "hf"
    encoder = encoders.build("hf-hubert", __import__("torch").device("cpu"), checkpoint=paths["hubert"], layer=2)
    assert encoder.hop == 25
    assert "textless_nlp/twist/lms/TWIST-350M.zip" not in files_in(cache)  # unpacked, then removed


def test_a_zip_member_escaping_its_directory_is_refused(served, twist_files, tmp_path):
    server, cache = served
    lm = make_hf_lm(tmp_path / "lm", "opt")
    server.files["textless_nlp/twist/lms/TWIST-350M.zip"] = zipped(lm, [("../../evil.txt", b"gotcha")])
    line = one_error_line(sp("assets", "get", "twist-350m", "ulm", "--mirror", server.url, check=False))
    assert "refused: member '../../evil.txt' is a '..' component; nothing unpacked" in line
    assert not (tmp_path / "evil.txt").exists() and not (cache / "textless_nlp/twist/lms/TWIST-350M").exists()


def test_make_with_assets_twist_runs_the_hf_encoder_and_backbone(served, tmp_path, twist_files):
    server, cache = served
    own = tmp_path / "own_km.bin"  # the command line's k-means wins: the bundle's is not fetched
    own.write_bytes(twist_files[twist_assets.KMEANS])
    env = dict(os.environ, SPEECHPROMPT_CACHE=str(cache), PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
    exp = tmp_path / "exp"
    dry = make("-n", "TASK=SCR", f"EXP={exp}", "ASSETS=twist-350m", f"ASSETS_MIRROR={server.url}", f"KMEANS={own}",
               "predict", env=env).stdout
    hubert = cache / twist_assets.MHUBERT / "config.json"
    ulm = cache / "textless_nlp/twist/lms/TWIST-350M/config.json"
    assert f"sp-quantize --encoder hf-hubert --checkpoint {hubert} --layer 11 --kmeans-rate 25 --kmeans {own} " in dry
    assert f"sp-train {exp}/data-bin --base {ulm} --backbone hf " in dry
    assert "/sp-pretrain " not in dry and "/sp-kmeans " not in dry
    assert (cache / twist_assets.MHUBERT / "model.safetensors").is_file() and ulm.is_file()
    assert not (cache / twist_assets.KMEANS).exists()
