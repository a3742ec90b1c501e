"""The Make chain: dry runs print the experiment; a tiny real run goes end to end."""
import subprocess

from conftest import ROOT, SHARED_UNITS

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


def test_units_skip_the_audio_stages_and_ulm_skips_pretraining(tmp_path, shared_units):
    ulm, dictionary = tmp_path / "hubert100_lm.pt", tmp_path / "dict.txt"
    ulm.touch()
    dictionary.touch()
    out = make("-n", "TASK=SCR", f"EXP={tmp_path}/exp", f"UNITS={SHARED_UNITS}",
               f"ULM={ulm}", f"DICT={dictionary}", "predict").stdout
    for tool in ["sp-synth", "sp-manifest", "sp-kmeans", "sp-quantize", "sp-pretrain"]:
        assert f"/{tool} " not in out
    assert f".venv/bin/sp-dedup --skip-bad {SHARED_UNITS}/train.txt" in out
    assert f"--ulm {ulm}" in out
    assert f"binarize --dict {dictionary}" in out


def test_a_task_without_offline_corpus_asks_for_data(tmp_path):
    result = make("-n", "TASK=IC", f"EXP={tmp_path}/exp", "predict", check=False)
    assert result.returncode != 0 and "give DATA=" in result.stderr
