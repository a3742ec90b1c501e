"""The sweep: sp-sweep's table and selection, and `make sweep` on a 2 x 2 grid of tiny runs."""
import json
import os
import time

import pytest

from conftest import sp
from test_make import copy_tree, fake_intent_units, make, relative, tree  # noqa: F401  (tree: a fixture)


def fake_cell(directory, valid, test, trainable, reason="patience"):
    (directory / "valid").mkdir(parents=True)
    (directory / "valid" / "metrics.json").write_text(json.dumps({"accuracy": valid}))
    (directory / "metrics.json").write_text(json.dumps({"accuracy": test}))
    (directory / "prompt.json").write_text(json.dumps({"trainable": trainable, "stop": {
        "reason": reason, "seconds": 12.4, "updates": 30}}))
    return directory


def read_table(path):
    header, *rows = [line.split("\t") for line in path.read_text().splitlines()]
    return [dict(zip(header, row)) for row in rows]


def test_the_table_selects_by_valid_accuracy_not_test(tmp_path):
    cells = [fake_cell(tmp_path / "LR=3e-2", 0.80, 0.95, 100),  # best on test
             fake_cell(tmp_path / "LR=1e-2", 0.90, 0.85, 100),  # best on valid
             fake_cell(tmp_path / "LR=5e-3", 0.90, 0.70, 50, "max epoch")]  # tied on valid, fewer values
    run = sp("sweep", *cells, "-o", tmp_path / "sweep.tsv")
    rows = read_table(tmp_path / "sweep.tsv")
    assert [r["cell"] for r in rows] == ["LR=3e-2", "LR=1e-2", "LR=5e-3"]
    assert [r["selected"] for r in rows] == ["0", "0", "1"]
    assert rows[2] == {"cell": "LR=5e-3", "seeds": "1", "valid_accuracy": "0.9000", "valid_std": "",
                       "test_accuracy": "0.7000", "test_std": "", "trainable": "50", "train_seconds": "12",
                       "stop": "max epoch", "updates": "30", "selected": "1"}
    assert "selected by valid accuracy: LR=5e-3 (valid 0.9000, test 0.7000, 50 trainable" in run.stderr


def test_seeds_of_one_setting_are_one_row_with_mean_and_deviation(tmp_path):
    cells = [fake_cell(tmp_path / f"LR={lr},SEED={seed}", valid, test, 100)
             for lr, seed, valid, test in [("3e-2", 1, 0.80, 0.90), ("3e-2", 2, 0.90, 0.80), ("3e-2", 3, 0.85, 0.88),
                                           ("1e-2", 1, 0.86, 0.70), ("1e-2", 2, 0.86, 0.72), ("1e-2", 3, 0.86, 0.71)]]
    run = sp("sweep", *cells, "-o", tmp_path / "sweep.tsv")
    rows = read_table(tmp_path / "sweep.tsv")
    assert [(r["cell"], r["seeds"]) for r in rows] == [("LR=3e-2", "3"), ("LR=1e-2", "3")]
    # 0.80, 0.90, 0.85: mean 0.85, sample deviation 0.05; the steadier 1e-2 has the better mean (0.86)
    assert (rows[0]["valid_accuracy"], rows[0]["valid_std"]) == ("0.8500", "0.0500")
    assert (rows[1]["valid_accuracy"], rows[1]["valid_std"], rows[1]["test_accuracy"]) == ("0.8600", "0.0000", "0.7100")
    assert [r["selected"] for r in rows] == ["0", "1"]
    assert "selected by valid accuracy: LR=1e-2 (valid 0.8600 ± 0.0000, test 0.7100 ± 0.0100 over 3 seeds" in run.stderr


def test_a_cell_that_has_not_run_is_one_error_line(tmp_path):
    cell = fake_cell(tmp_path / "a", 0.5, 0.5, 10)
    (cell / "metrics.json").unlink()
    result = sp("sweep", cell, "-o", tmp_path / "sweep.tsv", check=False)
    assert result.returncode == 1 and not (tmp_path / "sweep.tsv").exists()
    assert result.stderr.strip().splitlines() == [f"sp-sweep: error: {cell / 'metrics.json'}: missing (has the cell run?)"]


def test_sweep_dry_run_shares_the_stages_before_prompt_tuning(tree, tmp_path):
    out = relative(make(tree, "-n", "TASK=SCR", f"EXP={tmp_path}/exp", "sweep", "SWEEP=LR=3e-2,1e-2 PROMPT_LEN=5,10").stdout)
    assert out.count(".venv/bin/sp-pretrain ") == 1 and out.count(".venv/bin/sp-binarize ") == 2  # data, uLM
    trains = [line for line in out.splitlines() if line.startswith(".venv/bin/sp-train ")]
    assert len(trains) == 4
    for lr, length in [("3e-2", 5), ("3e-2", 10), ("1e-2", 5), ("1e-2", 10)]:
        cell = f"{tmp_path}/exp/sweep/LR={lr},PROMPT_LEN={length}"
        assert any(line.startswith(f".venv/bin/sp-train {cell}/data-bin --base {tmp_path}/exp/ulm/checkpoint_best.pt ")
                   and f" --prompt-length {length} " in line and f" --lr {lr} " in line for line in trains)
    assert out.splitlines()[-1].startswith(".venv/bin/sp-sweep ") and out.splitlines()[-1].endswith("/exp/sweep.tsv")
    refused = make(tree, "-n", "TASK=SCR", f"EXP={tmp_path}/exp", "sweep", "SWEEP=K=50,100", check=False)
    assert refused.returncode != 0 and "K cannot vary per cell" in refused.stderr


@pytest.mark.slow
def test_a_2x2_sweep_runs_each_cell_once_and_selects_by_valid(tree, tmp_path):
    units = tmp_path / "units"
    fake_intent_units(units)
    args = ["TASK=IC", f"UNITS={units}", f"EXP={tmp_path}/exp", "ULM_SIZE=tiny", "ULM_EPOCHS=1", "EPOCHS=2",
            "sweep", "SWEEP=LR=3e-2,1e-3 PROMPT_LEN=2,4"]
    out = relative(make(tree, *args).stdout)
    assert out.count(".venv/bin/sp-pretrain ") == 1 and out.count(".venv/bin/sp-train ") == 4
    rows = read_table(tmp_path / "exp" / "sweep.tsv")
    assert all(r["seeds"] == "1" for r in rows)
    assert [r["cell"] for r in rows] == ["LR=3e-2,PROMPT_LEN=2", "LR=3e-2,PROMPT_LEN=4", "LR=1e-3,PROMPT_LEN=2",
                                         "LR=1e-3,PROMPT_LEN=4"]
    chosen = [r for r in rows if r["selected"] == "1"]
    assert len(chosen) == 1 and float(chosen[0]["valid_accuracy"]) == max(float(r["valid_accuracy"]) for r in rows)
    for row in rows:  # each cell trained with its own settings, on the shared data-bin and uLM
        cell = tmp_path / "exp" / "sweep" / row["cell"]
        summary = json.loads((cell / "prompt.json").read_text())
        lr, length = row["cell"].replace("LR=", "").replace("PROMPT_LEN=", "").split(",")
        assert summary["lr"] == float(lr) and summary["config"]["prompt_length"] == int(length)
        assert int(row["trainable"]) == summary["trainable"]
        valid = json.loads((cell / "valid" / "metrics.json").read_text())
        assert valid["n"] == 40 and float(row["valid_accuracy"]) == round(valid["accuracy"], 4)
        assert not (cell / "ulm").exists() and not (cell / "units").exists()
    assert make(tree, "-q", *args, check=False).returncode == 0
    assert "Nothing to be done for 'sweep'" in make(tree, *args).stdout


# Stand-ins for sp-train and sp-sample (a stage's command is a parameter): they write what the real tools
# write, in a moment, and note each run in LOG, so a test sees which cells ran which stage with which command.
FAKE_TRAIN = """#!/bin/sh
while [ $# -gt 0 ]; do case $1 in -o) out=$2; shift 2;; *) shift;; esac; done
echo "train $out" >> LOG
echo prompt > "$out"
echo '{"trainable": 10, "stop": {"reason": "patience", "seconds": 1, "updates": 5}}' > "${out%.pt}.json"
"""
FAKE_SAMPLE = """#!/bin/sh
while [ $# -gt 0 ]; do case $1 in -o) out=$2; shift 2;; --split) split=$2; shift 2;; *) shift;; esac; done
echo "NAME $split $out" >> LOG
mkdir -p "$(dirname "$out")"
printf '{"id": "a", "label": "yes", "prediction": "yes"}\\n{"id": "b", "label": "no", "prediction": "ANSWER"}\\n' > "$out"
"""


@pytest.mark.slow
def test_a_sweep_reruns_its_cells_after_a_module_edit_and_with_a_swapped_sample_command(tmp_path):
    tree = copy_tree((tmp_path / "tree").mkdir() or tmp_path / "tree")
    log = tmp_path / "log"
    train, right, wrong = tmp_path / "fake-train", tmp_path / "sample-right", tmp_path / "sample-wrong"
    train.write_text(FAKE_TRAIN.replace("LOG", str(log)))
    right.write_text(FAKE_SAMPLE.replace("LOG", str(log)).replace("NAME", "right").replace("ANSWER", "no"))
    wrong.write_text(FAKE_SAMPLE.replace("LOG", str(log)).replace("NAME", "wrong").replace("ANSWER", "yes"))
    for script in (train, right, wrong):
        script.chmod(0o755)
    units, exp = tmp_path / "units", tmp_path / "exp"
    fake_intent_units(units)
    (tmp_path / "ulm.pt").write_text("a uLM")
    (tmp_path / "dict.txt").write_text("0 1\n")
    base = ["TASK=IC", f"UNITS={units}", f"EXP={exp}", f"ULM={tmp_path}/ulm.pt", f"DICT={tmp_path}/dict.txt",
            f"TRAIN={train}"]
    for stage in ["units", "lm", "data-bin"]:
        (exp / stage).mkdir(parents=True)  # make -t touches files, it makes no directories
    make(tree, "-t", *base, f"SAMPLE={right}", f"{exp}/data-bin/test.id", f"{exp}/verbalizer.json")  # shared stages
    sweep = [*base, "sweep", "SWEEP=LR=3e-2,1e-2"]
    cells = [f"{exp}/sweep/LR=3e-2", f"{exp}/sweep/LR=1e-2"]

    def runs():
        lines = log.read_text().splitlines() if log.exists() else []
        log.write_text("")
        return sorted(lines)

    out = make(tree, *sweep, f"SAMPLE={right}").stdout
    assert "sp-sample" not in out and "sp-train" not in out  # the cells ran the commands given
    assert runs() == sorted([f"train {c}/prompt.pt" for c in cells] + [f"right test {c}/predictions.jsonl" for c in cells]
                            + [f"right valid {c}/valid/predictions.jsonl" for c in cells])
    assert [r["valid_accuracy"] for r in read_table(exp / "sweep.tsv")] == ["1.0000", "1.0000"]
    assert make(tree, "-q", *sweep, f"SAMPLE={right}", check=False).returncode == 0

    # another decoding command reaches every cell: both splits decoded again, the prompts kept
    assert make(tree, "-q", *sweep, f"SAMPLE={wrong}", check=False).returncode == 1
    make(tree, *sweep, f"SAMPLE={wrong}")
    assert runs() == sorted([f"wrong {split} {c}/{where}predictions.jsonl" for c in cells
                             for split, where in [("test", ""), ("valid", "valid/")]])
    assert [r["valid_accuracy"] for r in read_table(exp / "sweep.tsv")] == ["0.5000", "0.5000"]

    # editing the prompt model, a module sp-train and sp-sample import, reruns every cell's prompt tuning
    model = tree / "tools" / "speechprompt" / "prompting" / "model.py"
    model.write_text(model.read_text() + "\n# edited\n")
    later = time.time() + 5
    os.utime(model, (later, later))
    assert make(tree, "-q", *sweep, f"SAMPLE={wrong}", check=False).returncode == 1
    make(tree, *sweep, f"SAMPLE={wrong}")
    assert [r for r in runs() if r.startswith("train ")] == [f"train {c}/prompt.pt" for c in sorted(cells)]
    assert make(tree, "-q", *sweep, f"SAMPLE={wrong}", check=False).returncode == 0


def test_seeds_are_an_axis_of_the_sweep(tree, tmp_path):
    """`SWEEP='LR=... SEED=1,2,3'`: each seed a cell of its own, trained with that seed on the shared data and
    uLM (which keep the experiment's seed), and tabulated as one row a setting by sp-sweep."""
    out = relative(make(tree, "-n", "TASK=SCR", f"EXP={tmp_path}/exp", "sweep", "SWEEP=LR=3e-2 SEED=1,2,3").stdout)
    assert out.count(".venv/bin/sp-pretrain ") == 1 and out.count(" --seed 1 ") >= 1
    trains = [line for line in out.splitlines() if line.startswith(".venv/bin/sp-train ")]
    assert sorted(line.split(" --seed ")[1].split()[0] for line in trains) == ["1", "2", "3"]
    assert all(f"{tmp_path}/exp/sweep/LR=3e-2,SEED=" in line for line in trains)
    assert out.splitlines()[-1].count("/exp/sweep/LR=3e-2,SEED=") == 3
