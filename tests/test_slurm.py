"""The recipe on a scheduler (docs/scaling.md): the launchers CPU_CMD and GPU_CMD in `make -n`, kept out
of the tracked settings; and on a throwaway SLURM (tests/local_slurm.py, tests marked slow): a tiny chain
whose heavy stages run as SLURM jobs writes what a local run writes, the uLM pretrained as one 2-task
SLURM step is the local torchrun run's, and a job cancelled mid-stage leaves nothing Make takes as done."""
import collections
import json
import re
import shlex
import subprocess
import time

import pytest
import torch

from conftest import ROOT
from local_slurm import LocalSlurm, Unavailable
from prompt_fixtures import toy_rows
from test_make import TINY, VENV, relative, tree  # noqa: F401  (tree: the fixture, a copy of the checkout)

CPU_STAGES = {"sp-kmeans", "sp-quantize", "sp-baseline"}  # with the log-mel encoder
GPU_STAGES = {"sp-pretrain", "sp-train", "sp-sample"}


def make(tree, *args, env=None, check=True):
    result = subprocess.run(["make", "--no-print-directory", VENV, *map(str, args)], cwd=tree, env=env,
                            capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"make {' '.join(map(str, args))} exited {result.returncode}:\n"
                             f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def launched(stdout):
    """{tool: the words before it} for each command line of `make -n` that starts an sp-* tool."""
    found = {}
    for line in relative(stdout).splitlines():
        match = re.match(r"(.*?)\.venv/bin/(sp-\w+) ", line)
        if match:
            found.setdefault(match.group(2), set()).add(match.group(1).strip())
    return found


def toy_units(directory):
    """GSLM `name|units|label` files of the toy task (prompt_fixtures.toy_rows)."""
    directory.mkdir()
    for split, count, seed in [("train", 400, 1), ("valid", 80, 2), ("test", 40, 3)]:
        (directory / f"{split}.txt").write_text(
            "".join(f"{uid}|{' '.join(map(str, units))}|{label}\n" for uid, units, label in toy_rows(count, seed)))
    return directory


def test_each_heavy_stage_runs_behind_its_launcher_and_the_light_ones_here(tree, tmp_path):
    dry = make(tree, "-n", "TASK=SCR", f"EXP={tmp_path}/exp", "QUANTIZE_SHARDS=2",
               "CPU_CMD=cpu-launcher -c 4", "GPU_CMD=gpu-launcher --gpus-per-task 1", "predict").stdout
    prefixes = launched(dry)
    assert {tool for tool, before in prefixes.items() if before == {"cpu-launcher -c 4"}} == CPU_STAGES
    assert {tool for tool, before in prefixes.items() if before == {"gpu-launcher --gpus-per-task 1"}} == GPU_STAGES
    assert {tool for tool, before in prefixes.items() if before == {""}} == \
        {"sp-synth", "sp-manifest", "sp-lmdata", "sp-verbalize", "sp-binarize", "sp-score"}
    assert len(re.findall(r"^cpu-launcher -c 4 \S+/sp-quantize .* --shard \d --num-shards 2 ", dry, re.M)) == 6
    # HuBERT features: k-means and quantizing go to the GPU; NPROC: one step of NPROC tasks
    dry = make(tree, "-n", "TASK=SCR", f"EXP={tmp_path}/exp", "ENCODER=hubert", "HUBERT=/models/hubert.pt", "NPROC=4",
               "CPU_CMD=srun -c 4", "GPU_CMD=srun --gpus-per-task 1", "predict").stdout
    prefixes = launched(dry)
    assert prefixes["sp-kmeans"] == prefixes["sp-quantize"] == prefixes["sp-sample"] == {"srun --gpus-per-task 1"}
    assert prefixes["sp-pretrain"] == prefixes["sp-train"] == {"srun --gpus-per-task 1 --ntasks 4"}
    assert prefixes["sp-baseline"] == {"srun -c 4"}
    # a fixed layout over several nodes: LAUNCH, the whole launcher of these two stages
    fixed = "srun --nodes 2 --ntasks-per-node 2 --gpus-per-task 1"
    prefixes = launched(make(tree, "-n", "TASK=SCR", f"EXP={tmp_path}/exp", "NPROC=4", f"LAUNCH={fixed}",
                             "GPU_CMD=srun --gpus-per-task 1", "predict").stdout)
    assert prefixes["sp-pretrain"] == prefixes["sp-train"] == {fixed}
    assert prefixes["sp-sample"] == {"srun --gpus-per-task 1"}
    # NPROC without a launcher: torchrun here
    here = launched(make(tree, "-n", "TASK=SCR", f"EXP={tmp_path}/exp", "NPROC=4", "predict").stdout)
    assert here.pop("sp-pretrain") == here.pop("sp-train") == {".venv/bin/torchrun --standalone --nproc_per_node 4 --no-python"}
    assert all(before == {""} for before in here.values())


def test_the_doc_shows_what_make_n_prints_for_its_launchers(tree):
    text = (ROOT / "docs" / "scaling.md").read_text()
    command = re.search(r"^    (make -j \d+ TASK=SCR [^\n]*\\\n[^\n]*predict)$", text, re.M).group(1)
    words = shlex.split(command.replace("\\\n", " "))
    printed = text.split("without running anything):\n\n```\n")[1].split("```")[0].splitlines()
    dry = relative(make(tree, "-n", *words[3:]).stdout)  # `make -j 16` as `make -n`; EXP: exp/SCR in the tree
    assert [line for line in dry.splitlines() if line.startswith("srun ")] == printed
    assert dry.count("srun ") == len(printed)


def test_launchers_are_not_settings_a_launcher_reruns_nothing(tree, tmp_path):
    exp, units = tmp_path / "exp", toy_units(tmp_path / "units")
    args = ["TASK=SCR", f"EXP={exp}", f"UNITS={units}"]
    for stage in ["units", "lm", "data-bin", "ulm/data-bin", "baseline"]:
        (exp / stage).mkdir(parents=True)  # make -t touches files, it makes no directories
    make(tree, "-t", *args, "predict")  # every stage marked done without running it
    assert make(tree, "-q", *args, "predict", check=False).returncode == 0
    assert make(tree, "-q", *args, "CPU_CMD=srun -c 8", "GPU_CMD=srun --gpus-per-task 1", "predict",
                check=False).returncode == 0
    assert make(tree, "-q", *args, "TRAIN=srun sp-train", "predict", check=False).returncode == 1  # a command is


# ------------------------------------------------------------ on a live SLURM


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    cluster = LocalSlurm(tmp_path_factory.mktemp("slurm"))
    try:
        cluster.start()
    except Unavailable as why:
        pytest.skip(str(why))
    yield cluster
    cluster.stop()


def final_state(slurm, job, seconds=30):
    """The job's state once it has left COMPLETING (the scheduler is still cleaning up after its tasks)."""
    deadline = time.monotonic() + seconds
    while True:
        state = next(j["JobState"] for j in slurm.jobs() if j["JobId"] == job)
        if state != "COMPLETING" or time.monotonic() > deadline:
            return state
        time.sleep(0.2)


def last_job(slurm):
    return max((int(job["JobId"]) for job in slurm.jobs()), default=0)


@pytest.mark.slow
def test_a_tiny_chain_run_as_slurm_jobs_writes_what_a_local_run_writes(tree, slurm, tmp_path):  # noqa: F811
    from speechprompt.checkpoints import load_checkpoint

    local, remote = tmp_path / "local", tmp_path / "slurm"
    common = ["TASK=SCR", *TINY, "NPROC=2"]
    # here: each split quantized by one process, the uLM and the prompt by 2 processes under torchrun
    make(tree, f"EXP={local}", "SYNTH_SPEAKERS=6", *common, "predict")
    # on SLURM: the same corpus, 4 shards a split, every heavy stage a job, NPROC=2 as one 2-task step
    before = last_job(slurm)
    on_slurm = [f"EXP={remote}", f"DATA={local}/corpus", *common, "QUANTIZE_SHARDS=4", "CPU_CMD=srun", "GPU_CMD=srun"]
    make(tree, "-j", 4, *on_slurm, "predict", env=slurm.env())

    for split in ("train", "valid", "test"):
        shards = [(remote / "units" / "shards" / f"{split}.{i}-of-4.tsv").read_bytes() for i in range(4)]
        assert all(shards), split  # every shard holds utterances
        assert (remote / "units" / f"{split}.tsv").read_bytes() == (local / "units" / f"{split}.tsv").read_bytes()
    ulms = [load_checkpoint(str(exp / "ulm" / "checkpoint_best.pt"))["model"] for exp in (local, remote)]
    assert ulms[0].keys() == ulms[1].keys() and all(torch.equal(ulms[0][k], ulms[1][k]) for k in ulms[0])
    for exp in (local, remote):
        assert json.loads((exp / "ulm" / "pretrain.json").read_text())["processes"] == 2
    assert (remote / "predictions.jsonl").read_bytes() == (local / "predictions.jsonl").read_bytes()
    for name in ("metrics.json", "baseline/metrics.json", "baseline-logmel/metrics.json"):
        assert json.loads((remote / name).read_text()) == json.loads((local / name).read_text()), name

    jobs = [job for job in slurm.jobs() if int(job["JobId"]) > before]
    assert collections.Counter(job["JobName"] for job in jobs) == {
        "sp-kmeans": 1, "sp-quantize": 12, "sp-baseline": 2, "sp-pretrain": 1, "sp-train": 1, "sp-sample": 1}
    assert all(job["JobState"] == "COMPLETED" for job in jobs)
    assert {job["JobName"]: job["NumTasks"] for job in jobs if job["JobName"] in ("sp-pretrain", "sp-train")} \
        == {"sp-pretrain": "2", "sp-train": "2"}
    shards = [(job["StartTime"], job["EndTime"]) for job in jobs if job["JobName"] == "sp-quantize"]
    assert any(a < d and c < b for i, (a, b) in enumerate(shards) for c, d in shards[i + 1:])  # some ran at once
    # up to date, with the launchers or without them
    assert make(tree, "-q", *on_slurm, "predict", env=slurm.env(), check=False).returncode == 0
    assert make(tree, "-q", *on_slurm[:-2], "predict", check=False).returncode == 0


def cancel_when(slurm, running, log, tool, ready, seconds=180):
    """scancel the job running `tool` once `ready()` holds; return its id once make has exited, and make's output."""
    deadline, job = time.monotonic() + seconds, None
    while job is None and time.monotonic() < deadline and running.poll() is None:
        jobs = [j for j in slurm.jobs() if j["JobName"] == tool and j["JobState"] == "RUNNING"]
        if jobs and ready():
            job = jobs[0]["JobId"]
        time.sleep(0.2)
    assert job, f"{tool} was not cancelled:\n" + log.read_text()[-3000:]
    slurm.run("scancel", job)
    assert running.wait(120) != 0
    return job, log.read_text()


@pytest.mark.slow
def test_a_job_cancelled_mid_stage_leaves_nothing_done_and_the_rerun_resumes_there(tree, slurm, tmp_path):  # noqa: F811
    exp, units = tmp_path / "exp", toy_units(tmp_path / "units")
    args = ["TASK=SCR", f"EXP={exp}", f"UNITS={units}", "K=24", "ULM_SIZE=tiny", "ULM_EPOCHS=10", "EPOCHS=20",
            "PATIENCE=0", "GPU_CMD=srun"]
    ulm, prompt, state = exp / "ulm", exp / "prompt.pt", exp / "prompt.pt.work" / "state.pt"

    def start(log):
        with open(log, "w") as out:
            return subprocess.Popen(["make", "--no-print-directory", VENV, *args, prompt], cwd=tree, env=slurm.env(),
                                    stdout=out, stderr=subprocess.STDOUT)

    # sp-pretrain cancelled once its work has begun (its scratch directory exists): no uLM; only the run's
    # state in ulm/.train, kept for the rerun to resume from (or none, if no checkpoint was saved yet)
    job, out = cancel_when(slurm, start(tmp_path / "1.log"), tmp_path / "1.log", "sp-pretrain",
                           lambda: (ulm / ".train").exists())
    assert f"STEP {job}.0 ON" in out and "CANCELLED" in out
    assert final_state(slurm, job) == "CANCELLED"
    assert not (ulm / "checkpoint_best.pt").exists() and not list(ulm.glob(".train.*"))  # nothing done, no litter
    assert make(tree, "-q", *args, prompt, env=slurm.env(), check=False).returncode == 1

    # the rerun starts at sp-pretrain (the stages before it stay done); sp-train, cancelled after a
    # validation, keeps its resume state but writes no prompt
    job, out = cancel_when(slurm, start(tmp_path / "2.log"), tmp_path / "2.log", "sp-train", state.exists)
    assert launched(out) == {"sp-pretrain": {"srun"}, "sp-train": {"srun"}}
    assert (ulm / "checkpoint_best.pt").exists() and "interrupted at update" in out
    assert not (ulm / ".train").exists()  # the uLM written, its run's state goes
    assert final_state(slurm, job) == "CANCELLED"
    assert state.exists() and not prompt.exists()
    assert make(tree, "-q", *args, prompt, env=slurm.env(), check=False).returncode == 1

    # and the next rerun resumes sp-train from that state
    result = make(tree, *args, prompt, env=slurm.env())
    assert launched(result.stdout) == {"sp-train": {"srun"}}
    assert f"resumed from {state}" in result.stderr
    assert prompt.exists() and not state.exists()
    assert make(tree, "-q", *args, prompt, env=slurm.env(), check=False).returncode == 0
