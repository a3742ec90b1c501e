"""sp-assets and ASSETS=: named bundles fetched from a local HTTP server into a verified cache.

Nothing leaves the machine: a threaded http.server on 127.0.0.1, started here,
serves tiny bundles built with fairseq's own classes (a HuBERT, a unit LM in a
.tgz laid out like GSLM's hubert100_lm.tgz) and a joblib k-means like GSLM's
km.bin. It answers Range requests and can cut a response halfway.
"""
import hashlib
import http.server
import io
import json
import os
import signal
import socket
import subprocess
import tarfile
import threading
import time

import joblib
import numpy as np
import pytest
from sklearn.cluster import MiniBatchKMeans

from conftest import BIN, ROOT, sp
from test_make import CLASSES_12
from prompt_fixtures import make_lm
from test_quantize import save_hubert

from speechprompt.checkpoints import load_checkpoint, load_lm


# ------------------------------------------------------------------ the server
class Server:
    """Serves `files` (url path -> bytes) with Range; `cut` paths send half of what was asked, then hang up."""

    def __init__(self, files):
        self.files, self.log, self.cut, self.cut_once = dict(files), [], set(), set()
        self.stall, self.released = set(), threading.Event()  # `stall` paths: half, then silence until released
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                path = self.path.lstrip("/")
                server.log.append((path, self.headers.get("Range")))
                if path not in server.files:
                    self.send_error(404)
                    return
                data = server.files[path]
                start = int(self.headers["Range"][len("bytes="):].rstrip("-")) if self.headers.get("Range") else 0
                if start >= len(data) and start:
                    self.send_error(416)
                    return
                self.send_response(206 if start else 200)
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                body = data[start:]
                if path in server.cut or path in server.cut_once or path in server.stall:
                    server.cut_once.discard(path)
                    body = body[: len(body) // 2]
                self.wfile.write(body)
                if path in server.stall:
                    self.wfile.flush()
                    server.released.wait(60)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def gets(self, path=None):
        return [entry for entry in self.log if path is None or entry[0] == path]

    def close(self):
        self.released.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


# ------------------------------------------------------------- tiny bundles
def tgz(members):
    """A .tgz from (TarInfo fields, bytes or None) pairs, written the way an attacker could."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for fields, data in members:
            info = tarfile.TarInfo(fields.pop("name"))
            for key, value in fields.items():
                setattr(info, key, value)
            info.size = len(data) if data is not None else 0
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def lm_archive(directory, stem, units):
    """A tiny fairseq transformer_lm packed as GSLM packs hubert100_lm: STEM/checkpoint_best.pt, STEM/dict.txt."""
    lm = make_lm(str(directory / stem), units=units, layers=1, dim=16, heads=2, ffn=32)
    files = {f"{stem}/checkpoint_best.pt": open(lm, "rb").read(),
             f"{stem}/dict.txt": (directory / stem / "dict.txt").read_bytes()}
    return tgz([({"name": name}, data) for name, data in files.items()])


def registry(path, bundles, sha256=None):
    spec = {"format": "speechprompt-assets/1", "base_url": "http://127.0.0.1:9/", "bundles": bundles}
    if sha256:
        spec["sha256"] = sha256
    path.write_text(json.dumps(spec))
    return path


TINY = {"about": "a tiny HuBERT, layer 2, k-means 8, a tiny uLM",
        "files": {"hubert": "tiny/hubert.pt", "kmeans": "tiny/km8/km.bin",
                  "ulm": {"url": "tiny/lm_km8/tiny8_lm.tgz", "member": "tiny8_lm/checkpoint_best.pt"},
                  "dict": {"url": "tiny/lm_km8/tiny8_lm.tgz", "member": "tiny8_lm/dict.txt"}},
        "make": {"ENCODER": "hubert", "HUBERT": "{hubert}", "LAYER": "2", "KMEANS": "{kmeans}", "K": "8",
                 "ULM": "{ulm}", "DICT": "{dict}", "LR": "0.005"}}


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("bundle")
    save_hubert(root / "hubert.pt")
    km = MiniBatchKMeans(n_clusters=8, n_init=1, random_state=0).fit(np.random.default_rng(0).normal(size=(64, 32)))
    joblib.dump(km, root / "km.bin")
    return {"tiny/hubert.pt": (root / "hubert.pt").read_bytes(), "tiny/km8/km.bin": (root / "km.bin").read_bytes(),
            "tiny/lm_km8/tiny8_lm.tgz": lm_archive(root, "tiny8_lm", 8)}


@pytest.fixture
def server(tiny_files):
    serving = Server(tiny_files)
    yield serving
    serving.close()


@pytest.fixture
def env(tmp_path, monkeypatch):
    """sp-assets' environment: a fresh cache, the tiny registry; no mirror unless a test gives one."""
    monkeypatch.setenv("SPEECHPROMPT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("SPEECHPROMPT_REGISTRY", str(registry(tmp_path / "registry.json", {"tiny8": TINY})))
    monkeypatch.delenv("SPEECHPROMPT_MIRROR", raising=False)
    return tmp_path / "cache"


def files_in(directory):
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file()) \
        if directory.exists() else []


def one_error_line(result):
    """The one error line, last on stderr; the lines before it can only be progress logs."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[-1].startswith("sp-assets: error: "), result.stderr
    assert all(line.startswith("sp-assets get: ") and "error" not in line for line in lines[:-1]), result.stderr
    return lines[-1]


def sha(data):
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------- list
def test_list_names_the_gslm_bundles_and_urls_says_where_each_file_goes(env):
    names = dict(line.split("\t") for line in sp("assets", "list").stdout.splitlines())
    for family in ["hubert", "cpc", "wav2vec", "logmel"]:
        for k in [50, 100, 200]:
            assert f"gslm-{family}{k}" in names
    assert "HuBERT base" in names["gslm-hubert100"] and "hubert100_lm" in names["gslm-hubert100"]
    assert "tiny8" in names  # the user registry adds its bundles
    rows = [line.split("\t") for line in sp("assets", "urls", "gslm-hubert100").stdout.splitlines()]
    host = "https://dl.fbaipublicfiles.com/"
    assert rows == [[host + p, str(env / p)] for p in [
        "hubert/hubert_base_ls960.pt", "textless_nlp/gslm/hubert/km100/km.bin",
        "textless_nlp/gslm/hubert/lm_km100/hubert100_lm.tgz"]]
    mirrored = sp("assets", "urls", "gslm-cpc50", "--mirror", "http://mirror.example/gslm").stdout
    assert "http://mirror.example/gslm/textless_nlp/gslm/cpc/lm_km50/cpc50_lm.tgz\t" in mirrored


def test_the_cache_follows_xdg_cache_home_without_speechprompt_cache(tmp_path, monkeypatch):
    monkeypatch.delenv("SPEECHPROMPT_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    out = sp("assets", "urls", "gslm-hubert50").stdout
    assert f"\t{tmp_path}/xdg/speechprompt/textless_nlp/gslm/hubert/km50/km.bin" in out


# ---------------------------------------------------------------------- get
def test_get_downloads_verifies_unpacks_and_a_second_get_downloads_nothing(env, server, tiny_files):
    first = sp("assets", "get", "tiny8", "--mirror", server.url)
    paths = dict(line.split("\t") for line in first.stdout.splitlines())
    assert list(paths) == ["hubert", "kmeans", "ulm", "dict"]
    assert paths["hubert"] == str(env / "tiny/hubert.pt")
    assert paths["ulm"] == str(env / "tiny/lm_km8/tiny8_lm/tiny8_lm/checkpoint_best.pt")
    assert open(paths["hubert"], "rb").read() == tiny_files["tiny/hubert.pt"]
    assert "model" in load_checkpoint(paths["hubert"])
    assert joblib.load(paths["kmeans"]).cluster_centers_.shape == (8, 32)
    model, dictionary = load_lm(paths["ulm"], paths["dict"])  # the unpacked uLM loads with fairseq
    assert len(dictionary) == 8 + 4
    # the hashes are recorded beside the files (sha256sum's format); no .part and no archive left
    lock = (env / "assets.lock").read_text().splitlines()
    assert sorted(lock) == sorted(f"{sha(data)}  {path}" for path, data in tiny_files.items())
    assert files_in(env) == sorted(["assets.lock", "tiny/hubert.pt", "tiny/km8/km.bin",
                                    "tiny/lm_km8/tiny8_lm/tiny8_lm/checkpoint_best.pt",
                                    "tiny/lm_km8/tiny8_lm/tiny8_lm/dict.txt"])
    assert sorted(p for p, _ in server.gets()) == sorted(tiny_files)

    requests = len(server.gets())
    again = sp("assets", "get", "tiny8", "--mirror", server.url)
    assert again.stdout == first.stdout and len(server.gets()) == requests
    only = sp("assets", "get", "tiny8", "dict", "--mirror", server.url)
    assert only.stdout == f"dict\t{paths['dict']}\n"


def test_a_cut_download_resumes_with_range_within_a_run_and_across_runs(env, server, tiny_files):
    data = tiny_files["tiny/hubert.pt"]
    server.cut_once.add("tiny/hubert.pt")
    got = sp("assets", "get", "tiny8", "hubert", "--mirror", server.url)
    assert server.gets("tiny/hubert.pt") == [("tiny/hubert.pt", None), ("tiny/hubert.pt", f"bytes={len(data) // 2}-")]
    assert "resuming at byte" in got.stderr
    assert (env / "tiny/hubert.pt").read_bytes() == data

    # a server that always hangs up: the run gives up with one line and keeps the part ...
    km = tiny_files["tiny/km8/km.bin"]
    server.cut.add("tiny/km8/km.bin")
    failed = sp("assets", "get", "tiny8", "kmeans", "--mirror", server.url, check=False)
    line = one_error_line(failed)
    assert f"{server.url}tiny/km8/km.bin: " in line and "run again to resume" in line
    assert not (env / "tiny/km8/km.bin").exists()
    part = env / "tiny/km8/km.bin.part"
    kept = part.stat().st_size
    assert 0 < kept < len(km) and part.read_bytes() == km[:kept]
    # ... and the next run asks only for the rest
    server.cut.clear()
    sp("assets", "get", "tiny8", "kmeans", "--mirror", server.url)
    assert server.gets("tiny/km8/km.bin")[-1] == ("tiny/km8/km.bin", f"bytes={kept}-")
    assert (env / "tiny/km8/km.bin").read_bytes() == km and not part.exists()


def test_a_checksum_mismatch_is_refused_and_leaves_nothing_in_the_cache(env, server, tiny_files, tmp_path):
    wrong = "0" * 64
    given = sp("assets", "get", "tiny8", "kmeans", "--sha256", f"kmeans={wrong}", "--mirror", server.url,
               check=False)
    line = one_error_line(given)
    assert f"{server.url}tiny/km8/km.bin: sha256 mismatch" in line and wrong in line
    assert sha(tiny_files["tiny/km8/km.bin"]) in line
    assert files_in(env) == []
    # a hash pinned in the registry is checked the same way, for an archive too
    pinned = registry(tmp_path / "pinned.json", {"tiny8": TINY}, sha256={"tiny/lm_km8/tiny8_lm.tgz": wrong})
    result = sp("assets", "get", "tiny8", "--registry", pinned, "--mirror", server.url, "ulm", check=False)
    assert "sha256 mismatch" in one_error_line(result) and files_in(env) == []
    # the right hash passes
    right = sha(tiny_files["tiny/km8/km.bin"])
    sp("assets", "get", "tiny8", "kmeans", "--sha256", f"kmeans={right}", "--mirror", server.url)
    # a hash recorded on the first download is verified from then on
    (env / "tiny/km8/km.bin").unlink()
    server.files["tiny/km8/km.bin"] = b"not the same k-means"
    changed = sp("assets", "get", "tiny8", "kmeans", "--mirror", server.url, check=False)
    line = one_error_line(changed)
    assert "sha256 mismatch" in line and f"recorded in {env / 'assets.lock'} {right}" in line
    assert files_in(env) == ["assets.lock"]


@pytest.mark.parametrize("member, why", [
    ({"name": "tiny8_lm/../../evil.txt"}, "'..' component"),
    ({"name": "/tmp/speechprompt-absolute-evil.txt"}, "an absolute path"),
    ({"name": "tiny8_lm/passwd", "type": tarfile.SYMTYPE, "linkname": "../../../../etc/passwd"}, "outside"),
    ({"name": "tiny8_lm/hard", "type": tarfile.LNKTYPE, "linkname": "../outside"}, "outside"),
])
def test_an_archive_with_a_member_escaping_its_directory_is_refused(env, server, tiny_files, member, why):
    good = tarfile.open(fileobj=io.BytesIO(tiny_files["tiny/lm_km8/tiny8_lm.tgz"]))
    members = [({"name": m.name}, good.extractfile(m).read()) for m in good.getmembers()]
    data = None if member.get("type") in (tarfile.SYMTYPE, tarfile.LNKTYPE) else b"gotcha"
    server.files["tiny/lm_km8/tiny8_lm.tgz"] = tgz(members + [(dict(member), data)])
    result = sp("assets", "get", "tiny8", "ulm", "dict", "--mirror", server.url, check=False)
    line = one_error_line(result)
    assert f"{server.url}tiny/lm_km8/tiny8_lm.tgz: refused: member {member['name']!r}" in line and why in line
    assert files_in(env) == []
    assert not os.path.exists("/tmp/speechprompt-absolute-evil.txt") and not (env.parent / "evil.txt").exists()


def test_server_down_gives_one_line_with_the_url_and_a_file_placed_by_hand_is_used(env, tiny_files):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mirror = f"http://127.0.0.1:{port}/"
    result = sp("assets", "get", "tiny8", "kmeans", "--mirror", mirror, check=False)
    line = one_error_line(result)
    assert f"{mirror}tiny/km8/km.bin: cannot download (" in line
    assert f"place the file by hand at {env / 'tiny/km8/km.bin'}" in line
    assert files_in(env) == []
    # offline: the file placed by hand at that path is taken (its hash recorded), nothing is downloaded
    (env / "tiny/km8").mkdir(parents=True)
    (env / "tiny/km8/km.bin").write_bytes(tiny_files["tiny/km8/km.bin"])
    placed = sp("assets", "get", "tiny8", "kmeans", "--mirror", mirror)
    assert placed.stdout == f"kmeans\t{env / 'tiny/km8/km.bin'}\n"
    assert (env / "assets.lock").read_text() == f"{sha(tiny_files['tiny/km8/km.bin'])}  tiny/km8/km.bin\n"
    # an archive placed by hand as it was downloaded is unpacked
    (env / "tiny/lm_km8").mkdir(parents=True)
    (env / "tiny/lm_km8/tiny8_lm.tgz").write_bytes(tiny_files["tiny/lm_km8/tiny8_lm.tgz"])
    unpacked = sp("assets", "get", "tiny8", "ulm", "dict", "--mirror", mirror).stdout
    assert unpacked == f"ulm\t{env}/tiny/lm_km8/tiny8_lm/tiny8_lm/checkpoint_best.pt\n" \
                       f"dict\t{env}/tiny/lm_km8/tiny8_lm/tiny8_lm/dict.txt\n"
    assert not (env / "tiny/lm_km8/tiny8_lm.tgz").exists()


def test_usage_errors_are_one_line(env, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "speechprompt-assets/1", "sha256": {"a/b.pt": "3f5c"}, "bundles": {}}')
    for args, message in [(["nosuch"], "no bundle 'nosuch'"), (["tiny8", "nokey"], "no file 'nokey'"),
                          (["tiny8", "--registry", bad], f"{bad}: bad asset registry: sha256 of 'a/b.pt'")]:
        result = sp("assets", "get", *args, check=False)
        assert message in one_error_line(result)


def test_click_usage_errors_are_one_line_too(env):
    for args, message in [(["get"], "Missing argument 'NAME'"), (["nosuch-command"], "No such command"),
                          (["get", "tiny8", "--sha256", "kmeans=abc"], "--sha256")]:
        result = sp("assets", *args, check=False)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        assert result.stderr.strip().splitlines() == [result.stderr.strip()]
        assert result.stderr.startswith("sp-assets: error: ") and message in result.stderr


def test_sigterm_mid_download_exits_as_every_tool_does_and_the_next_run_resumes(env, server, tiny_files):
    server.stall.add("tiny/km8/km.bin")
    run = subprocess.Popen([str(BIN / "sp-assets"), "get", "tiny8", "kmeans", "--mirror", server.url],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    part = env / "tiny/km8/km.bin.part"
    deadline = time.monotonic() + 60
    while not part.exists() and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert part.exists(), run.stderr.read() if run.poll() is not None else "no .part after 60 s"
    run.send_signal(signal.SIGTERM)
    _, stderr = run.communicate(timeout=60)
    assert run.returncode == 128 + signal.SIGTERM and "Traceback" not in stderr, stderr  # not killed mid-write
    assert not (env / "tiny/km8/km.bin").exists()
    server.stall.clear()
    server.released.set()
    sp("assets", "get", "tiny8", "kmeans", "--mirror", server.url)
    assert (env / "tiny/km8/km.bin").read_bytes() == tiny_files["tiny/km8/km.bin"] and not part.exists()


# --------------------------------------------------------------------- make
def make(*args, env, check=True):
    result = subprocess.run(["make", "--no-print-directory", *map(str, args)], cwd=ROOT, capture_output=True,
                            text=True, env=env)
    if check and result.returncode != 0:
        raise AssertionError(f"make exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture(scope="module")
def speech_bundle(tmp_path_factory, tiny_files):
    """A tiny corpus in Speech Commands' layout and a bundle whose k-means was fit on its tiny-HuBERT frames."""
    root = tmp_path_factory.mktemp("speech")
    corpus = root / "corpus"
    sp("synth", "--seed", 1, "--speakers", 12, corpus)
    sp("manifest", "speech_commands", corpus, "--out-dir", root / "manifest")
    (root / "hubert.pt").write_bytes(tiny_files["tiny/hubert.pt"])
    sp("kmeans", root / "manifest" / "train.tsv", "-o", root / "km.bin", "-k", 24, "--encoder", "hubert",
       "--checkpoint", root / "hubert.pt", "--layer", 2, "--seed", 1, "--threads", 1)
    files = {"tiny/hubert.pt": tiny_files["tiny/hubert.pt"], "tiny/km24/km.bin": (root / "km.bin").read_bytes(),
             "tiny/lm_km24/tiny24_lm.tgz": lm_archive(root, "tiny24_lm", 24)}
    bundle = {"about": "a tiny HuBERT, layer 2, k-means 24, a tiny uLM",
              "files": {"hubert": "tiny/hubert.pt", "kmeans": "tiny/km24/km.bin",
                        "ulm": {"url": "tiny/lm_km24/tiny24_lm.tgz", "member": "tiny24_lm/checkpoint_best.pt"},
                        "dict": {"url": "tiny/lm_km24/tiny24_lm.tgz", "member": "tiny24_lm/dict.txt"}},
              "make": {**TINY["make"], "KMEANS": "{kmeans}", "K": "24"}}
    return corpus, files, registry(root / "registry.json", {"tiny24": bundle})


@pytest.mark.slow
def test_make_with_assets_fetches_the_bundle_shows_its_paths_and_predicts(speech_bundle, tmp_path):
    corpus, files, user_registry = speech_bundle
    server = Server(files)
    try:
        cache = tmp_path / "cache"
        env = dict(os.environ, SPEECHPROMPT_CACHE=str(cache), SPEECHPROMPT_REGISTRY=str(user_registry),
                   PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
        exp = tmp_path / "exp"
        args = ["TASK=SCR", f"DATA={corpus}", f"EXP={exp}", "ASSETS=tiny24", f"ASSETS_MIRROR={server.url}"]
        dry = make("-n", *args, "predict", env=env).stdout
        hubert, km = cache / "tiny/hubert.pt", cache / "tiny/km24/km.bin"
        ulm = cache / "tiny/lm_km24/tiny24_lm/tiny24_lm/checkpoint_best.pt"
        dictionary = ulm.parent / "dict.txt"
        fetch = f".venv/bin/sp-assets get --format make tiny24 --mirror {server.url} -o {exp}/assets/tiny24.mk"
        assert fetch in dry.splitlines()  # the fetch, as a stage
        assert f"sp-quantize --encoder hubert --checkpoint {hubert} --layer 2 --kmeans {km} " in dry
        assert f"sp-binarize --dict {dictionary} " in dry
        assert f"sp-train {exp}/data-bin --base {ulm} --base-dict {dictionary} " in dry and " --lr 0.005 " in dry
        for skipped in ["sp-kmeans", "sp-pretrain", "sp-synth"]:
            assert f"/{skipped} " not in dry
        assert hubert.is_file() and ulm.is_file()  # -n still fetched: the paths it shows are real

        # the command line wins over the bundle, and a file it replaces is not fetched
        own = tmp_path / "own_km.bin"
        own.write_bytes(files["tiny/km24/km.bin"])
        (cache / "tiny/km24/km.bin").unlink()
        requests = len(server.gets())
        mine = make("-n", *args, f"KMEANS={own}", "LR=0.01", "predict", env=env).stdout
        assert f"--kmeans {own} " in mine and " --lr 0.01 " in mine and str(km) not in mine
        assert server.gets()[requests:] == [] and not km.exists()

        metrics = exp / "metrics.json"  # the prompt's predictions, scored; the baselines would only add time
        make(*args, "EPOCHS=2", metrics, env=env)
        assert 0 <= json.loads(metrics.read_text())["accuracy"] <= 1
        predictions = [json.loads(line) for line in (exp / "predictions.jsonl").read_text().splitlines()]
        test_ids = sorted(line.split("\t")[0] for line in (exp / "manifest" / "test.tsv").read_text().splitlines())
        assert sorted(p["id"] for p in predictions) == test_ids
        assert all(p["prediction"] in CLASSES_12 for p in predictions)
        # the bundle's k-means was refetched: the dry run's fragment named it and it was gone
        assert km.read_bytes() == files["tiny/km24/km.bin"]
        assert (exp / ".var" / "HUBERT").read_text().strip() == str(hubert)
        assert make("-q", *args, "EPOCHS=2", metrics, env=env, check=False).returncode == 0
    finally:
        server.close()


def test_make_refuses_audio_for_a_bundle_whose_encoder_is_not_here(server, tmp_path, tiny_files):
    units_only = {"about": "a uLM for units made elsewhere", "files": TINY["files"],
                  "make": {"ULM": "{ulm}", "DICT": "{dict}", "LR": "0.005"}, "units_only": "no such encoder here"}
    env = dict(os.environ, SPEECHPROMPT_CACHE=str(tmp_path / "cache"),
               SPEECHPROMPT_REGISTRY=str(registry(tmp_path / "registry.json", {"elsewhere": units_only})))
    args = ["-n", "TASK=SCR", f"EXP={tmp_path}/exp", "ASSETS=elsewhere", f"ASSETS_MIRROR={server.url}", "predict"]
    refused = make(*args, env=env, check=False)
    assert refused.returncode != 0 and "ASSETS=elsewhere: no such encoder here" in refused.stderr
    assert sorted(p for p, _ in server.gets()) == ["tiny/lm_km8/tiny8_lm.tgz"]  # only what the settings name
    units = tmp_path / "units"
    units.mkdir()
    for split in ["train", "valid", "test"]:
        (units / f"{split}.txt").write_text(f"{split}1|1 2 3|yes\n")
    dry = make(*args[:-1], f"UNITS={units}", "predict", env=env).stdout
    assert f"--base {tmp_path}/cache/tiny/lm_km8/tiny8_lm/tiny8_lm/checkpoint_best.pt " in dry
