"""sp-pretrain and sp-train under torchrun: 2 CPU processes (gloo) against 1 process with the same effective batch."""
import json
import os
import subprocess

import pytest
import torch

from conftest import BIN, ROOT, sp
from speechprompt.checkpoints import load_checkpoint


def torchrun(tool, *args, processes=2, program=None):
    """`torchrun --nproc_per_node N sp-TOOL args` on the CPU, one thread a process; the CompletedProcess.
    `program`: the command to run the tool with instead of `sp-TOOL`."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    result = subprocess.run([str(BIN / "torchrun"), "--standalone", "--nproc_per_node", str(processes), "--no-python",
                             *map(str, program or [BIN / f"sp-{tool}"]), *map(str, args)],
                            capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def unit_bin(tmp_path_factory):
    from prompt_fixtures import make_databin, toy_rows

    unlabelled = lambda n, seed: [(uid, units, None) for uid, units, _ in toy_rows(n, seed)]
    return make_databin(str(tmp_path_factory.mktemp("ulm") / "bin"), {"train": unlabelled(400, 1),
                                                                    "valid": unlabelled(80, 2)})


@pytest.mark.slow
def test_pretrain_on_two_processes_matches_one_with_the_same_effective_batch(tmp_path, unit_bin):
    from speechprompt.checkpoints import load_lm
    from speechprompt.pretrain import lm_perplexity, read_split

    common = ["--size", "tiny", "--max-epoch", 3, "--max-tokens", 256, "--warmup-updates", 10, "--seed", 2,
              "--device", "cpu", "--threads", 1]
    # one process reading two batches an update sees what two processes reading one each see
    one = sp("pretrain", unit_bin, "--save-dir", tmp_path / "one", "--update-freq", 2, *common)
    two = torchrun("pretrain", unit_bin, "--save-dir", tmp_path / "two", *common)
    assert "256 tokens at most per process x 2 processes x update-freq 1 = 512" in two.stderr
    assert "256 tokens at most per process x 1 process x update-freq 2 = 512" in one.stderr
    assert two.stdout == ""
    assert two.stderr.count("valid perplexity") == 1  # rank 0 alone reports and writes
    assert sorted(os.listdir(tmp_path / "two")) == ["checkpoint_best.pt", "dict.txt", "pretrain.json"]
    summary = {run: json.loads((tmp_path / run / "pretrain.json").read_text()) for run in ("one", "two")}
    assert (summary["two"]["processes"], summary["two"]["update_freq"]) == (2, 1)
    assert summary["one"]["effective_max_tokens"] == summary["two"]["effective_max_tokens"] == 512
    assert summary["two"]["valid_ppl"] < summary["two"]["unigram_valid_ppl"]
    assert summary["two"]["valid_ppl"] == pytest.approx(summary["one"]["valid_ppl"], rel=0.05)
    model, dictionary = load_lm(str(tmp_path / "two" / "checkpoint_best.pt"))
    ppl = lm_perplexity(model, dictionary, read_split(unit_bin, "valid"), "cpu")
    assert ppl == pytest.approx(summary["two"]["valid_ppl"], rel=1e-4)


@pytest.mark.slow
def test_prompt_tuning_on_two_processes_equals_one_process_with_update_freq_2(tmp_path):
    from prompt_fixtures import make_databin, make_lm, toy_rows, write_verbalizer

    lm = make_lm(str(tmp_path / "lm"), normalize_before=True)
    data = make_databin(str(tmp_path / "bin"), {"train": toy_rows(240, 1), "valid": toy_rows(48, 2),
                                                "test": toy_rows(30, 3)})
    common = ["--base", lm, "--max-epoch", 2, "--batch-size", 8, "--lr", 2e-2, "--seed", 3, "--device", "cpu",
              "--threads", 1]
    one = sp("train", data, "-o", tmp_path / "one.pt", "--update-freq", 2, *common)
    two = torchrun("train", data, "-o", tmp_path / "two.pt", *common)
    assert "8 sentences at most per process x 2 processes x update-freq 1 = 16 sentences at most per update" in two.stderr
    assert "8 sentences at most per process x 1 process x update-freq 2 = 16" in one.stderr
    assert two.stderr.count("wrote ") == 1
    # work dirs gone, no stray files: each prompt and its summary (prompt.json), written by rank 0 alone
    assert sorted(os.listdir(tmp_path)) == ["bin", "lm", "one.json", "one.pt", "two.json", "two.pt"]
    a, b = load_checkpoint(str(tmp_path / "one.pt")), load_checkpoint(str(tmp_path / "two.pt"))
    assert set(a) == set(b) and a["config"] == b["config"] and set(a["training"]) == set(b["training"])
    assert {k: v for k, v in a["training"].items() if k not in ("processes", "update_freq")} \
        == {k: v for k, v in b["training"].items() if k not in ("processes", "update_freq")}
    assert (a["training"]["processes"], a["training"]["update_freq"], b["training"]["processes"]) == (1, 2, 2)
    assert a["labels"] == b["labels"] and a["base"] == b["base"]
    assert {k: (v.shape, v.dtype, v.device) for k, v in a["prompt"].items()} \
        == {k: (v.shape, v.dtype, v.device) for k, v in b["prompt"].items()}
    assert all(torch.isfinite(v).all() for v in b["prompt"].values())
    # the same updates: DistributedDataParallel's average over two processes is one process's two batches
    assert a["stop"]["updates"] == b["stop"]["updates"] and a["best"] == b["best"]
    for key in a["prompt"]:
        torch.testing.assert_close(a["prompt"][key], b["prompt"][key], rtol=1e-4, atol=1e-5)
    # and it decodes like any prompt
    sp("sample", data, "--prompt", tmp_path / "two.pt", "--verbalizer", write_verbalizer(str(tmp_path / "v.json")),
       "--device", "cpu", "-o", tmp_path / "two.jsonl")
    assert len((tmp_path / "two.jsonl").read_text().splitlines()) == 30


def test_make_nproc_runs_pretraining_and_prompt_tuning_under_torchrun(tmp_path):
    units = tmp_path / "units"
    units.mkdir()
    for split in ("train", "valid", "test"):
        (units / f"{split}.txt").write_text(f"{split}/1|1 2 3|yes\n")

    def dry_run(*variables):
        result = subprocess.run(["make", "-n", "--no-print-directory", "TASK=SCR", f"EXP={tmp_path}/exp",
                                 f"UNITS={units}", *variables, "predict"], capture_output=True, text=True, cwd=ROOT)
        assert result.returncode == 0, result.stderr
        return [line.split() for line in result.stdout.splitlines() if "sp-pretrain " in line or "sp-train " in line]

    alone = dry_run()
    assert [words[0].rsplit("/", 1)[-1] for words in alone] == ["sp-pretrain", "sp-train"]
    launched = dry_run("NPROC=2", "UPDATE_FREQ=3")
    assert [words[0].rsplit("/", 1)[-1] for words in launched] == ["torchrun", "torchrun"]
    for words, tool in zip(launched, ["sp-pretrain", "sp-train"]):
        assert words[1:6] == ["--standalone", "--nproc_per_node", "2", "--no-python", words[5]]
        assert words[5].endswith(tool) and "--update-freq 3" in " ".join(words)


STEP_TASK = {"SLURM_PROCID": "3", "SLURM_LOCALID": "1", "SLURM_STEP_NUM_TASKS": "4", "SLURM_NTASKS": "4",
             "SLURM_STEP_NODELIST": "gpu[07-08]", "SLURM_JOB_NODELIST": "gpu[07-09]", "SLURM_JOB_ID": "4242",
             "SLURM_STEP_ID": "1", "SLURM_CPUS_PER_TASK": "6"}


def test_a_task_of_a_slurm_step_gets_the_place_and_rendezvous_torchrun_would_give(monkeypatch):
    from speechprompt import distributed

    monkeypatch.setattr(os, "environ", dict(STEP_TASK))
    threads = torch.get_num_threads()
    try:
        assert distributed.world() == distributed.World(rank=3, local_rank=1, size=4)
        assert torch.get_num_threads() == 6 and os.environ["OMP_NUM_THREADS"] == "6"  # -c 6, as torchrun's default
    finally:
        torch.set_num_threads(threads)
    assert distributed.world() == distributed.World(rank=3, local_rank=1, size=4)  # again: from what it exported
    exported = {name: os.environ[name] for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")}
    port = 10000 + (4242 * 100 + 1) % 20000
    assert exported == {"RANK": "3", "LOCAL_RANK": "1", "WORLD_SIZE": "4", "MASTER_ADDR": "gpu07",
                        "MASTER_PORT": str(port)}
    # every task of the step computes the same rendezvous; the next step of the job another port
    other = distributed.slurm_environment(dict(STEP_TASK, SLURM_PROCID="0", SLURM_LOCALID="0"))
    assert (other["MASTER_ADDR"], other["MASTER_PORT"], other["RANK"]) == ("gpu07", str(port), "0")
    assert distributed.slurm_environment(dict(STEP_TASK, SLURM_STEP_ID="2"))["MASTER_PORT"] != str(port)
    assert distributed.slurm_environment(STEP_TASK)["OMP_NUM_THREADS"] == "6"  # -c 6: six threads a process
    no_c = {k: v for k, v in STEP_TASK.items() if k != "SLURM_CPUS_PER_TASK"}
    assert distributed.slurm_environment(no_c)["OMP_NUM_THREADS"] == "1"  # torchrun's default


def test_what_is_set_already_wins_and_a_lone_process_stays_alone(monkeypatch):
    from speechprompt import distributed

    given = dict(STEP_TASK, MASTER_ADDR="head", MASTER_PORT="29500", OMP_NUM_THREADS="2")
    assert set(distributed.slurm_environment(given)) == {"RANK", "LOCAL_RANK", "WORLD_SIZE"}
    # torchrun's variables (torchrun inside an allocation) are the place, not the step's
    monkeypatch.setattr(os, "environ", dict(STEP_TASK, RANK="5", LOCAL_RANK="0", WORLD_SIZE="8"))
    assert distributed.world() == distributed.World(rank=5, local_rank=0, size=8)
    # a batch script is one process, whatever --ntasks its job has: no step variables
    batch = {"SLURM_PROCID": "0", "SLURM_LOCALID": "0", "SLURM_NTASKS": "4", "SLURM_JOB_ID": "7",
             "SLURM_JOB_NODELIST": "n[1-4]"}
    monkeypatch.setattr(os, "environ", dict(batch))
    assert distributed.world() == distributed.World() and os.environ == batch
    # a step of one task: alone too
    assert distributed.slurm_environment(dict(STEP_TASK, SLURM_STEP_NUM_TASKS="1")) == {}


@pytest.mark.parametrize("nodes,first", [("vm", "vm"), ("gpu[07-09,12],cpu1", "gpu07"), ("node001,node002", "node001"),
                                         ("rack[2-3]-n[05-06]", "rack2-n05"), ("n[10]", "n10")])
def test_the_rendezvous_host_is_the_first_of_the_slurm_host_list(nodes, first):
    from speechprompt.distributed import first_host

    assert first_host(nodes) == first


def test_a_process_that_sees_one_gpu_uses_it_else_the_gpu_of_its_local_rank():
    from speechprompt.distributed import gpu_index

    assert [gpu_index(local_rank, 1) for local_rank in range(3)] == [0, 0, 0]  # srun --gpus-per-task 1
    assert [gpu_index(local_rank, 4) for local_rank in range(4)] == [0, 1, 2, 3]


@pytest.mark.parametrize("tool", ["pretrain", "train"])
def test_no_process_group_outlives_a_run_on_two_processes(tool, tmp_path, unit_bin):
    """A gloo group alive at the interpreter's teardown can abort a process whose work is done (SIGABRT), and Make
    then deletes what it wrote: every group a run makes (fairseq's own among them) is freed before."""
    from prompt_fixtures import make_databin, make_lm, toy_rows

    if tool == "pretrain":
        args = [unit_bin, "--save-dir", tmp_path / "ulm", "--size", "tiny", "--max-epoch", 2]
    else:
        data = make_databin(str(tmp_path / "bin"), {"train": toy_rows(64, 1), "valid": toy_rows(16, 2)})
        args = [data, "-o", tmp_path / "prompt.pt", "--base", make_lm(str(tmp_path / "lm")), "--max-epoch", 2,
                "--batch-size", 8]
    result = torchrun(tool, *args, "--device", "cpu", "--threads", 1,
                      program=[BIN / "python", ROOT / "tests" / "groups_at_exit.py", f"speechprompt.{tool}"])
    reports = sorted(line for line in result.stderr.splitlines() if "process groups alive at exit" in line)
    made = 2 if tool == "pretrain" else 1  # fairseq makes a group of its own beside the default one
    assert reports == [f"rank {rank}: 0 of {made} process groups alive at exit" for rank in (0, 1)]


def test_leaving_frees_every_process_group_before_the_interpreters_teardown(tmp_path):
    """A gloo group alive at the interpreter's teardown can abort a process whose work is done (SIGABRT): after
    fairseq's run and `leave()` none is left, neither the one fairseq caches for itself nor one in a cycle."""
    import weakref

    from fairseq import distributed_utils

    from speechprompt import distributed, fairseq_run

    torch.distributed.init_process_group("gloo", init_method=f"file://{tmp_path}/store", rank=0, world_size=1)
    try:
        fairseqs = distributed_utils.get_global_group()  # what fairseq's trainer all-reduces over
        cycle = {"group": torch.distributed.group.WORLD}
        cycle["self"] = cycle  # as a trainer's model or optimizer may hold its group
        alive = [weakref.ref(fairseqs), weakref.ref(cycle["group"])]
        del fairseqs, cycle
        assert all(ref() is not None for ref in alive)
        fairseq_run.forget_process_groups()
    finally:
        distributed.leave()
    assert not torch.distributed.is_initialized()
    assert [ref() for ref in alive] == [None, None]
