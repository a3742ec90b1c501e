"""Hostile input: one line `sp-x: error: ...` (or a counted skip), no traceback, nothing left at `-o`.

Every case runs a real `sp-*` command on tiny fixtures built here: a random
fairseq unit LM, a data-bin, an untrained prompt checkpoint, wavs, k-means
files, and crafted pickles whose loading would create a marker file.
"""
from __future__ import annotations

import fractions
import json
import os
import pickle
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import joblib
import numpy as np
import pytest
import soundfile as sf
import torch

from conftest import BIN, shell, sp
from prompt_fixtures import make_databin, make_lm, toy_rows, write_verbalizer
from speechprompt.checkpoints import json_identity
from speechprompt.io import file_hash

RATE = 16000


# ------------------------------------------------------------------ fixtures
def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def prompt_checkpoint(path: Path, lm: str, labels=("1", "2", "3"), verbalizer: str | None = None) -> str:
    """A prompt checkpoint as sp-train writes one, untrained (fresh prompts): enough to decode with."""
    config = dict(prompt_length=2, deep=True, input_prompt=True, separator=True, num_classes=0, finetune=False,
                  lr=0.01, lr_schedule="fixed", batch_size=8, seed=1)
    torch.save({"prompt": {}, "config": config, "labels": list(labels), "best": None,
                "base": {"path": lm, "sha256": file_hash(lm), "dict": None},
                "verbalizer": {"path": verbalizer, "sha256": json_identity(verbalizer)} if verbalizer else None},
               path)
    return str(path)


def logmel_spec() -> dict:
    from speechprompt.encoders import build

    return build("logmel", torch.device("cpu")).spec()


@pytest.fixture(scope="module")
def kit(tmp_path_factory):
    from speechprompt.kmeans_model import save_kmeans

    root = tmp_path_factory.mktemp("kit")
    lm = make_lm(str(root / "lm"))  # 128 positions, dict.txt beside it
    rows = toy_rows(24, 1)
    bad_rows = toy_rows(24, 1)
    bad_rows[3] = (bad_rows[3][0], bad_rows[3][1], None)  # no `<s>`
    k = SimpleNamespace(root=root, lm=lm, lm_dict=str(root / "lm" / "dict.txt"))
    k.data = make_databin(str(root / "bin"), {"train": rows, "valid": toy_rows(8, 2), "test": toy_rows(6, 3)})
    k.bad_data = make_databin(str(root / "badbin"), {"train": bad_rows, "valid": toy_rows(8, 2)})
    k.long_data = make_databin(str(root / "longbin"), {"test": [("long", [5] * 100_000, "yes"),
                                                                 ("short", [5, 6, 1], "no")]})
    k.vb = write_verbalizer(str(root / "vb.json"))
    k.other_vb = write_verbalizer(str(root / "other.json"), {"yes": "4", "no": "5", "up": "6"})
    k.prompt = prompt_checkpoint(root / "prompt.pt", lm, verbalizer=k.vb)
    k.unrecorded_prompt = prompt_checkpoint(root / "unrecorded.pt", lm)
    k.garbage = root / "garbage.pt"
    k.garbage.write_bytes(bytes(range(256)) * 40)
    k.refused = root / "refused.pt"  # a torch checkpoint holding a class off the allowlist
    torch.save({"model": {}, "cfg": None, "odd": fractions.Fraction(1, 3)}, k.refused)
    k.wav = root / "clip.wav"
    sf.write(k.wav, 0.1 * np.sin(np.arange(RATE // 2) / 7.0), RATE)
    k.manifest = write(root / "good.tsv", f"a\t{k.wav}\t0\t{RATE // 2}\tyes\nb\t{k.wav}\t100\t4000\tno\n")
    k.missing_audio = write(root / "missing.tsv", f"a\t{root}/nope.wav\t0\t100\tyes\n")
    k.empty = write(root / "empty.tsv", "")
    k.km = root / "km.bin"
    save_kmeans(str(k.km), np.random.default_rng(0).standard_normal((4, 80)).astype(np.float32), logmel_spec())
    units = "".join(f"{uid}\t{' '.join(map(str, u))}\t{label}\n" for uid, u, label in rows)
    k.units = write(root / "train.units", units)
    k.long_units = write(root / "long.units", "long\t" + " ".join(["5"] * 100_000) + "\tyes\n")
    k.predictions = write(root / "p.jsonl", '{"id": "a", "label": "yes", "prediction": "yes"}\n')
    return k


# --------------------------------------------------------------------- cases
# name -> builder(kit, tmp, out) -> (tool, args, exit status, fragment of the error line or of the skip report)
CASES = {}


def case(name):
    def add(builder):
        CASES[name] = builder
        return builder
    return add


def units_file(t, text):
    return write(t / "in" / "units.tsv", text)


# Why 3, the readers
@case("units-superscript-two")
def _(k, t, out):
    return "dedup", [units_file(t, "a\t1 \u00b2 3\tyes\n"), "-o", out], 1, "unit '\u00b2' is not a non-negative integer"


@case("units-arabic-indic-digit")
def _(k, t, out):
    return "lmdata", [units_file(t, "a\t1 \u0663\tyes\n"), "-o", out], 1, "unit '\u0663' is not a non-negative integer"


@case("durations-count-differs")
def _(k, t, out):
    return "dedup", [units_file(t, "a\t1 2 3\tyes\t4 5\n"), "-o", out], 1, "2 durations for 3 units"


@case("label-then-tab-digits")
def _(k, t, out):
    return "lmdata", [units_file(t, "a\t1 2\tyes\t7\n"), "-o", out], 1, "1 durations for 2 units"


@case("duration-zero")
def _(k, t, out):
    return "dedup", [units_file(t, "a\t1 2\tyes\t0 3\n"), "-o", out], 1, "a duration of 0"


@case("manifest-superscript-offset")
def _(k, t, out):
    manifest = write(t / "in" / "m.tsv", f"a\t{k.wav}\t\u00b2\t10\tyes\n")
    return "quantize", [manifest, "--kmeans", k.km, "-o", out], 1, "offset and num_samples must be non-negative"


@case("binarize-superscript-token")
def _(k, t, out):
    lm_data = write(t / "in" / "train.lm", "a\t1 \u00b2 <s> 2\n")
    return "binarize", ["--out", out, f"train={lm_data}"], 1, f"{lm_data}:1: token '\u00b2' is not a unit"


# Why 4
for _tool in ("quantize", "kmeans", "train", "sample", "baseline"):
    @case(f"device-gpu-{_tool}")
    def _(k, t, out, tool=_tool):
        args = {"quantize": [k.manifest, "--kmeans", k.km], "kmeans": [k.manifest],
                "train": [k.data, "--base", k.lm], "sample": [k.data, "--prompt", k.prompt],
                "baseline": [k.units, k.units, "--features", "ulm-states", "--ulm", k.lm]}[tool]
        return tool, [*args, "--device", "gpu", "-o", out], 2, "--device gpu: expected auto, cpu, cuda or cuda:N"


@case("kmeans-empty-manifest")
def _(k, t, out):
    return "kmeans", [k.empty, "-o", out], 1, "no frames to fit on"


@case("kmeans-every-row-skipped")
def _(k, t, out):
    return "kmeans", [k.missing_audio, "--skip-bad", "-o", out], 1, "no frames to fit on"


@case("baseline-empty-test-set")
def _(k, t, out):
    return "baseline", [k.units, k.empty, "-o", out], 1, f"{k.empty}: no rows"


@case("baseline-empty-train-set")
def _(k, t, out):
    return "baseline", [k.empty, k.units, "-o", out], 1, f"{k.empty}: no rows"


@case("baseline-every-test-row-skipped")
def _(k, t, out):
    return "baseline", [k.units, units_file(t, "x\t1 \u00b2\tyes\n"), "--skip-bad", "-o", out], 1, "no rows"


def predictions(t, *records):
    return write(t / "in" / "p.jsonl", "".join(r + "\n" for r in records))


@case("score-non-string-label")
def _(k, t, out):
    return "score", [predictions(t, '{"id": "a", "label": 3, "prediction": "3"}'), "-o", out], 1, \
        ":1: 'label' must be a string or null, not int"


@case("score-mixed-prediction-types")
def _(k, t, out):
    p = predictions(t, '{"id": "a", "label": "yes", "prediction": "yes"}',
                    '{"id": "b", "label": "no", "prediction": ["no"]}')
    return "score", [p, "-o", out], 1, ":2: 'prediction' must be a string or null, not list"


@case("score-nan-scores")
def _(k, t, out):
    p = predictions(t, '{"id": "a", "label": "yes", "prediction": "yes", "scores": {"yes": NaN, "no": 0.1}}')
    return "score", [p, "-o", out], 1, ":1: 'scores' must map labels to finite numbers"


@case("score-nan-scores-skip-bad-all")
def _(k, t, out):
    p = predictions(t, '{"id": "a", "label": "yes", "prediction": "yes", "scores": {"yes": NaN, "no": 0.1}}')
    return "score", [p, "--skip-bad", "-o", out], 1, "no labelled records to score"


@case("score-nan-scores-skip-bad-counted")
def _(k, t, out):
    p = predictions(t, '{"id": "a", "label": "yes", "prediction": "yes", "scores": {"yes": NaN, "no": 0.1}}',
                    '{"id": "b", "label": "no", "prediction": "no", "scores": {"yes": 0.2, "no": 0.8}}')
    return "score", [p, "--skip-bad", "-o", out], 0, "skipped 1 bad records"


OUTPUT_DIR_ARGS = {  # each would fail later, or run long, were -o not checked first
    "dedup": lambda k: [k.units], "lmdata": lambda k: [k.units], "score": lambda k: [k.predictions],
    "quantize": lambda k: [k.manifest, "--kmeans", k.root / "no-such-km.bin"], "kmeans": lambda k: [k.manifest],
    "train": lambda k: [k.data, "--base", k.lm], "sample": lambda k: [k.data, "--prompt", k.prompt],
    "baseline": lambda k: [k.units, k.units], "manifest": lambda k: ["folders", k.root / "nowhere", "--split", "train"],
    "verbalize": lambda k: ["fit", k.units],
}
for _tool in OUTPUT_DIR_ARGS:
    @case(f"output-is-a-directory-{_tool}")
    def _(k, t, out, tool=_tool):
        out.mkdir()
        return tool, [*OUTPUT_DIR_ARGS[tool](k), "-o", out], 1, f"{out}: is a directory, not an output file"


@case("output-empty-path")
def _(k, t, out):
    return "dedup", [k.units, "-o", ""], 1, "the output path is empty"


@case("output-below-a-file")
def _(k, t, out):
    return "dedup", [k.units, "-o", k.units / "x.tsv"], 1, f"cannot write: {k.units} is not a directory"


for _tool, _option in (("train", "--base"), ("sample", "--prompt"), ("baseline", "--ulm")):
    for _what in ("garbage", "refused"):
        @case(f"{_what}-checkpoint-{_tool}")
        def _(k, t, out, tool=_tool, option=_option, what=_what):
            bad = getattr(k, what)
            args = {"train": [k.data, "--base-dict", k.lm_dict], "sample": [k.data],
                    "baseline": [k.units, k.units, "--features", "ulm-states", "--ulm-dict", k.lm_dict]}[tool]
            detail = "fractions.Fraction" if what == "refused" else ""
            return tool, [*args, option, bad, "-o", out, "--device", "cpu"], 1, f"{bad}: refused: " if not detail \
                else detail


@case("ulm-checkpoint-as-prompt")
def _(k, t, out):
    return "sample", [k.data, "--prompt", k.lm, "-o", out, "--device", "cpu"], 1, \
        f"{k.lm}: refused: not a prompt checkpoint from sp-train"


@case("prompt-checkpoint-as-base")
def _(k, t, out):
    return "train", [k.data, "--base", k.prompt, "--base-dict", k.lm_dict, "-o", out, "--device", "cpu"], 1, \
        f"{k.prompt}: refused: a prompt checkpoint from sp-train, not a unit LM"


@case("sample-100k-unit-line")
def _(k, t, out):
    return "sample", [k.long_data, "--prompt", k.prompt, "-o", out, "--device", "cpu"], 1, \
        "100000 units + 1 label tokens + 2 do not fit the uLM's 128 positions"


@case("sample-100k-unit-line-skip-bad")
def _(k, t, out):
    return "sample", [k.long_data, "--prompt", k.prompt, "--skip-bad", "-o", out, "--device", "cpu"], 0, \
        "skipped 1 bad sentences"


@case("baseline-ulm-states-100k-unit-line")
def _(k, t, out):
    return "baseline", [k.units, k.long_units, "--features", "ulm-states", "--ulm", k.lm, "-o", out,
                        "--device", "cpu"], 1, f"{k.long_units}:1: 100000 units, more than the uLM's"


# Why 5
@case("train-skip-bad-reports-its-count")
def _(k, t, out):
    return "train", [k.bad_data, "--base", k.lm, "--skip-bad", "--max-epoch", 1, "--batch-size", 8, "-o", out,
                     "--device", "cpu"], 0, "train: skipped 1 bad sentences"


@case("train-failure-removes-its-work-dir")
def _(k, t, out):
    return "train", [k.bad_data, "--base", k.lm, "--max-epoch", 1, "-o", out, "--device", "cpu"], 1, \
        f"{k.bad_data}/train:4 (utt0003): expected 'units <s> label'"


@case("audio-file-missing")
def _(k, t, out):
    return "quantize", [k.missing_audio, "--kmeans", k.km, "-o", out], 1, f"{k.missing_audio}:1: no such audio file"


@case("audio-path-is-a-directory")
def _(k, t, out):
    manifest = write(t / "in" / "m.tsv", f"a\t{t}\t0\t100\tyes\n")
    return "quantize", [manifest, "--kmeans", k.km, "-o", out], 1, f"audio {t} is a directory"


@case("audio-offset-past-the-end")
def _(k, t, out):
    manifest = write(t / "in" / "m.tsv", f"a\t{k.wav}\t999999\t100\tyes\n")
    return "quantize", [manifest, "--kmeans", k.km, "-o", out], 1, f"offset 999999 is past the end of {k.wav}"


@case("file-name-with-newline-bad-line")
def _(k, t, out):
    return "dedup", [write(t / "in" / "a\nb.tsv", "a\t1 x\tyes\n"), "-o", out], 1, "a\\nb.tsv:1: unit 'x'"


@case("file-name-with-newline-missing")
def _(k, t, out):
    return "dedup", [t / "in" / "no\nsuch.tsv", "-o", out], 1, "no\\nsuch.tsv: cannot read"


@case("binarize-units-error-names-file-and-line")
def _(k, t, out):
    lm_data = write(t / "in" / "train.lm", "a\t1 2 <s> 2\nb\t1 5 <s> 2\n")
    return "binarize", ["--units", 3, "--out", out, f"train={lm_data}"], 1, f"{lm_data}:2: unit 5 found, but --units is 3"


# Why 3, the verbalizer
@case("sample-verbalizer-differs-from-the-recorded-one")
def _(k, t, out):
    return "sample", [k.data, "--prompt", k.prompt, "--verbalizer", k.other_vb, "-o", out, "--device", "cpu"], 1, \
        f"{k.other_vb}: refused: not the verbalizer the prompt was trained with"


@case("sample-verbalizer-maps-none-of-the-train-labels")
def _(k, t, out):
    return "sample", [k.data, "--prompt", k.unrecorded_prompt, "--verbalizer", k.other_vb, "-o", out,
                      "--device", "cpu"], 1, "refused: the prompt's train labels use tokens ['1', '2', '3']"


# Issue 27: non-finite audio, labels spelled like uLM symbols, files cut short
def float_wav(t, name, value):
    """A float WAV whose sample 123 is NaN or infinite (integer PCM cannot hold one)."""
    wave = (0.1 * np.sin(np.arange(RATE // 4) / 7.0)).astype(np.float32)
    wave[123] = value
    path = t / "in" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, wave, RATE, subtype="FLOAT")
    return path


NON_FINITE = {"nan": float("nan"), "inf": float("inf"), "minus-inf": float("-inf")}
for _tool in ("quantize", "kmeans", "baseline", "manifest"):
    for _name, _value in NON_FINITE.items():
        @case(f"audio-{_name}-{_tool}")
        def _(k, t, out, tool=_tool, value=_value):
            wav = float_wav(t, "bad.wav", value)
            manifest = write(t / "in" / "m.tsv", f"a\t{wav}\t0\t{RATE // 4}\tyes\n")
            args = {"quantize": [manifest, "--kmeans", k.km], "kmeans": [manifest, "-k", 2],
                    "baseline": ["--features", "logmel-stats", k.manifest, manifest],
                    "manifest": ["table", write(t / "in" / "table.csv", f"path,label,split\n{wav},yes,train\n"),
                                 "--split", "train"]}[tool]
            return tool, [*args, "-o", out], 1, f"audio {wav} has a non-finite sample ({value}) at sample 123"


@case("audio-nan-quantize-skip-bad-counted")
def _(k, t, out):
    wav = float_wav(t, "bad.wav", float("nan"))
    manifest = write(t / "in" / "m.tsv", f"a\t{k.wav}\t0\t4000\tyes\nb\t{wav}\t0\t{RATE // 4}\tno\n")
    return "quantize", [manifest, "--kmeans", k.km, "--skip-bad", "-o", out], 0, "skipped 1 bad utterances"


SPECIAL_LABELS = {  # where a label enters, and the symbol it is spelled as
    "manifest": lambda k, t: ("<unk>", ["table", write(t / "in" / "table.csv",
                                                        f"path,label,split\n{k.wav},<unk>,train\n"), "--split", "train"]),
    "quantize": lambda k, t: ("<unk>", [write(t / "in" / "m.tsv", f"a\t{k.wav}\t0\t100\t<unk>\n"),
                                        "--kmeans", k.km]),
    "dedup": lambda k, t: ("</s>", [units_file(t, "a\t1 1 2\tup </s>\n")]),
    "lmdata": lambda k, t: ("<pad>", [units_file(t, "a\t1 2\t<pad>\n")]),
    "verbalize": lambda k, t: ("<unk>", ["fit", write(t / "in" / "train.lm", "a\t1 2 <s> yes\nb\t3 <s> <unk>\n")]),
}
for _tool in SPECIAL_LABELS:
    @case(f"label-special-symbol-{_tool}")
    def _(k, t, out, tool=_tool):
        symbol, args = SPECIAL_LABELS[tool](k, t)
        return tool, [*args, "-o", out], 1, f"{symbol!r} is one of the uLM's special symbols"


@case("verbalizer-truncated-apply")
def _(k, t, out):
    text = Path(k.vb).read_text()
    cut = write(t / "in" / "verbalizer.json", text[:len(text) // 2])
    return "verbalize", ["apply", cut, write(t / "in" / "x.lm", "a\t1 2 <s> yes\n"), "-o", out], 1, \
        f"{cut}: truncated, or not a verbalizer JSON"


@case("checkpoint-truncated-baseline-ulm")
def _(k, t, out):
    cut = t / "in" / "lm.pt"
    cut.parent.mkdir(parents=True)
    cut.write_bytes(Path(k.lm).read_bytes()[:-100])
    return "baseline", [k.units, k.units, "--features", "ulm-states", "--ulm", cut, "--ulm-dict", k.lm_dict,
                        "--device", "cpu", "-o", out], 1, f"{cut}: refused: truncated, or not a unit LM checkpoint"


@case("checkpoint-truncated-quantize-hubert")
def _(k, t, out):
    cut = t / "in" / "hubert.pt"
    cut.parent.mkdir(parents=True)
    cut.write_bytes(Path(k.lm).read_bytes()[:5000])
    return "quantize", [k.manifest, "--kmeans", k.km, "--encoder", "hubert", "--checkpoint", cut, "--device", "cpu",
                        "-o", out], 1, f"{cut}: refused: truncated, or not a checkpoint"


@case("dict-truncated-binarize")
def _(k, t, out):
    text = Path(k.lm_dict).read_text()
    cut = write(t / "in" / "dict.txt", text[:text.index("\n7 1") + 2])  # the last line cut after its token
    lm_data = write(t / "in" / "train.lm", "a\t1 2 <s> 3\n")
    return "binarize", ["--dict", cut, "--out", out, f"train={lm_data}"], 1, \
        f"{cut}:8: expected 'token count' (a fairseq dict.txt)"


def damaged_databin(k, t, name: str, keep) -> Path:
    """A copy of the kit's data-bin whose file `name` keeps only `keep(its bytes)`."""
    import shutil

    data = t / "in" / "bin"
    shutil.copytree(k.data, data)
    (data / name).write_bytes(keep((data / name).read_bytes()))
    return data


PRETRAIN = ["--size", "tiny", "--max-epoch", 1, "--device", "cpu"]
for _name in ("train.bin", "train.idx", "valid.bin", "valid.idx"):
    @case(f"pretrain-truncated-{_name}")
    def _(k, t, out, name=_name):
        data = damaged_databin(k, t, name, lambda b: b[:len(b) // 2])
        return "pretrain", [data, "--save-dir", out, *PRETRAIN], 1, f"{data}/{name}: truncated"


@case("pretrain-truncated-dict.txt")
def _(k, t, out):
    data = damaged_databin(k, t, "dict.txt", lambda b: b"".join(b.splitlines(keepends=True)[:5]))
    return "pretrain", [data, "--save-dir", out, *PRETRAIN], 1, "is past dict.txt's 9 symbols (a truncated dict.txt?)"


@case("pretrain-dict.txt-cut-in-a-line")
def _(k, t, out):
    data = damaged_databin(k, t, "dict.txt", lambda b: b[:b.index(b"\n5 1") + 2])
    return "pretrain", [data, "--save-dir", out, *PRETRAIN], 1, f"{data}/dict.txt: not a dictionary"


@case("pretrain-empty-valid-split")
def _(k, t, out):
    data = make_databin(str(t / "in" / "bin"), {"train": toy_rows(20, 1), "valid": []})
    return "pretrain", [data, "--save-dir", out, *PRETRAIN], 1, f"{data}/valid.bin: the split has no sentences"


def assert_one_error(result, tool: str, fragment: str) -> None:
    errors = [line for line in result.stderr.splitlines() if line.startswith(f"sp-{tool}") and ": error:" in line]
    assert len(errors) == 1, result.stderr
    assert errors[0].startswith(f"sp-{tool}: error: ") or errors[0].startswith(f"sp-{tool} "), errors[0]
    assert fragment in errors[0], result.stderr
    assert result.stderr.strip().splitlines()[-1] == errors[0], result.stderr  # the last word, not buried


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input(kit, tmp_path, name):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "result"
    tool, args, status, fragment = CASES[name](kit, tmp_path, out)
    was_dir = out.is_dir()
    result = sp(tool, *args, check=False)
    assert result.returncode == status, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert not any(line.startswith(("Error:", "Usage:")) for line in result.stderr.splitlines()), result.stderr
    if status:
        assert_one_error(result, tool, fragment)
        assert [p.name for p in out_dir.iterdir()] == (["result"] if was_dir else []), "left at or beside -o"
        assert not was_dir or not any(out.iterdir())
    else:
        assert fragment in result.stderr and ": error:" not in result.stderr, result.stderr
        beside = ["result.json"] if tool == "train" else []  # sp-train's summary, prompt.json beside prompt.pt
        assert sorted(p.name for p in out_dir.iterdir()) == ["result", *beside], "only the outputs, no temporaries"


def test_there_are_enough_cases():
    assert len(CASES) >= 70


# ---------------------------------------------------------- malicious pickles
class Evil:
    """Unpickling this calls `open(marker, "w")`: code run by loading a file."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


FORMATS = ("raw-pickle", "joblib", "torch-zip", "torch-legacy")


def craft(fmt: str, path: Path, marker: Path) -> Path:
    payload = {"model": Evil(marker), "cfg": None, "cluster_centers_": np.zeros((2, 80))}
    if fmt == "raw-pickle":
        path.write_bytes(pickle.dumps(payload))
    elif fmt == "joblib":
        joblib.dump(payload, path)
    elif fmt == "torch-zip":
        torch.save(payload, path)
    else:
        torch.save(payload, path, _use_new_zipfile_serialization=False)
    return path


UNSAFE_LOAD = {"raw-pickle": lambda p: pickle.loads(p.read_bytes()), "joblib": joblib.load,
               "torch-zip": lambda p: torch.load(p, weights_only=False),
               "torch-legacy": lambda p: torch.load(p, weights_only=False)}


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_crafted_file_does_run_code_when_loaded_unsafely(tmp_path, fmt):
    marker = tmp_path / "pwned"
    path = craft(fmt, tmp_path / "evil.bin", marker)
    try:
        UNSAFE_LOAD[fmt](path)
    except Exception:
        pass  # the payload ran while loading; what is built afterwards does not matter
    assert marker.exists()  # so the refusals below are refusals of a live exploit


LOAD_PATHS = {
    "quantize --kmeans": lambda k, evil: ("quantize", [k.manifest, "--kmeans", evil]),
    "quantize --checkpoint": lambda k, evil: ("quantize", [k.manifest, "--kmeans", k.km, "--encoder", "hubert",
                                                          "--checkpoint", evil]),
    "kmeans --checkpoint": lambda k, evil: ("kmeans", [k.manifest, "--encoder", "hubert", "--checkpoint", evil]),
    "train --base": lambda k, evil: ("train", [k.data, "--base", evil, "--base-dict", k.lm_dict]),
    "sample --prompt": lambda k, evil: ("sample", [k.data, "--prompt", evil]),
    "baseline --ulm": lambda k, evil: ("baseline", [k.units, k.units, "--features", "ulm-states", "--ulm", evil,
                                                    "--ulm-dict", k.lm_dict]),
}


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("where", list(LOAD_PATHS))
def test_malicious_pickles_are_refused_in_every_load_path(kit, tmp_path, where, fmt):
    marker = tmp_path / "pwned"
    evil = craft(fmt, tmp_path / "evil.bin", marker)
    out = tmp_path / "out" / "result"
    tool, args = LOAD_PATHS[where](kit, evil)
    result = sp(tool, *args, "--device", "cpu", "-o", out, check=False)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert_one_error(result, tool, f"{evil}: refused: ")
    assert not marker.exists()
    assert not out.parent.exists() or not any(out.parent.iterdir())


# ------------------------------------------------------------ -o as redirect
def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_output_behaves_like_a_shell_redirect(kit, tmp_path):
    src = kit.units
    expected = sp("dedup", src).stdout
    # a new file: the mode a redirect gives under the umask
    run = shell(f"umask 027 && sp-dedup {src} -o new.tsv && cat {src} > redirected.tsv", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert mode(tmp_path / "new.tsv") == mode(tmp_path / "redirected.tsv") == 0o640
    assert (tmp_path / "new.tsv").read_text() == expected
    # an existing file keeps its mode, as `>` keeps it
    (tmp_path / "kept.tsv").write_text("old\n")
    os.chmod(tmp_path / "kept.tsv", 0o604)
    sp("dedup", src, "-o", tmp_path / "kept.tsv")
    assert mode(tmp_path / "kept.tsv") == 0o604 and (tmp_path / "kept.tsv").read_text() == expected
    # a symlink: followed; the link stays, its target is replaced
    target = tmp_path / "target.tsv"
    target.write_text("old\n")
    os.chmod(target, 0o640)
    (tmp_path / "link.tsv").symlink_to("target.tsv")
    sp("dedup", src, "-o", tmp_path / "link.tsv")
    assert (tmp_path / "link.tsv").is_symlink() and os.readlink(tmp_path / "link.tsv") == "target.tsv"
    assert target.read_text() == expected and mode(target) == 0o640
    (tmp_path / "dangling.tsv").symlink_to("created.tsv")  # a redirect creates a dangling link's target
    sp("dedup", src, "-o", tmp_path / "dangling.tsv")
    assert (tmp_path / "dangling.tsv").is_symlink() and (tmp_path / "created.tsv").read_text() == expected
    # a FIFO: written into, while a reader reads it
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_text()))
    reader.start()
    sp("dedup", src, "-o", fifo)
    reader.join(timeout=60)
    assert received == [expected] and stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_output_into_a_character_device_is_not_replaced(kit, tmp_path):
    device = tmp_path / "null"
    if os.geteuid() != 0:
        pytest.skip("mknod needs root")
    try:
        os.mknod(device, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # a second /dev/null
    except OSError as error:
        pytest.skip(f"mknod refused here: {error}")
    before = os.lstat(device)
    sp("dedup", kit.units, "-o", device)
    after = os.lstat(device)
    assert stat.S_ISCHR(after.st_mode) and after.st_rdev == before.st_rdev and after.st_ino == before.st_ino
    assert [p.name for p in tmp_path.iterdir()] == ["null"]


def dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_temporaries_of_a_killed_run_are_removed_by_the_next_run(kit, tmp_path):
    out = tmp_path / "out.tsv"
    stale = [tmp_path / f".out.tsv.{dead_pid()}.k1ll3d_x.tmp", tmp_path / ".out.tsv.abcd1234.tmp"]
    kept = [tmp_path / f".out.tsv.{os.getpid()}.l1ve_xyz.tmp",  # a live run's
            tmp_path / ".out.tsv.old.12.abcd1234.tmp"]  # another output's (out.tsv.old)
    for path in stale + kept:
        path.write_text("partial\n")
    sp("dedup", kit.units, "-o", out)
    assert out.exists() and [p.exists() for p in stale] == [False, False] and all(p.exists() for p in kept)


@pytest.mark.parametrize("tool, args, line", [("dedup", [], "a\t1 1 2\tyes\n"),
                                              ("verbalize", ["apply", "VB"], "a\t1 2 <s> yes\n")],
                         ids=["a command", "a subcommand"])
def test_sigterm_removes_the_temporary(kit, tmp_path, tool, args, line):
    out = tmp_path / "out.tsv"
    args = [str(kit.vb) if a == "VB" else a for a in args]
    run = subprocess.Popen([str(BIN / f"sp-{tool}"), *args, "-", "-o", str(out)], stdin=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    run.stdin.write(line)
    run.stdin.flush()
    deadline = time.time() + 120
    while not list(tmp_path.glob(".out.tsv.*.tmp")) and time.time() < deadline:  # mid-run: the temporary is there
        time.sleep(0.1)
    assert list(tmp_path.glob(".out.tsv.*.tmp"))
    run.send_signal(signal.SIGTERM)
    assert run.wait(timeout=60) == 128 + signal.SIGTERM
    assert "Traceback" not in run.stderr.read()
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------ readers and scoring
def test_a_utf8_bom_does_not_stick_to_the_first_id(tmp_path):
    table = tmp_path / "bom.tsv"
    table.write_bytes("\ufeffa\t1 1 2\tyes\n".encode("utf-8"))
    assert sp("dedup", table).stdout == "a\t1 2\tyes\n"
    assert sp("dedup", input="\ufeffa\t1 1 2\tyes\n").stdout == "a\t1 2\tyes\n"  # stdin too
    reference = tmp_path / "ref.tsv"
    reference.write_bytes("\ufeffa\t1 2\tyes\n".encode("utf-8"))
    metrics = json.loads(sp("score", "--reference", reference,
                            input='{"id": "a", "prediction": "yes"}\n').stdout)
    assert metrics["accuracy"] == 1.0 and metrics["missing"] == 0  # the ids joined


def test_a_class_folder_with_whitespace_is_one_quoted_slot(tmp_path):
    for label in ("n o", "yes"):
        (tmp_path / "corpus" / "train" / label).mkdir(parents=True)
        sf.write(tmp_path / "corpus" / "train" / label / "x.wav", np.zeros(800), RATE)
    rows = [line.split("\t") for line in sp("manifest", "folders", tmp_path / "corpus", "--split", "train").stdout.splitlines()]
    assert sorted(row[4] for row in rows) == ["n_o", "yes"]  # one slot each, never `n o` (two slots)


def test_score_never_counts_an_unknown_as_correct(tmp_path):
    records = [{"id": "a", "label": "<unk>", "prediction": "<unk>"},
               {"id": "b", "label": "yes", "prediction": "yes"},
               {"id": "c", "label": "up <unk>", "prediction": "up <unk>"},
               {"id": "d", "label": "no", "prediction": "<unk>"}]
    text = "".join(json.dumps(r) + "\n" for r in records)
    metrics = json.loads(sp("score", input=text).stdout)
    assert metrics["accuracy"] == 0.25  # only b
    assert metrics["slot_accuracy"][1] == 0.0  # `<unk>` == `<unk>` is no hit in a slot either


def test_a_null_prediction_counts_as_missing(tmp_path):
    text = ('{"id": "a", "label": "yes", "prediction": null}\n'
            '{"id": "b", "label": "no", "prediction": "no"}\n')
    metrics = json.loads(sp("score", input=text).stdout)
    assert metrics["missing"] == 1 and metrics["accuracy"] == 0.5
    assert "<missing>" in metrics["confusion"]["prediction"]


def test_sp_train_records_the_verbalizer_and_sp_sample_refuses_another(kit, tmp_path):
    from speechprompt.checkpoints import load_checkpoint

    prompt = tmp_path / "prompt.pt"
    sp("train", kit.data, "--base", kit.lm, "--verbalizer", kit.vb, "--max-epoch", 1, "--batch-size", 8,
       "--device", "cpu", "-o", prompt)
    assert load_checkpoint(str(prompt))["verbalizer"] == {"path": kit.vb, "sha256": json_identity(kit.vb)}
    same = tmp_path / "same.json"  # the same map, written differently: the same identity
    same.write_text(json.dumps(json.loads(Path(kit.vb).read_text()), indent=4, sort_keys=True))
    good = sp("sample", kit.data, "--prompt", prompt, "--verbalizer", same, "--device", "cpu")
    assert {json.loads(line)["prediction"] for line in good.stdout.splitlines()} <= {"yes", "no", "up"}
    partial = tmp_path / "partial.json"  # one value moved: the accuracy would silently change
    write_verbalizer(str(partial), {"yes": "1", "no": "2", "up": "7"})
    for other in (kit.other_vb, partial):
        bad = sp("sample", kit.data, "--prompt", prompt, "--verbalizer", other, "--device", "cpu", check=False)
        assert bad.returncode == 1 and "Traceback" not in bad.stderr
        assert_one_error(bad, "sample", f"{other}: refused: not the verbalizer the prompt was trained with")


# ------------------------------------------------- a full disk, a read-only one
@pytest.fixture
def small_disk(tmp_path):
    """A 1 MiB tmpfs at tmp_path/disk, and `fill(free)`: leave only `free` bytes of it (whole pages)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)], check=True,
                       capture_output=True, text=True)
    except (OSError, subprocess.CalledProcessError) as error:
        reason = error.stderr.strip() if isinstance(error, subprocess.CalledProcessError) else error
        pytest.skip(f"cannot mount a small tmpfs here (needs root, or a container that allows it): {reason}")

    def fill(free: int) -> None:
        filler = disk / ".filler"
        filler.write_bytes(b"")
        with open(filler, "ab") as f:
            while os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize > free:
                f.write(b"\0" * 4096)
                f.flush()

    try:
        yield SimpleNamespace(path=disk, fill=fill)
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def many_units(t, lines=3000, label="\tyes"):
    """A units table (or with label "", LM data of units only) far larger than the small disk's room."""
    rng = np.random.default_rng(0)
    return write(t / "in" / "units.tsv", "".join(f"u{i}\t{' '.join(map(str, rng.integers(0, 50, 40)))}{label}\n"
                                                for i in range(lines)))


def many_predictions(t, classes=40):
    records = [{"id": f"u{i}", "label": f"c{i % classes}", "prediction": f"c{(i * 7) % classes}"} for i in range(400)]
    return write(t / "in" / "p.jsonl", "".join(json.dumps(r) + "\n" for r in records))


def unit_bin(t):
    from prompt_fixtures import make_databin

    unlabelled = [(uid, units, None) for uid, units, _ in toy_rows(200, 1)]
    return make_databin(str(t / "in" / "bin"), {"train": unlabelled, "valid": unlabelled[:40]})


# tool -> builder(kit, tmp, disk) -> (args, the output that must not appear, free bytes left on the disk)
FULL_DISK = {
    "lmdata": lambda k, t, d: ([many_units(t), "-o", d / "train.lm"], d / "train.lm", 16384),
    "dedup": lambda k, t, d: ([many_units(t), "-o", d / "units.tsv"], d / "units.tsv", 16384),
    "binarize": lambda k, t, d: (["--units", 50, "--out", d / "bin", f"train={many_units(t, label='')}"], d / "bin",
                                 16384),
    "pretrain": lambda k, t, d: ([unit_bin(t), "--save-dir", d / "ulm", "--size", "tiny", "--max-epoch", 1,
                                  "--threads", 1], d / "ulm", 262144),
    "synth": lambda k, t, d: (["--speakers", 4, "--noise-seconds", 1, d / "corpus"], d / "corpus", 65536),
    "score": lambda k, t, d: ([many_predictions(t), "-o", d / "metrics.json"], d / "metrics.json", 4096),
    "sample": lambda k, t, d: ([k.data, "--prompt", k.prompt, "--device", "cpu", "-o", d / "p.jsonl"], d / "p.jsonl", 0),
    # metrics.json (on a disk with room) and the picture (on the full one): neither may appear
    "score --confusion": lambda k, t, d: ([many_predictions(t), "-o", t / "metrics.json", "--confusion",
                                           d / "confusion.png"], t / "metrics.json", 4096),
}


@pytest.mark.parametrize("name", list(FULL_DISK))
def test_a_full_disk_is_one_line_and_leaves_no_output(kit, tmp_path, small_disk, name):
    tool = name.split()[0]
    args, output, free = FULL_DISK[name](kit, tmp_path, small_disk.path)
    small_disk.fill(free)
    result = sp(tool, *args, check=False)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert_one_error(result, tool, "o space left on device")
    assert not output.exists()
    assert [p.name for p in small_disk.path.iterdir()] == [".filler"], "a temporary was left on the disk"
    assert not [p for p in tmp_path.glob(".*.tmp")]


READ_ONLY = {  # tool -> (arguments, the output option's value under the read-only directory)
    "dedup": lambda k, d: [k.units, "-o", d / "units.tsv"],
    "kmeans": lambda k, d: [k.manifest, "-o", d / "km.bin"],
    "manifest": lambda k, d: ["folders", k.root, "--out-dir", d / "manifest"],
    "binarize": lambda k, d: ["--units", 50, "--out", d / "bin", f"train={k.units}"],
    "pretrain": lambda k, d: [k.data, "--save-dir", d / "ulm", "--size", "tiny"],
    "synth": lambda k, d: ["--speakers", 2, d / "corpus"],
    "score": lambda k, d: [k.predictions, "--confusion", d / "confusion.png"],
}


@pytest.mark.parametrize("tool", list(READ_ONLY))
def test_an_output_in_a_read_only_directory_is_refused_before_any_work(kit, tmp_path, tool):
    """As root (who may write a directory whatever its mode), a read-only file system; else a read-only
    directory. The refusal is the only line: nothing ran before it."""
    place = tmp_path / "read-only"
    place.mkdir()
    if os.geteuid() == 0:
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(place)],
                                 capture_output=True, text=True)
        if mounted.returncode:
            pytest.skip(f"cannot mount a read-only tmpfs here: {mounted.stderr.strip()}")
        expected = f"cannot write: {place} is on a read-only file system"
    else:
        place.chmod(0o555)
        expected = f"cannot write: no permission to create files in {place}"
    try:
        result = sp(tool, *READ_ONLY[tool](kit, place), check=False)
    finally:
        subprocess.run(["umount", "-l", str(place)], capture_output=True)
        place.chmod(0o755)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert_one_error(result, tool, expected)
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


# --------------------------------------------------------- labels that look equal
NFC, NFD = "caf\u00e9", "cafe\u0301"  # the same word, composed and decomposed


def nfc_labels(kit, tmp_path, where):
    """The labels a tool writes when it reads `café` spelled once composed, once decomposed."""
    if where == "table":
        for name in ("a.wav", "b.wav"):
            sf.write(tmp_path / name, np.zeros(800), RATE)
        table = write(tmp_path / "t.csv", f"path,label,split\na.wav,{NFC},train\nb.wav,{NFD},test\n")
        sp("manifest", "table", table, "--out-dir", tmp_path / "m")
        return [line.split("\t")[4] for split in ("train", "test")
                for line in (tmp_path / "m" / f"{split}.tsv").read_text().splitlines()]
    if where == "folders":
        for split, label in (("train", NFC), ("test", NFD)):
            (tmp_path / "corpus" / split / label).mkdir(parents=True)
            sf.write(tmp_path / "corpus" / split / label / "x.wav", np.zeros(800), RATE)
        sp("manifest", "folders", tmp_path / "corpus", "--out-dir", tmp_path / "m")
        return [line.split("\t")[4] for split in ("train", "test")
                for line in (tmp_path / "m" / f"{split}.tsv").read_text().splitlines()]
    if where == "units":
        out = sp("dedup", input=f"a\t1 1 2\t{NFC}\nb\t3\t{NFD}\n").stdout
        return [line.split("\t")[2] for line in out.splitlines()]
    if where == "lm":
        out = sp("lmdata", input=f"a\t1 2\t{NFD}\n").stdout
        return [line.split("<s> ")[1] for line in out.splitlines()]
    raise AssertionError(where)


@pytest.mark.parametrize("where", ["table", "folders", "units", "lm"])
def test_a_label_written_in_nfc_or_nfd_is_one_label(kit, tmp_path, where):
    assert NFC != NFD
    assert set(nfc_labels(kit, tmp_path, where)) == {NFC}


def test_scoring_compares_labels_in_nfc(tmp_path):
    text = json.dumps({"id": "a", "label": NFD, "prediction": NFC}) + "\n" + \
        json.dumps({"id": "b", "label": NFC, "prediction": NFD}) + "\n"
    assert json.loads(sp("score", input=text).stdout)["accuracy"] == 1.0


def test_a_sigterm_after_the_work_ends_the_process_without_a_traceback(tmp_path):
    """Once a tool's work is over, SIGTERM ends it as SIGTERM ends any process: the handler that unwinds a
    running tool would raise into Python's exit-time callbacks (torch and fairseq register some), print a
    traceback there and leave the exit status 0."""
    script = tmp_path / "tool.py"
    script.write_text(
        "import atexit, os, signal\n"
        "from speechprompt.io import command\n"
        "@command('a tool that is done')\n"
        "def main():\n"
        "    atexit.register(lambda: os.kill(os.getpid(), signal.SIGTERM))  # the SIGTERM lands at exit\n"
        "main()\n")
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert run.returncode == -signal.SIGTERM
    assert "Traceback" not in run.stderr and "Exception ignored" not in run.stderr
