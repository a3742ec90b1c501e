"""Three task rows end to end, `make TASK=X DATA=<fixture> predict`, each on a tiny data set in its
official layout (the builders of test_datasets_rows.py) in a copy of the tree (test_make.py's):
an accuracy row (GRABO), a row scored by EER (FSD, ASVspoof 2019 LA: FLAC, headerless protocols)
and one by the F1 of a named label (SD, MUStARD: JSON metadata, pickled folds, 48 kHz stereo).

The data are a few dozen clips with a class-dependent tone, far too few to assert a score: the
tests check that the predictions cover the test ids, the metric keys and their directions, and the
summary line of the prompt and of each baseline (tf-idf on the units, log-mel statistics)."""
import json

import pytest

from test_datasets_rows import GRABO_COMMANDS, SPLITS, asvspoof, grabo, mustard, rows
from test_make import TINY, make, tree  # noqa: F401  (tree: the fixture, a copy of the checkout)

SECONDS = 0.4
BASELINES = ["baseline", "baseline-logmel"]  # the tf-idf probe on units, the probe on log-mel statistics


def run_row(tree, tmp_path, task, data, classes):
    """Run the row on `data`; check what every row shares; return (exp, stdout, metrics of each method)."""
    exp = tmp_path / "exp"
    out = make(tree, f"TASK={task}", f"DATA={data}", f"EXP={exp}", *TINY, "predict").stdout
    manifest = rows(exp / "manifest")
    for split in SPLITS:  # the fixture holds every class in every split, or the row proves little
        assert {r[4] for r in manifest[split]} == classes, split
    test_ids = sorted(r[0] for r in manifest["test"])

    scored = [exp / "metrics.json"] + [exp / name / "metrics.json" for name in BASELINES]
    for path in scored:
        predictions = [json.loads(line) for line in (path.parent / "predictions.jsonl").read_text().splitlines()]
        assert sorted(p["id"] for p in predictions) == test_ids, path
        assert {p["prediction"] for p in predictions} <= classes, path
        truth = dict((r[0], r[4]) for r in manifest["test"])
        assert all(p["label"] == truth[p["id"]] for p in predictions), path
    metrics = [json.loads(path.read_text()) for path in scored]

    summary = (exp / "summary.txt").read_text().splitlines()
    assert len(summary) == len(scored)
    for line, path, m in zip(summary, scored, metrics):
        headline = m["headline"]
        assert headline["value"] == m[headline["metric"]]
        backbone = "  backbone=fairseq" if path == scored[0] else ""  # the prompt's line names its backbone
        assert line == f"{task} test {headline['metric']} {headline['value']:.4f} ({headline['better']} is better)  {path}{backbone}"
        assert line in out.splitlines()
    return exp, out, metrics


@pytest.mark.slow
def test_grabo_accuracy_row_end_to_end(tree, tmp_path):  # noqa: F811
    pitches = dict(zip(GRABO_COMMANDS, [400, 900, 1800]))
    data = grabo(tmp_path / "grabo", seconds=SECONDS, pitches=pitches)
    exp, out, metrics = run_row(tree, tmp_path, "GRABO", data, set(GRABO_COMMANDS))
    for m in metrics:
        assert m["headline"] == {"metric": "accuracy", "value": m["accuracy"], "better": "higher"}
        assert 0 <= m["accuracy"] <= 1 and m["better"]["accuracy"] == "higher"
        assert "eer" not in m  # three classes: no EER
    assert f"predictions: {exp}/predictions.jsonl" in out


def asvspoof_lines(counts={"train.trn": 16, "dev.trl": 6, "eval.trl": 8}):
    """Protocol records, bonafide and spoof alternating, with ASVspoof's ids and attack names."""
    lines = {}
    for p, (suffix, count) in enumerate(counts.items()):
        lines[suffix] = [(f"LA_{k % 4:04d}", f"LA_{'TDE'[p]}_{1000000 + 7919 * k}", "-",
                          "-" if k % 2 == 0 else f"A{k % 6 + 1:02d}", ("bonafide", "spoof")[k % 2])
                         for k in range(count)]
    return lines


@pytest.mark.slow
def test_fsd_eer_row_end_to_end(tree, tmp_path):  # noqa: F811
    la = asvspoof(tmp_path, asvspoof_lines(), seconds=SECONDS, pitches={"bonafide": 500, "spoof": 1500})
    _, _, metrics = run_row(tree, tmp_path, "FSD", la, {"bonafide", "spoof"})
    for m in metrics:
        assert {"eer", "f1", "accuracy", "macro_f1"} <= set(m) and m["positive"] == "spoof"
        assert m["headline"] == {"metric": "eer", "value": m["eer"], "better": "lower"}
        assert m["better"]["eer"] == "lower" and m["better"]["f1"] == "higher"
        assert 0 <= m["eer"] <= 1


@pytest.mark.slow
def test_sd_sarcastic_f1_row_end_to_end(tree, tmp_path):  # noqa: F811
    mustard(tmp_path / "mustard", count=50, test_size=10, seconds=SECONDS, pitches={True: 700, False: 1400})
    _, _, metrics = run_row(tree, tmp_path, "SD", tmp_path / "mustard", {"sarcastic", "not_sarcastic"})
    for m in metrics:
        assert {"f1", "accuracy", "macro_f1"} <= set(m) and m["positive"] == "sarcastic"
        assert m["headline"] == {"metric": "f1", "value": m["f1"], "better": "higher"}
        assert 0 <= m["f1"] <= 1
