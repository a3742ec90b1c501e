"""The Make chain, in a copy of the tree: dry runs print the experiment; stages rerun exactly when
a variable, a stage's command or a module its tool imports changes; a tiny real run goes end to end."""
import gzip
import json
import os
import random
import re
import shutil
import subprocess
import textwrap
import time
from types import SimpleNamespace

import pytest

from conftest import BIN, ROOT

CLASSES_12 = {"yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go", "_unknown_", "_silence_"}

STAGES = ["sp-synth", "sp-manifest", "sp-kmeans", "sp-quantize", "sp-lmdata", "sp-verbalize",
          "sp-binarize", "sp-pretrain", "sp-train", "sp-sample", "sp-score"]
ALL_TOOLS = set(STAGES) | {"sp-baseline"}
TREE = ["Makefile", "mk", "tasks", "tools", "requirements.txt"]  # what Make reads; the venv stays the checkout's
VENV = f"VENV={BIN.parent}"  # the venv that runs pytest
PNG = b"\x89PNG\r\n\x1a\n"


def copy_tree(dest):
    """The files Make reads, copied with their times, so a test can edit them without touching the checkout."""
    for name in TREE:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(ROOT / name, dest / name)
    return dest


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return copy_tree(tmp_path_factory.mktemp("tree"))


def make(tree, *args, check=True):
    result = subprocess.run(["make", "--no-print-directory", VENV, *args], cwd=tree, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"make {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


def relative(stdout):
    """Command lines as a checkout's own venv prints them (`.venv/bin/sp-x`), whichever venv ran them."""
    return stdout.replace(f"{BIN.parent.parent}/", "")


def commands(stdout):
    """The tool that starts each command line of `make -n` (a piped second tool is not counted)."""
    return [m.group(1) for m in (re.match(r"\S*/bin/(sp-\w+) ", line) for line in stdout.splitlines()) if m]


def first_use(lines, tool):
    return next(i for i, line in enumerate(lines) if re.match(rf"\S*/bin/{tool} ", line))


def test_dry_run_prints_the_whole_offline_chain_in_order(tree, tmp_path):
    lines = make(tree, "-n", "TASK=SCR", f"EXP={tmp_path}/exp", "predict").stdout.splitlines()
    order = [first_use(lines, tool) for tool in STAGES]
    assert order == sorted(order)
    # the defaults: learning rate and prompt length by the uLM in use (auto), patience that waits out chance
    train = lines[first_use(lines, "sp-train")]
    assert " --lr auto " in train and " --prompt-length auto " in train and " --patience 10 " in train
    front_end = "--encoder logmel --deltas --cmvn --subsample 2 "  # Kaldi's post-processing of the fbank
    assert front_end in lines[first_use(lines, "sp-kmeans")] and front_end in lines[first_use(lines, "sp-quantize")]
    bare = make(tree, "-n", "TASK=SCR", f"EXP={tmp_path}/exp", "LOGMEL_OPTS=", "predict").stdout.splitlines()
    assert "--encoder logmel -k 100 " in bare[first_use(bare, "sp-kmeans")]


def test_units_skip_the_audio_stages_and_ulm_skips_pretraining(tree, tmp_path):
    units = tmp_path / "units"
    fake_intent_units(units)
    ulm, dictionary = tmp_path / "hubert100_lm.pt", tmp_path / "dict.txt"
    ulm.touch()
    dictionary.touch()
    out = make(tree, "-n", "TASK=SCR", f"EXP={tmp_path}/exp", f"UNITS={units}",
               f"ULM={ulm}", f"DICT={dictionary}", "LR_SCHEDULE=linear", "WARMUP=100", "predict").stdout
    assert not {"sp-synth", "sp-manifest", "sp-kmeans", "sp-quantize", "sp-pretrain"} & set(commands(out))
    assert f"/sp-dedup --skip-bad {units}/train.txt" in out
    assert f"--base {ulm} --base-dict {dictionary}" in out
    assert f"binarize --dict {dictionary}" in out
    assert "--lr-schedule linear --warmup-updates 100 " in out


def test_a_hugging_face_ulm_gets_no_base_dict(tree, tmp_path):
    """A sweep's cells name the uLM and its dictionary (ULM=, DICT=); an hf uLM reads units by its
    config.json and sp-train refuses --base-dict for it, so Make must not pass one."""
    units = tmp_path / "units"
    fake_intent_units(units)
    ulm, dictionary = tmp_path / "ulm-opt" / "config.json", tmp_path / "dict.txt"
    ulm.parent.mkdir()
    ulm.touch()
    dictionary.touch()
    out = make(tree, "-n", "TASK=SCR", f"EXP={tmp_path}/exp", f"UNITS={units}", "ULM_ARCH=opt",
               f"ULM={ulm}", f"DICT={dictionary}", "predict").stdout
    train = [line for line in out.splitlines() if "/sp-train " in line]
    assert train and f"--base {ulm} --backbone hf " in train[0] and "--base-dict" not in train[0]
    assert f"binarize --dict {dictionary}" in out


def test_units_read_as_shipped_gz(tree, tmp_path):
    units = tmp_path / "units"
    fake_intent_units(units)
    for split in ["train", "valid"]:  # .txt.gz where there is no .txt; the test split stays plain
        path = units / f"{split}.txt"
        (units / f"{split}.txt.gz").write_bytes(gzip.compress(path.read_bytes()))
        path.unlink()
    out = make(tree, "-n", "TASK=IC", f"EXP={tmp_path}/exp", f"UNITS={units}", "predict").stdout
    for source in ["train.txt.gz", "valid.txt.gz", "test.txt"]:
        assert f"/sp-dedup --skip-bad {units}/{source} -o {tmp_path}/exp/units/" in out


def test_an_older_make_is_refused_in_one_line_naming_the_version_needed(tree):
    for old in ["4.2.1", "4.0", "3.81"]:
        result = make(tree, f"MAKE_VERSION={old}", "help", check=False)
        assert result.returncode == 2 and result.stdout == ""
        assert re.fullmatch(rf"Makefile:\d+: \*\*\* GNU Make {old} is too old: this project needs GNU Make 4\.3 "
                            r"or newer\.  Stop\.\n", result.stderr), result.stderr
    for new in ["4.3", "4.4.1", "4.10", "5.0"]:
        assert make(tree, f"MAKE_VERSION={new}", "help").stdout.startswith("make setup")


@pytest.mark.parametrize("name", ["EXP", "DATA", "UNITS"])
@pytest.mark.parametrize("blank", [" ", "\t", "\n"])
def test_a_path_with_a_blank_is_refused_in_one_line_before_anything_is_written(tmp_path, name, blank):
    (tmp_path / "tree").mkdir()
    tree = copy_tree(tmp_path / "tree")
    path = f"{tmp_path}/my{blank}dir"
    args = {"EXP": f"{tmp_path}/exp", name: path}
    for goal in ["predict", "sweep"]:
        result = make(tree, "TASK=SCR", *(f"{k}={v}" for k, v in args.items()), goal, check=False)
        assert result.returncode == 2 and result.stdout == ""
        assert re.fullmatch(rf"mk/experiment\.mk:\d+: \*\*\* {name} holds a space, tab or newline, which Make "
                            r"cannot take in a path: give a path without \(a symbolic link to it will do\)\.  Stop\.\n",
                            result.stderr), result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tree"]  # no experiment, no .var, no my?dir
    assert sorted(p.name for p in tree.iterdir()) == sorted(TREE)


def test_a_task_without_offline_corpus_asks_for_data(tree, tmp_path):
    result = make(tree, "-n", "TASK=IC", f"EXP={tmp_path}/exp", "predict", check=False)
    assert result.returncode != 0 and "give DATA=" in result.stderr


def test_a_stage_command_set_on_the_command_line_or_in_a_task_file_is_used(tree, tmp_path):
    args = ["TASK=SCR", f"EXP={tmp_path}/exp", "predict"]
    out = make(tree, "-n", "SCORE=my-score --digits 3", *args).stdout
    assert re.search(r"^my-score --digits 3 \S+/predictions.jsonl --metric accuracy +--confusion ", out, re.M)
    task = tree / "tasks" / "MINE.mk"
    task.write_text((tree / "tasks" / "SCR.mk").read_text() + "BASELINE := my-baseline\n")
    out = make(tree, "-n", *args, "TASK=MINE").stdout
    assert re.search(r"^my-baseline \S+/units/train.tsv ", out, re.M) and "sp-baseline" not in out


# Expected reruns after editing one module: the tools whose imports reach it, and those downstream.
AFTER_THE_PROMPTS = {"sp-train", "sp-sample", "sp-score"}
AFTER_THE_UNITS = {"sp-quantize", "sp-lmdata", "sp-verbalize", "sp-binarize", "sp-pretrain", "sp-baseline"}


@pytest.mark.parametrize("module,expected", [
    ("prompting/model.py", AFTER_THE_PROMPTS),  # only sp-train and sp-sample import it
    ("kmeans_model.py", {"sp-kmeans"} | AFTER_THE_UNITS | AFTER_THE_PROMPTS),  # sp-kmeans writes, sp-quantize reads
    ("verbalizer.py", {"sp-verbalize", "sp-binarize", "sp-pretrain"} | AFTER_THE_PROMPTS),  # not the units
    ("audio.py", ALL_TOOLS),  # sp-synth resamples with it, sp-manifest probes the audio
    ("io/files.py", ALL_TOOLS),
])
def test_editing_a_shared_module_outdates_exactly_the_stages_that_import_it(tmp_path, module, expected):
    (tmp_path / "tree").mkdir()
    tree = copy_tree(tmp_path / "tree")
    args = ["TASK=SCR", f"EXP={tmp_path}/exp", "predict"]
    for stage in ["corpus", "manifest", "units", "lm", "data-bin", "ulm/data-bin", "baseline", "baseline-logmel"]:
        (tmp_path / "exp" / stage).mkdir(parents=True)  # make -t touches files, it makes no directories
    make(tree, "-t", *args)  # every stage marked done without running it
    assert make(tree, "-q", *args, check=False).returncode == 0
    path = tree / "tools" / "speechprompt" / module
    path.write_text(path.read_text() + "\n# edited\n")
    later = time.time() + 5
    os.utime(path, (later, later))
    assert make(tree, "-q", *args, check=False).returncode == 1
    rerun = commands(make(tree, "-n", *args).stdout)
    assert set(rerun) == expected
    if module == "kmeans_model.py":  # the log-mel baseline reads manifests, not units: it stays
        assert rerun.count("sp-baseline") == 1


# 17 valid clips and 6 updates an epoch: the valid accuracy stays "at chance" by its two-standard-error rule,
# so the epoch cap decides; 12 epochs left the prompt at the commonest class, 30 let it learn (0.41).
TINY = ["K=24", "ULM_SIZE=tiny", "ULM_EPOCHS=2", "EPOCHS=30"]


@pytest.fixture(scope="module")
def tiny(tree, tmp_path_factory):
    """One tiny offline experiment, shared by the tests below (it is the slow part)."""
    exp = tmp_path_factory.mktemp("tiny") / "exp"
    args = ["TASK=SCR", f"EXP={exp}", "SYNTH_SPEAKERS=12", *TINY]
    return SimpleNamespace(exp=exp, args=args, out=make(tree, *args, "predict").stdout)


def ids(path):
    return sorted(line.split("\t")[0] for line in path.read_text().splitlines())


@pytest.mark.slow
def test_tiny_offline_chain_runs_end_to_end_and_then_has_nothing_to_do(tree, tiny):
    exp, args = tiny.exp, tiny.args
    assert "SCR test accuracy" in tiny.out and str(exp / "predictions.jsonl") in tiny.out
    predictions = [json.loads(line) for line in (exp / "predictions.jsonl").read_text().splitlines()]
    assert sorted(p["id"] for p in predictions) == ids(exp / "manifest" / "test.tsv")
    assert all(p["prediction"] in CLASSES_12 for p in predictions)
    metrics = json.loads((exp / "metrics.json").read_text())
    labels = [p["label"] for p in predictions]
    majority = max(labels.count(label) for label in set(labels)) / len(labels)
    assert metrics["accuracy"] > max(2 / len(CLASSES_12), majority)  # beats twice chance and the commonest class
    assert (exp / "confusion.png").read_bytes()[:8] == PNG

    assert make(tree, "-q", *args, "predict", check=False).returncode == 0
    assert "Nothing to be done" in make(tree, *args, "predict").stdout
    # a prompt-tuning variable reruns prompt tuning and what follows, nothing before it
    rerun = commands(make(tree, "-n", *args[:-1], "EPOCHS=31", "predict").stdout)
    assert set(rerun) == {"sp-train", "sp-sample", "sp-score"}
    # a front-end variable refits k-means and reruns what follows, not the corpus or the manifests
    refit = set(commands(make(tree, "-n", *args, "LOGMEL_OPTS=--deltas", "predict").stdout))
    assert {"sp-kmeans", "sp-quantize", "sp-train"} <= refit and not {"sp-synth", "sp-manifest"} & refit


# sp-dedup in a few lines of shell: merge consecutive equal units of `id<TAB>units<TAB>label` lines.
AWK_DEDUP = r"""#!/bin/sh
while [ $# -gt 0 ]; do case $1 in -o) out=$2; shift 2;; --skip-bad) shift;; *) in=$1; shift;; esac; done
awk -F'\t' -v OFS='\t' '{ n = split($2, u, " "); s = u[1]
  for (i = 2; i <= n; i++) if (u[i] != u[i - 1]) s = s " " u[i]
  $2 = s; print }' "${in:--}" > "$out.tmp" && mv "$out.tmp" "$out"
"""


def test_the_docs_show_the_awk_dedup_this_file_tests():
    readme = (ROOT / "docs" / "make.md").read_text()
    block = readme.split("    cat > my-dedup <<'EOF'\n")[1].split("    EOF\n")[0]
    assert textwrap.dedent(block) == AWK_DEDUP


@pytest.mark.slow
def test_a_stage_swapped_for_a_few_lines_of_shell_reruns_it_and_what_follows(tree, tiny, tmp_path):
    exp = tmp_path / "exp"
    shutil.copytree(tiny.exp, exp)  # times kept: the copy is up to date
    args = [a if not a.startswith("EXP=") else f"EXP={exp}" for a in tiny.args]
    assert make(tree, "-q", *args, "predict", check=False).returncode == 0
    dedup = tmp_path / "awk-dedup"
    dedup.write_text(AWK_DEDUP)
    dedup.chmod(0o755)
    swapped = [*args, f"DEDUP={dedup}", "predict"]
    dry = make(tree, "-n", *swapped).stdout
    assert dry.count(f"| {dedup} -o {exp}/units/") == 3
    assert set(commands(dry)) == AFTER_THE_UNITS | AFTER_THE_PROMPTS  # not sp-synth, sp-manifest, sp-kmeans
    before = {path: path.read_bytes() for path in [*sorted(exp.glob("units/*.tsv")), exp / "predictions.jsonl"]}
    make(tree, *swapped)
    assert {path: path.read_bytes() for path in before} == before  # the same units, so the same predictions
    assert make(tree, "-q", *swapped, check=False).returncode == 0
    assert make(tree, "-q", *args, "predict", check=False).returncode == 1  # back to sp-dedup: a change too


def fake_intent_units(directory, seed=0):
    """Units whose content depends on each slot of an `action object location` label."""
    directory.mkdir()
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


@pytest.mark.slow
def test_intent_task_from_units_scores_three_slot_labels(tree, tmp_path):
    units = tmp_path / "units"
    fake_intent_units(units)
    exp = tmp_path / "exp"
    make(tree, "TASK=IC", f"UNITS={units}", f"EXP={exp}", *TINY[1:], "predict")  # K=100: the units go up to 99
    predictions = [json.loads(line) for line in (exp / "predictions.jsonl").read_text().splitlines()]
    assert len(predictions) == 40 and all(len(p["prediction"].split()) == 3 for p in predictions)
    metrics = json.loads((exp / "metrics.json").read_text())
    exact = sum(p["prediction"] == p["label"] for p in predictions) / len(predictions)
    assert metrics["accuracy"] == pytest.approx(exact)


def test_crop_variables_reach_sp_lmdata(tree, tmp_path):
    lines = relative(make(tree, "-n", "TASK=SCR", f"EXP={tmp_path}/exp", "CROP=tail", "predict").stdout).splitlines()
    assert "sp-lmdata --max-units 1000 --crop tail " in lines[first_use(lines, "sp-lmdata")]
    assert ".venv/bin/sp-lmdata --no-label --max-units 1000 --crop tail " in "\n".join(lines)
    uncropped = make(tree, "-n", "TASK=SCR", f"EXP={tmp_path}/exp", "MAX_UNITS=", "predict").stdout
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


@pytest.mark.slow
def test_summary_prints_each_row_headline_metric_by_name_for_the_prompt_and_the_baseline(tree, tmp_path):
    units = tmp_path / "units"
    units.mkdir()
    two_class_units(units)
    exp = tmp_path / "exp"
    args = ["TASK=SCR", f"UNITS={units}", f"EXP={exp}", *TINY[1:]]
    scored = [exp / "metrics.json", exp / "baseline" / "metrics.json"]  # the prompt, the tf-idf probe
    for metric, better in [("eer", "lower"), ("f1", "higher"), ("accuracy", "higher")]:
        if metric != "eer":  # only the scores follow a new headline metric
            rerun = relative(make(tree, "-n", *args, f"METRIC={metric}", "POSITIVE=speech", "predict").stdout)
            assert [line.split()[0] for line in rerun.splitlines() if line.startswith(".venv/bin/sp-")] == \
                [".venv/bin/sp-score"] * 2
        out = make(tree, *args, f"METRIC={metric}", "POSITIVE=speech", "predict").stdout
        summary = (exp / "summary.txt").read_text().splitlines()
        assert len(summary) == 2 and all(line in out for line in summary)
        for line, path in zip(summary, scored):
            m = json.loads(path.read_text())
            assert {"accuracy", "macro_f1", "f1", "eer", "positive", "better", "headline"} <= set(m)
            assert m["positive"] == "speech" and m["better"]["eer"] == "lower" and m["better"]["f1"] == "higher"
            assert m["headline"] == {"metric": metric, "value": m[metric], "better": better}
            backbone = "  backbone=fairseq" if path == scored[0] else ""  # the prompt's line names its backbone
            assert line == f"SCR test {metric} {m[metric]:.4f} ({better} is better)  {path}{backbone}"


# ------------------------------------------------- one make an experiment; no partial files
def start_make(tree, *args):
    """make in the background, in its own process group (so a test can kill it with its recipe's children)."""
    import signal  # noqa: F401  (the tests below send signals to the group)

    return subprocess.Popen(["make", "--no-print-directory", VENV, *args], cwd=tree, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_until(condition, process, seconds=120):
    deadline = time.time() + seconds
    while not condition():
        assert process.poll() is None, process.communicate()
        assert time.time() < deadline
        time.sleep(0.05)


def test_a_second_make_on_the_same_experiment_stops_in_one_line_naming_the_first(tree, tmp_path):
    import signal

    exp = tmp_path / "exp"
    base = ["TASK=SCR", f"EXP={exp}"]
    first = start_make(tree, *base, "SYNTH=sleep 120 #", f"{exp}/corpus/testing_list.txt")  # a long stage
    try:
        wait_until(lambda: (exp / ".deps.mk").exists() and f"pid {first.pid} on " in (exp / ".lock").read_text(),
                   first)
        second = make(tree, *base, f"{exp}/dict.txt", check=False)
        assert second.returncode != 0 and not (exp / "dict.txt").exists()
        errors = second.stderr.strip().splitlines()
        assert len(errors) == 1 and f"{exp}: busy: pid {first.pid} on " in errors[0], second.stderr
        assert make(tree, "-n", *base, f"{exp}/dict.txt").returncode == 0  # a dry run takes no lock
        cell = exp / "sweep" / "cell"  # a sweep cell's make: its own EXP (under this one), its own lock
        make(tree, "TASK=SCR", f"EXP={cell}", f"{cell}/dict.txt")
        assert (cell / "dict.txt").exists()
    finally:
        os.killpg(first.pid, signal.SIGKILL)  # make and its recipe, as the OOM killer or `scancel -9` would
        first.wait()
    make(tree, "-j", "2", *base, f"{exp}/dict.txt", f"{exp}/.deps.mk")  # the dead make's lock is taken over
    assert len((exp / "dict.txt").read_text().splitlines()) == 100


def test_a_make_killed_while_writing_summary_txt_leaves_no_summary_that_make_trusts(tree, tmp_path):
    """summary.txt is written through a temporary: a kill halfway leaves none, and the next make writes it."""
    import signal

    exp = tmp_path / "exp"
    scores = [exp / "metrics.json", exp / "baseline" / "metrics.json", exp / "baseline-logmel" / "metrics.json"]
    for path in scores[:2]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"headline": {"metric": "accuracy", "value": 0.5, "better": "higher"}}))
    scores[2].parent.mkdir(parents=True)
    os.mkfifo(scores[2])  # the recipe's third line waits here until the test kills make
    args = ["TASK=SCR", f"EXP={exp}", *(f"--old-file={path}" for path in scores), f"{exp}/summary.txt"]
    killed = start_make(tree, *args)
    written = lambda: [p for p in exp.glob("summary.txt*") if p.read_text().count("\n") == 2]
    wait_until(written, killed)
    os.killpg(killed.pid, signal.SIGKILL)
    killed.wait()
    assert not (exp / "summary.txt").exists()  # two lines of three were written, to the temporary only
    assert make(tree, "-q", *args, check=False).returncode == 1  # so the next make has something to do
    scores[2].unlink()
    scores[2].write_text(scores[0].read_text())
    make(tree, *args)
    assert len((exp / "summary.txt").read_text().splitlines()) == 3


# ------------------------------------------------------------ BACKBONE=pgslm
def test_pgslm_with_units_lacking_prosody_is_one_line(tree, tmp_path):
    units = tmp_path / "units"
    units.mkdir()
    two_class_units(units)  # GSLM's `name|units|label`: no durations, no F0
    result = make(tree, "-n", "TASK=SCR", f"UNITS={units}", f"EXP={tmp_path / 'exp'}", "BACKBONE=pgslm", "predict",
                  check=False)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1].endswith(
        f"BACKBONE=pgslm reads each unit's duration and F0, and UNITS={units} has no durations and F0 columns "
        "(id units label durations f0): give DATA= (or the offline corpus) so that sp-dedup --durations and sp-f0 "
        "make them, or add them to the units tables yourself.  Stop.")
    result = make(tree, "-n", "TASK=SCR", f"EXP={tmp_path / 'exp'}", "BACKBONE=glsm", "predict", check=False)
    assert "BACKBONE=glsm: expected fairseq (GSLM's transformer_lm), hf or pgslm" in result.stderr


def test_pgslm_dry_run_adds_durations_and_f0_and_trains_the_multi_stream_ulm(tree, tmp_path):
    out = relative(make(tree, "-n", "TASK=SCR", f"EXP={tmp_path / 'exp'}", "BACKBONE=pgslm", "predict").stdout)
    assert "| .venv/bin/sp-dedup --durations | .venv/bin/sp-f0 --tracker praat --unit-rate 50 " in out
    assert "sp-pretrain " in out and "--arch pgslm" in out and "--backbone pgslm" in out
    gslm = relative(make(tree, "-n", "TASK=SCR", f"EXP={tmp_path / 'exp'}", "predict").stdout)
    assert "sp-f0" not in gslm and "--arch" not in gslm and "--backbone fairseq" in gslm
    # BACKBONE=gslm, SpeechPrompt v2's name, is the fairseq kind: the same commands
    assert relative(make(tree, "-n", "TASK=SCR", f"EXP={tmp_path / 'exp'}", "BACKBONE=gslm", "predict").stdout) == gslm


@pytest.mark.slow
def test_tiny_offline_chain_with_pgslm(tree, tmp_path):
    exp = tmp_path / "exp"
    args = ["TASK=SCR", f"EXP={exp}", "SYNTH_SPEAKERS=12", "BACKBONE=pgslm", *TINY]
    out = make(tree, *args, "predict").stdout
    summary = (exp / "summary.txt").read_text().splitlines()
    assert summary[0].endswith("  backbone=pgslm") and all(line in out for line in summary)
    row = (exp / "units" / "test.tsv").read_text().splitlines()[0].split("\t")
    assert len(row) == 5 and len(row[1].split()) == len(row[3].split()) == len(row[4].split())
    assert json.loads((exp / "prompt.json").read_text())["backbone"] == "pgslm"
    predictions = [json.loads(line) for line in (exp / "predictions.jsonl").read_text().splitlines()]
    assert sorted(p["id"] for p in predictions) == ids(exp / "manifest" / "test.tsv")
    assert "Nothing to be done" in make(tree, *args, "predict").stdout
