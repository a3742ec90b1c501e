"""sp-export and sp-classify: a tiny experiment run through the chain's tools, exported, and its test
audio classified from the bundle (directory and tar, CLI and Python API, log-mel and HuBERT units) must
give the chain's own predictions for every id; a changed part, another format version, undecodable
audio, wrong parts at export: one line each."""
import json
import os
import shutil
import tarfile

import numpy as np
import pytest
import soundfile as sf

from classify_fixtures import CLASSES, LOGMEL, MAX_UNITS, files_below, flip_byte, run_chain, split_files
from conftest import sp
from speechprompt.classifier import Classifier
from speechprompt.io import BadInput
from speechprompt.model_bundle import FORMAT


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    return run_chain(tmp_path_factory.mktemp("logmel"))


@pytest.fixture(scope="module")
def hubert_chain(tmp_path_factory):
    from test_quantize import save_hubert

    root = tmp_path_factory.mktemp("hubert")
    save_hubert(root / "hubert.pt", seed=3)
    return run_chain(root, ("--encoder", "hubert", "--checkpoint", root / "hubert.pt", "--layer", 2),
                     counts={"train": 18, "valid": 6, "test": 9}, epochs=2)


def jsonl(text):
    return [json.loads(line) for line in text.splitlines()]


def one_error_line(result):
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert len(lines) == 1 and lines[0].startswith("sp-classify: error: "), result.stderr
    return lines[0]


def assert_chain_labels(chain, rows, exact_scores=True):
    """Every test id classified once, with the chain's prediction (and its probability)."""
    assert sorted(r["id"] for r in rows) == sorted(chain.predictions)
    for r in rows:
        expected = chain.predictions[r["id"]]
        assert r["label"] == expected["prediction"], r["id"]
        assert r["top_k"][0] == {"label": r["label"], "score": r["score"]}
        if exact_scores:  # the same sentences in the same batches: the same numbers
            assert r["score"] == expected["score"]
        else:
            assert r["score"] == pytest.approx(expected["score"], abs=1e-5)


# ------------------------------------------------------------- the chain's labels
def test_the_bundle_holds_every_part_with_its_sha256_and_the_tar_the_same_files(chain):
    manifest = json.loads((chain.bundle / "bundle.json").read_text())
    assert manifest["format"] == FORMAT and manifest["name"] == "tiny"
    assert manifest["encoder"]["options"] == {"deltas": True, "cmvn": True, "subsample": 2}
    assert manifest["units"] == {"dedup": True, "max_units": MAX_UNITS, "crop": "center"}
    assert sorted(manifest["labels"]) == sorted(CLASSES)
    assert manifest["metrics"]["metric"] == "accuracy" and manifest["metrics"]["n"] == 12
    assert set(manifest["parts"]) == {"prompt", "verbalizer", "kmeans", "ulm", "dict", "metrics"}
    assert (chain.bundle / "ulm.pt").read_bytes() == open(chain.lm, "rb").read()
    with tarfile.open(chain.tar) as tar:
        names = sorted(m.name for m in tar.getmembers() if m.isfile())
        assert names == [f"bundle/{name}" for name in files_below(chain.bundle)]
        assert tar.extractfile("bundle/prompt.pt").read() == (chain.root / "prompt.pt").read_bytes()


def test_sp_classify_over_the_test_manifest_gives_the_chain_predictions_in_input_order(chain):
    result = sp("classify", chain.bundle, chain.manifests["test"], "--device", "cpu", "--threads", 1, "--top-k", 2)
    rows = jsonl(result.stdout)
    assert [r["id"] for r in rows] == [uid for uid, _ in split_files(chain)]  # input order
    assert [r["path"] for r in rows] == [path for _, path in split_files(chain)]
    assert all(len(r["top_k"]) == 2 and r["top_k"][0]["score"] >= r["top_k"][1]["score"] for r in rows)
    assert_chain_labels(chain, rows)
    assert "audio seconds per second" in result.stderr


def test_sp_classify_over_the_test_wav_folder_from_the_tar_gives_the_chain_label_for_every_id(chain):
    rows = jsonl(sp("classify", chain.tar, chain.audio / "test", "--device", "cpu", "--threads", 1).stdout)
    assert [r["id"] for r in rows] == sorted(r["id"] for r in rows)  # a folder's files, sorted
    assert_chain_labels(chain, rows)


def test_paths_on_stdin_and_files_as_arguments_are_classified_in_the_order_given(chain):
    paths = [path for _, path in split_files(chain)][::-1]
    by_stdin = jsonl(sp("classify", chain.tar, "--device", "cpu", "--threads", 1, input="\n".join(paths) + "\n").stdout)
    by_args = jsonl(sp("classify", chain.bundle, *paths[:3], "--device", "cpu", "--threads", 1).stdout)
    assert [r["path"] for r in by_stdin] == paths and [r["id"] for r in by_stdin] == [p[:-4] for p in paths]
    assert by_args == by_stdin[:3]
    chain_label = {path: chain.predictions[uid]["prediction"] for uid, path in split_files(chain)}
    assert all(r["label"] == chain_label[r["path"]] for r in by_stdin)


def test_the_python_api_gives_the_chain_labels_from_paths_and_from_arrays(chain):
    classifier = Classifier.load(chain.tar, device="cpu")
    assert sorted(classifier.labels) == sorted(CLASSES) and classifier.sample_rate == 16000
    files = split_files(chain)
    by_path = classifier.predict([path for _, path in files], ids=[uid for uid, _ in files])
    assert_chain_labels(chain, [json.loads(c.row()) for c in by_path])
    # arrays as soundfile reads them, at their own rates (one is 8 kHz stereo): resampled and mixed down
    waves = [sf.read(path, dtype="float32") for _, path in files]
    assert {rate for _, rate in waves} == {8000, 16000} and any(w.ndim == 2 for w, _ in waves)
    by_array = [classifier.predict([wave], sample_rate=rate, ids=[uid])[0] for (wave, rate), (uid, _) in zip(waves, files)]
    assert_chain_labels(chain, [json.loads(c.row()) for c in by_array], exact_scores=False)  # batches of one
    assert all(c.path is None for c in by_array)
    int16 = (waves[0][0] * 32768).astype(np.int16)
    assert classifier.predict([int16], sample_rate=16000)[0].label == by_array[0].label


def test_hubert_units_give_the_chain_labels_through_the_bundle(hubert_chain):
    manifest = json.loads((hubert_chain.bundle / "bundle.json").read_text())
    assert manifest["encoder"]["name"] == "hubert" and manifest["encoder"]["options"] == {"layer": 2}
    assert manifest["parts"]["hubert"]["file"] == "hubert.pt"
    rows = jsonl(sp("classify", hubert_chain.tar, hubert_chain.manifests["test"], "--device", "cpu", "--threads", 1).stdout)
    assert_chain_labels(hubert_chain, rows)
    classifier = Classifier.load(hubert_chain.bundle, device="cpu")
    files = split_files(hubert_chain)
    results = classifier.predict([path for _, path in files], ids=[uid for uid, _ in files])
    assert_chain_labels(hubert_chain, [json.loads(c.row()) for c in results])


def test_exporting_again_writes_the_same_tar_bytes_and_replaces_the_bundle(chain, tmp_path):
    out = tmp_path / "bundle"
    out.mkdir()
    (out / "bundle.json").write_text("{}")  # an older bundle there: replaced
    args = ["--prompt", chain.root / "prompt.pt", "--verbalizer", chain.root / "verbalizer.json", "--kmeans", chain.km,
            *LOGMEL, "--max-units", MAX_UNITS, "--metrics", chain.root / "metrics.json", "--name", "tiny"]
    sp("export", *args, "-o", out, "--tar", tmp_path / "again.tar")
    assert (tmp_path / "again.tar").read_bytes() == chain.tar.read_bytes()
    assert files_below(out) == files_below(chain.bundle)


# ------------------------------------------------------------------ bad input
def copy_bundle(chain, tmp_path):
    return shutil.copytree(chain.bundle, tmp_path / "bundle")


def test_one_changed_byte_of_the_prompt_is_refused_in_one_line_naming_it(chain, tmp_path):
    bundle = copy_bundle(chain, tmp_path)
    flip_byte(bundle / "prompt.pt")
    line = one_error_line(sp("classify", bundle, split_files(chain)[0][1], check=False))
    assert "refused: part 'prompt' (prompt.pt) changed" in line
    with tarfile.open(tmp_path / "tampered.tar", "w") as tar:
        tar.add(bundle, "bundle")
    assert "part 'prompt' (prompt.pt) changed" in one_error_line(
        sp("classify", tmp_path / "tampered.tar", split_files(chain)[0][1], check=False))
    with pytest.raises(BadInput, match="part 'prompt'"):
        Classifier.load(bundle, device="cpu")


def test_a_bundle_of_another_format_version_is_refused_in_one_line(chain, tmp_path):
    bundle = copy_bundle(chain, tmp_path)
    manifest = json.loads((bundle / "bundle.json").read_text())
    (bundle / "bundle.json").write_text(json.dumps({**manifest, "format": "speechprompt-bundle/2"}))
    line = one_error_line(sp("classify", bundle, split_files(chain)[0][1], check=False))
    assert "bundle format 'speechprompt-bundle/2'" in line and FORMAT in line


def test_a_missing_part_and_a_directory_that_is_no_bundle_are_refused_in_one_line(chain, tmp_path):
    bundle = copy_bundle(chain, tmp_path)
    (bundle / "ulm.pt").unlink()
    assert "part 'ulm' (ulm.pt) is missing" in one_error_line(sp("classify", bundle, split_files(chain)[0][1], check=False))
    assert "no bundle.json" in one_error_line(sp("classify", chain.audio, split_files(chain)[0][1], check=False))


def test_an_undecodable_audio_file_is_one_line_or_a_counted_skip(chain, tmp_path):
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunk" + bytes(range(200)))
    good = split_files(chain)[0][1]
    line = one_error_line(sp("classify", chain.bundle, good, bad, "--device", "cpu", check=False))
    assert f"unreadable audio {bad}" in line
    skipped = sp("classify", chain.bundle, good, bad, "--skip-bad", "--device", "cpu", "--threads", 1)
    assert [r["path"] for r in jsonl(skipped.stdout)] == [good]
    assert "skipped 1 bad inputs" in skipped.stderr
    stdin = sp("classify", chain.bundle, "--device", "cpu", input=f"{good}\n{tmp_path}/none.wav\n", check=False)
    assert f"<stdin>:2: no such audio file {tmp_path}/none.wav" in stdin.stderr.strip().splitlines()[-1]
    assert stdin.returncode == 1 and "Traceback" not in stdin.stderr
    with pytest.raises(BadInput, match="unreadable audio"):
        Classifier.load(chain.bundle, device="cpu").predict([good, str(bad)])


def test_duplicate_ids_are_refused_so_no_output_line_can_be_misread(chain, tmp_path):
    good = split_files(chain)[0][1]
    line = one_error_line(sp("classify", chain.bundle, good, good, check=False))
    assert "duplicate id" in line


def test_export_refuses_encoder_options_other_than_the_kmeans_was_fitted_with(chain, tmp_path):
    args = ["--prompt", chain.root / "prompt.pt", "--verbalizer", chain.root / "verbalizer.json", "--kmeans", chain.km]
    result = sp("export", *args, "--encoder", "logmel", "--deltas", "-o", tmp_path / "b", check=False)
    assert result.returncode == 1 and "fitted on" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    other = tmp_path / "verbalizer.json"
    spec = json.loads((chain.root / "verbalizer.json").read_text())
    other.write_text(json.dumps({**spec, "seed": 99}))
    result = sp("export", *args, *LOGMEL, "--verbalizer", other, "-o", tmp_path / "b", check=False)
    assert "not the verbalizer the prompt was trained with" in result.stderr
    result = sp("export", *args, *LOGMEL, "--kmeans-rate", 25, "-o", tmp_path / "b", check=False)
    assert "refused: a k-means of 25-frame/s features, but the logmel encoder gives 50 frames/s" in result.stderr
    result = sp("export", *args, "--encoder", "hf-hubert", "--checkpoint", tmp_path, "-o", tmp_path / "b", check=False)
    assert result.returncode == 1 and "the hf-hubert encoder reads a model directory" in result.stderr
    not_a_bundle = tmp_path / "mine"
    not_a_bundle.mkdir()
    (not_a_bundle / "notes.txt").write_text("keep me")
    result = sp("export", *args, *LOGMEL, "-o", not_a_bundle, check=False)
    assert "is not a model bundle" in result.stderr and (not_a_bundle / "notes.txt").exists()
    assert not (tmp_path / "b").exists()


# ------------------------------------------------------------------ assets
def test_parts_from_the_asset_cache_are_named_not_copied_and_verified_on_load(chain, tmp_path, monkeypatch):
    cache, models = tmp_path / "cache", tmp_path / "cache" / "models"
    models.mkdir(parents=True)
    shutil.copy(chain.lm, models / "ulm.pt")
    shutil.copy(os.path.join(os.path.dirname(chain.lm), "dict.txt"), models / "dict.txt")
    registry = tmp_path / "registry.json"
    registry.write_text(json.dumps({"format": "speechprompt-assets/1", "base_url": "http://127.0.0.1:9/",
                                    "bundles": {"tiny-ulm": {"files": {"ulm": "models/ulm.pt",
                                                                       "dict": "models/dict.txt"}}}}))
    monkeypatch.setenv("SPEECHPROMPT_CACHE", str(cache))
    monkeypatch.setenv("SPEECHPROMPT_REGISTRY", str(registry))
    sp("assets", "get", "tiny-ulm")  # the files placed by hand: verified and recorded, nothing downloaded
    out = tmp_path / "bundle"
    sp("export", "--prompt", chain.root / "prompt.pt", "--verbalizer", chain.root / "verbalizer.json",
       "--kmeans", chain.km, *LOGMEL, "--max-units", MAX_UNITS, "--base", models / "ulm.pt",
       "--base-dict", models / "dict.txt", "--assets", "tiny-ulm", "-o", out)
    parts = json.loads((out / "bundle.json").read_text())["parts"]
    assert parts["ulm"]["asset"] == {"bundle": "tiny-ulm", "key": "ulm", "url": "models/ulm.pt", "member": None,
                                     "base_url": "http://127.0.0.1:9/"}
    assert files_below(out) == ["bundle.json", "kmeans.bin", "prompt.pt", "verbalizer.json"]
    rows = jsonl(sp("classify", out, chain.manifests["test"], "--device", "cpu", "--threads", 1).stdout)
    assert_chain_labels(chain, rows)
    flip_byte(models / "ulm.pt")
    line = one_error_line(sp("classify", out, split_files(chain)[0][1], check=False))
    assert "part 'ulm' (asset tiny-ulm ulm" in line and "changed" in line
    (models / "ulm.pt").unlink()  # not in the cache, and the host cannot be reached: one line, naming where
    result = sp("classify", out, split_files(chain)[0][1], check=False)
    line = result.stderr.strip().splitlines()[-1]  # after the log line `fetching URL`
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert line.startswith("sp-classify: error: http://127.0.0.1:9/models/ulm.pt: cannot download")


# ------------------------------------------------------------------ through Make
@pytest.mark.slow
def test_make_export_bundles_the_tiny_experiment_and_classifying_its_test_audio_gives_its_predictions(
        tmp_path_factory):
    from test_make import TINY, commands, copy_tree, make

    tree = copy_tree(tmp_path_factory.mktemp("tree"))
    exp = tmp_path_factory.mktemp("make") / "exp"
    args = ["TASK=SCR", f"EXP={exp}", "SYNTH_SPEAKERS=12", *TINY]
    make(tree, *args, "predict", "export")
    predictions = {r["id"]: r["prediction"] for r in jsonl((exp / "predictions.jsonl").read_text())}
    # every id of the test split, `_silence_` segments of the noise files included, through the manifest
    rows = jsonl(sp("classify", exp / "bundle.tar", exp / "manifest" / "test.tsv", "--device", "cpu").stdout)
    assert {r["id"]: r["label"] for r in rows} == predictions
    # the test split's WAV files, found in the corpus folder (its ids are sp-manifest's)
    from_folder = {r["id"]: r["label"] for r in jsonl(sp("classify", exp / "bundle", exp / "corpus",
                                                         "--device", "cpu").stdout)}
    words = {uid for uid in predictions if not uid.startswith("_silence_/")}
    assert words and {uid: from_folder[uid] for uid in words} == {uid: predictions[uid] for uid in words}
    # the Python API, from the tar, on the same files
    manifest = [line.split("\t") for line in (exp / "manifest" / "test.tsv").read_text().splitlines()]
    whole = [(row[0], row[1]) for row in manifest if row[0] in words]
    results = Classifier.load(exp / "bundle.tar", device="cpu").predict([p for _, p in whole], ids=[u for u, _ in whole])
    assert {c.id: c.label for c in results} == {uid: predictions[uid] for uid in words}
    # a stage like the others: up to date, rebuilt when a part changes
    assert make(tree, "-q", *args, "export", check=False).returncode == 0
    os.utime(exp / "prompt.pt")
    assert set(commands(make(tree, "-n", *args, "export").stdout)) == {"sp-sample", "sp-score", "sp-export"}
    assert "sp-export" in commands(make(tree, "-n", *args, "CROP=head", "export").stdout)
