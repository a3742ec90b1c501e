"""The Make chain: dry runs print the experiment; a tiny real run goes end to end."""
import json
import random
import subprocess

import pytest

from conftest import ROOT, SHARED_UNITS

CLASSES_12 = {"yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go", "_unknown_", "_silence_"}

STAGES = ["sp-synth", "sp-manifest", "sp-kmeans", "sp-quantize", "sp-lmdata", "sp-verbalize",
          "sp-binarize", "sp-pretrain", "sp-train", "sp-sample", "sp-score"]


def make(*args, check=True):
    result = subprocess.run(["make", "--no-print-directory", *args], cwd=ROOT, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"make {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


def first_use(lines, tool):
    return next(i for i, line in enumerate(lines) if line.startswith(f".venv/bin/{tool} "))


def test_dry_run_prints_the_whole_offline_chain_in_order(tmp_path):
    lines = make("-n", "TASK=SCR", f"EXP={tmp_path}/exp", "predict").stdout.splitlines()
    order = [first_use(lines, tool) for tool in STAGES]
    assert order == sorted(order)
    # the defaults: the learning rate by the uLM in use (sp-train --lr auto), patience that waits out chance
    assert " --lr auto " in lines[first_use(lines, "sp-train")] and " --patience 5 " in lines[first_use(lines, "sp-train")]
    front_end = "--encoder logmel --deltas --cmvn --subsample 2 "  # Kaldi's post-processing of the fbank
    assert front_end in lines[first_use(lines, "sp-kmeans")] and front_end in lines[first_use(lines, "sp-quantize")]
    bare = make("-n", "TASK=SCR", f"EXP={tmp_path}/exp", "LOGMEL_OPTS=", "predict").stdout.splitlines()
    assert "--encoder logmel -k 100 " in bare[first_use(bare, "sp-kmeans")]


def test_units_skip_the_audio_stages_and_ulm_skips_pretraining(tmp_path, shared_units):
    ulm, dictionary = tmp_path / "hubert100_lm.pt", tmp_path / "dict.txt"
    ulm.touch()
    dictionary.touch()
    out = make("-n", "TASK=SCR", f"EXP={tmp_path}/exp", f"UNITS={SHARED_UNITS}",
               f"ULM={ulm}", f"DICT={dictionary}", "LR_SCHEDULE=linear", "WARMUP=100", "predict").stdout
    for tool in ["sp-synth", "sp-manifest", "sp-kmeans", "sp-quantize", "sp-pretrain"]:
        assert f"/{tool} " not in out
    assert f".venv/bin/sp-dedup --skip-bad {SHARED_UNITS}/train.txt" in out
    assert f"--base {ulm} --base-dict {dictionary}" in out
    assert f"binarize --dict {dictionary}" in out
    assert "--lr-schedule linear --warmup-updates 100 " in out


def test_a_task_without_offline_corpus_asks_for_data(tmp_path):
    result = make("-n", "TASK=IC", f"EXP={tmp_path}/exp", "predict", check=False)
    assert result.returncode != 0 and "give DATA=" in result.stderr


TINY = ["K=24", "ULM_SIZE=tiny", "ULM_EPOCHS=2", "EPOCHS=3"]


def ids(path):
    return sorted(line.split("\t")[0] for line in path.read_text().splitlines())


def test_tiny_offline_chain_runs_end_to_end_and_then_has_nothing_to_do(tmp_path):
    exp = tmp_path / "exp"
    args = ["TASK=SCR", f"EXP={exp}", "SYNTH_SPEAKERS=12", *TINY]
    out = make(*args, "predict").stdout
    assert "SCR test accuracy" in out and str(exp / "predictions.jsonl") in out
    metrics = json.loads((exp / "metrics.json").read_text())
    assert 0.0 <= metrics["accuracy"] <= 1.0
    predictions = [json.loads(line) for line in (exp / "predictions.jsonl").read_text().splitlines()]
    assert sorted(p["id"] for p in predictions) == ids(exp / "manifest" / "test.tsv")
    assert all(p["prediction"] in CLASSES_12 for p in predictions)
    assert (exp / "confusion.png").stat().st_size > 0

    assert make("-q", *args, "predict", check=False).returncode == 0
    assert "Nothing to be done" in make(*args, "predict").stdout
    # a prompt-tuning variable reruns prompt tuning and what follows, nothing before it
    rerun = make("-n", *args[:-1], "EPOCHS=4", "predict").stdout
    assert "sp-train" in rerun and "sp-sample" in rerun
    for upstream in ["sp-synth", "sp-manifest", "sp-quantize", "sp-pretrain", "sp-binarize"]:
        assert upstream not in rerun
    # a front-end variable refits k-means and reruns what follows, not the corpus or the manifests
    refit = make("-n", *args, "LOGMEL_OPTS=--deltas", "predict").stdout
    assert "sp-kmeans" in refit and "sp-quantize" in refit and "sp-train" in refit
    assert "sp-synth" not in refit and "sp-manifest" not in refit
    # touching a tool's module reruns its stage and what follows
    (ROOT / "tools" / "speechprompt" / "score.py").touch()
    assert [line.split()[0] for line in make("-n", *args, "predict").stdout.splitlines()
            if line.startswith(".venv/bin/sp-")] == [".venv/bin/sp-score"] * 3  # the prompt and two baselines


def fake_intent_units(directory, seed=0):
    """Units whose content depends on each slot of an `action object location` label."""
    rng = random.Random(seed)
    actions, objects, locations = ["activate", "deactivate", "increase"], ["lights", "heat", "1"], ["kitchen", "none"]
    motif = {value: [rng.randrange(60) for _ in range(4)] for value in actions + objects + locations}
    for split, count in [("train", 240), ("valid", 40), ("test", 40)]:
        lines = []
        for n in range(count):
            label = [rng.choice(actions), rng.choice(objects), rng.choice(locations)]
            units = [u for value in label for u in motif[value] + [rng.randrange(60, 100)]]
            lines.append(f"{split}/{n:04d}|{' '.join(map(str, units))}|{' '.join(label)}")
        (directory / f"{split}.txt").write_text("\n".join(lines) + "\n")


def test_intent_task_from_units_scores_three_slot_labels(tmp_path):
    units = tmp_path / "units"
    units.mkdir()
    fake_intent_units(units)
    exp = tmp_path / "exp"
    make("TASK=IC", f"UNITS={units}", f"EXP={exp}", *TINY[1:], "predict")  # K=100: the units go up to 99
    predictions = [json.loads(line) for line in (exp / "predictions.jsonl").read_text().splitlines()]
    assert len(predictions) == 40 and all(len(p["prediction"].split()) == 3 for p in predictions)
    metrics = json.loads((exp / "metrics.json").read_text())
    exact = sum(p["prediction"] == p["label"] for p in predictions) / len(predictions)
    assert metrics["accuracy"] == pytest.approx(exact)


def test_crop_variables_reach_sp_lmdata(tmp_path):
    lines = make("-n", "TASK=SCR", f"EXP={tmp_path}/exp", "CROP=tail", "predict").stdout.splitlines()
    assert "sp-lmdata --max-units 1000 --crop tail " in lines[first_use(lines, "sp-lmdata")]
    assert ".venv/bin/sp-lmdata --no-label --max-units 1000 --crop tail " in "\n".join(lines)
    uncropped = make("-n", "TASK=SCR", f"EXP={tmp_path}/exp", "MAX_UNITS=", "predict").stdout
    assert "--max-units" not in uncropped


def two_class_units(directory, seed=0):
    """A two-class row (voice activity, say): a `speech` utterance holds a motif that `noise` lacks."""
    rng = random.Random(seed)
    motif = [3, 41, 77]
    for split, count in [("train", 120), ("valid", 30), ("test", 30)]:
        lines = []
        for n in range(count):
            label = ("noise", "speech")[n % 2]
            units = [rng.randrange(100) for _ in range(rng.randint(4, 10))]
            if label == "speech":
                at = rng.randrange(len(units))
                units[at:at] = motif
            lines.append(f"{split}/{n:04d}|{' '.join(map(str, units))}|{label}")
        (directory / f"{split}.txt").write_text("\n".join(lines) + "\n")


def test_summary_prints_each_row_headline_metric_by_name_for_the_prompt_and_the_baseline(tmp_path):
    units = tmp_path / "units"
    units.mkdir()
    two_class_units(units)
    exp = tmp_path / "exp"
    args = ["TASK=SCR", f"UNITS={units}", f"EXP={exp}", *TINY[1:]]
    scored = [exp / "metrics.json", exp / "baseline" / "metrics.json"]  # the prompt, the tf-idf probe
    for metric, better in [("eer", "lower"), ("f1", "higher"), ("accuracy", "higher")]:
        if metric != "eer":  # only the scores follow a new headline metric
            rerun = make("-n", *args, f"METRIC={metric}", "POSITIVE=speech", "predict").stdout
            assert [line.split()[0] for line in rerun.splitlines() if line.startswith(".venv/bin/sp-")] == \
                [".venv/bin/sp-score"] * 2
        out = make(*args, f"METRIC={metric}", "POSITIVE=speech", "predict").stdout
        summary = (exp / "summary.txt").read_text().splitlines()
        assert len(summary) == 2 and all(line in out for line in summary)
        for line, path in zip(summary, scored):
            m = json.loads(path.read_text())
            assert {"accuracy", "macro_f1", "f1", "eer", "positive", "better", "headline"} <= set(m)
            assert m["positive"] == "speech" and m["better"]["eer"] == "lower" and m["better"]["f1"] == "higher"
            assert m["headline"] == {"metric": metric, "value": m[metric], "better": better}
            assert line == f"SCR test {metric} {m[metric]:.4f} ({better} is better)  {path}"
