"""sp-pretrain: a tiny unit LM on generated units learns, and reloads."""
import json
import math
import os
import random
import signal
import subprocess
import time

import pytest
import torch
from click.testing import CliRunner

from conftest import sp
from speechprompt import binarize


def scalars(logdir, tag="loss"):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(logdir))
    events.Reload()
    return [event.value for event in events.Scalars(tag)]


def markov_units(path, count, seed, units=100):
    """`id<TAB>units` lines of a sparse Markov chain over `units` units: each unit is followed by one of
    three others, so an LM that learns the transitions beats the unigram distribution by far."""
    rng = random.Random(0)  # the chain, the same for every split
    follow = {u: rng.sample(range(units), 3) for u in range(units)}
    rng = random.Random(seed)
    lines = []
    for n in range(count):
        seq = [rng.randrange(units)]
        for _ in range(rng.randrange(15, 40)):
            seq.append(rng.choice(follow[seq[-1]]))
        lines.append(f"utt{n:04d}\t{' '.join(map(str, seq))}")
    path.write_text("\n".join(lines) + "\n")


def test_tiny_ulm_learns_and_reloads(tmp_path):
    markov_units(tmp_path / "train.u", 800, seed=1)
    markov_units(tmp_path / "valid.u", 150, seed=2)
    binarized = CliRunner().invoke(binarize.main, ["--units", "100", "--out", str(tmp_path / "bin"),
                                                   f"train={tmp_path / 'train.u'}", f"valid={tmp_path / 'valid.u'}"])
    assert binarized.exit_code == 0, binarized.output  # in-process: one fairseq import less
    run = sp("pretrain", tmp_path / "bin", "--save-dir", tmp_path / "ulm", "--size", "tiny", "--max-epoch", 4,
             "--max-tokens", 1024, "--warmup-updates", 10, "--threads", 1, "--seed", 3,
             "--tensorboard-logdir", tmp_path / "tb")
    assert run.stdout == ""  # fairseq's logs went to stderr
    valid = scalars(tmp_path / "tb" / "valid")
    assert len(valid) == 4 and valid[-1] < valid[0]  # one validation an epoch, and the loss went down
    assert sorted(os.listdir(tmp_path / "ulm")) == ["checkpoint_best.pt", "dict.txt", "pretrain.json"]
    summary = json.loads((tmp_path / "ulm" / "pretrain.json").read_text())
    assert summary["valid_ppl"] < summary["unigram_valid_ppl"] < 100
    assert summary["valid_ppl"] == pytest.approx(2 ** min(valid), rel=2e-3)  # fairseq's valid loss is in bits

    from speechprompt.checkpoints import load_lm
    from speechprompt.pretrain import lm_perplexity, read_split

    model, dictionary = load_lm(str(tmp_path / "ulm" / "checkpoint_best.pt"))
    assert len(dictionary) == 104 and sum(p.numel() for p in model.parameters()) == summary["parameters"]
    ppl = lm_perplexity(model, dictionary, read_split(str(tmp_path / "bin"), "valid"), "cpu")
    assert math.isclose(ppl, summary["valid_ppl"], rel_tol=1e-4)


def test_half_precision_needs_a_gpu(tmp_path):
    for name in ("dict.txt", "train.bin", "train.idx", "valid.bin", "valid.idx"):
        (tmp_path / name).write_text("")
    run = sp("pretrain", tmp_path, "--save-dir", tmp_path / "ulm", "--device", "cpu", "--precision", "bf16",
             check=False)
    assert run.returncode != 0 and "needs a GPU" in run.stderr
    assert not (tmp_path / "ulm").exists()


def test_cpu_training_on_a_machine_with_a_gpu_clips_on_the_cpu(monkeypatch):
    """`--device cpu` where CUDA is available: fairseq's gradient clipping stays on the CPU.

    fairseq's `clip_grad_norm_` moves the norm to the current GPU whenever CUDA is available, and the
    whole CPU run then failed on the first update ("scalar tensor is expected to be on cpu but is on
    cuda:0", seen on an H100 machine). `pick_device("cpu")` hides the GPUs from the process
    (CUDA_VISIBLE_DEVICES empty) before CUDA starts, with no patch of fairseq or torch. Here the GPU
    is simulated as the CUDA runtime behaves: visible unless CUDA_VISIBLE_DEVICES is empty, its
    current device `meta`; tests/test_cuda.py runs sp-pretrain on the CPU of a real GPU machine.
    """
    import torch
    from fairseq import utils

    from speechprompt.io import pick_device

    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)  # restored after the test
    monkeypatch.setattr(torch.cuda, "is_available", lambda: os.environ.get("CUDA_VISIBLE_DEVICES") != "")
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: False)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: torch.device("meta"))
    layer = torch.nn.Linear(4, 3)
    layer(torch.ones(2, 4)).sum().mul(100).backward()
    # what fairseq does on its own: the norm goes to "the GPU" (on a real one, clipping by it then fails)
    assert utils.clip_grad_norm_(list(layer.parameters()), 1.0).device.type == "meta"
    assert pick_device("cpu") == torch.device("cpu")
    assert os.environ["CUDA_VISIBLE_DEVICES"] == ""
    norm = utils.clip_grad_norm_(list(layer.parameters()), 1.0)
    assert norm.device.type == "cpu" and norm > 1
    clipped = torch.cat([p.grad.flatten() for p in layer.parameters()]).norm()
    assert clipped == pytest.approx(1.0, rel=1e-4)


# ---------------------------------------------------------------- resuming a killed run
def state_dict(path):
    from speechprompt.checkpoints import load_checkpoint

    return load_checkpoint(str(path))["model"]


def assert_same_weights(a, b):
    import torch

    first, second = state_dict(a), state_dict(b)
    assert first.keys() == second.keys()
    different = [name for name in first if not torch.equal(first[name], second[name])]
    assert different == [], different


@pytest.fixture(scope="module")
def unit_bin(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    markov_units(root / "train.u", 200, seed=1)
    markov_units(root / "valid.u", 40, seed=2)
    binarized = CliRunner().invoke(binarize.main, ["--units", "100", "--out", str(root / "bin"),
                                                   f"train={root / 'train.u'}", f"valid={root / 'valid.u'}"])
    assert binarized.exit_code == 0, binarized.output
    return root / "bin"


# A run of a few seconds: 2 epochs of 11 updates, its state saved every 4 updates and at each epoch's end.
RESUMABLE = ["--size", "tiny", "--max-epoch", 2, "--max-tokens", 512, "--warmup-updates", 10, "--seed", 5,
             "--threads", 1, "--patience", -1, "--save-interval-updates", 4, "--log-interval", 1]


@pytest.fixture(scope="module")
def uninterrupted(unit_bin, tmp_path_factory):
    save = tmp_path_factory.mktemp("whole") / "ulm"
    sp("pretrain", unit_bin, "--save-dir", save, *RESUMABLE)
    return save


def start(unit_bin, save, *extra):
    from conftest import BIN

    return subprocess.Popen([str(BIN / "sp-pretrain"), str(unit_bin), "--save-dir", str(save),
                             *map(str, RESUMABLE), *map(str, extra)], stderr=subprocess.PIPE, text=True)


def wait_for(path, process, seconds=300):
    deadline = time.time() + seconds
    while not path.exists():
        assert process.poll() is None, f"sp-pretrain ended before {path.name} appeared:\n{process.stderr.read()}"
        assert time.time() < deadline
        time.sleep(0.02)


@pytest.mark.parametrize("how, after", [(signal.SIGKILL, "checkpoint_last.pt"), (signal.SIGTERM, "progress.json")],
                         ids=["SIGKILL-in-epoch-1", "SIGTERM-after-epoch-1"])
def test_a_killed_run_resumes_to_the_uLM_of_an_uninterrupted_one(unit_bin, uninterrupted, tmp_path, how, after):
    save = tmp_path / "ulm"
    (save / ".train.x1y2z3").mkdir(parents=True)  # an older sp-pretrain's scratch directory, dead with its run
    killed = start(unit_bin, save)
    wait_for(save / ".train" / after, killed)
    # Held where it is (alive, its lock held) while a second run is refused, so that the signal lands
    # mid-run: the run is a few seconds long, and the second run's start-up alone can outlast it.
    killed.send_signal(signal.SIGSTOP)
    second = sp("pretrain", unit_bin, "--save-dir", save, *RESUMABLE, check=False)  # one run a SAVE_DIR
    assert second.returncode == 1 and "Traceback" not in second.stderr
    assert f"sp-pretrain: error: {save}: busy: pid {killed.pid} on " in second.stderr.splitlines()[-1]
    killed.send_signal(how)
    killed.send_signal(signal.SIGCONT)
    assert killed.wait(timeout=120) in (-signal.SIGKILL, 128 + signal.SIGTERM)
    assert "Traceback" not in killed.stderr.read()
    assert not (save / "checkpoint_best.pt").exists() and (save / ".train" / "checkpoint_last.pt").exists()

    other = sp("pretrain", unit_bin, "--save-dir", save, *RESUMABLE, "--seed", 6, check=False)
    assert other.returncode == 1 and "Traceback" not in other.stderr
    assert other.stderr.splitlines()[-1].startswith(f"sp-pretrain: error: {save}: a stopped run with other "
                                                    f"settings (--seed 5 -> 6) left its state in {save}/.train")
    assert (save / ".train" / "checkpoint_last.pt").exists()  # refused: the state is kept

    resumed = sp("pretrain", unit_bin, "--save-dir", save, *RESUMABLE)
    assert "resuming the stopped run" in resumed.stderr
    assert sorted(os.listdir(save)) == ["checkpoint_best.pt", "dict.txt", "pretrain.json"]  # no scratch, no lock
    assert_same_weights(save / "checkpoint_best.pt", uninterrupted / "checkpoint_best.pt")
    summary, whole = (json.loads((d / "pretrain.json").read_text()) for d in (save, uninterrupted))
    assert summary["valid_ppl"] == whole["valid_ppl"]


def test_restart_discards_a_stopped_run_with_other_settings(unit_bin, uninterrupted, tmp_path):
    save = tmp_path / "ulm"
    killed = start(unit_bin, save, "--seed", 6)
    wait_for(save / ".train" / "checkpoint_last.pt", killed)
    killed.kill()
    killed.wait()
    restarted = sp("pretrain", unit_bin, "--save-dir", save, *RESUMABLE, "--if-settings-differ", "restart")
    assert f"removing {save}/.train (its settings differ: --seed 6 -> 5" in restarted.stderr
    assert "resuming" not in restarted.stderr
    assert_same_weights(save / "checkpoint_best.pt", uninterrupted / "checkpoint_best.pt")


def test_a_stopped_runs_state_is_resumed_refused_or_discarded_by_its_settings(tmp_path):
    """Scratch.prepare on a state a stopped run left: the same settings resume it; other ones are refused,
    or (--if-settings-differ restart) discarded; --restart discards it whatever its settings."""
    from speechprompt import fairseq_run
    from speechprompt.io import BadInput

    scratch = fairseq_run.Scratch(str(tmp_path))
    settings = {"fairseq": {"--seed": "1", "--lr": "0.003"}, "data": dict.fromkeys(fairseq_run.DATA_FILES, "x"),
                "patience": 3}
    other = {**settings, "fairseq": {"--seed": "2", "--lr": "0.003"}}

    def stopped_run():
        os.makedirs(scratch.path, exist_ok=True)
        torch.save({"extra_state": {"train_iterator": {"epoch": 3, "iterations_in_epoch": 0}, "val_loss": 2.5},
                    "optimizer_history": [{"num_updates": 40}]}, scratch.file("checkpoint_last.pt"))
        fairseq_run.write_json(scratch.file("settings.json"), settings)

    stopped_run()
    at = scratch.prepare(settings, restart=False)
    assert (at.epoch, at.within, at.updates, at.valid_loss) == (3, 0, 40, 2.5)
    with pytest.raises(BadInput, match=r"a stopped run with other settings \(--seed 1 -> 2\)"):
        scratch.prepare(other, restart=False)
    assert os.path.exists(scratch.file("checkpoint_last.pt"))  # refused: kept
    assert scratch.prepare(other, restart=False, if_settings_differ="restart") is None
    assert sorted(os.listdir(scratch.path)) == ["settings.json"]  # a new run's directory, with the new settings
    stopped_run()
    assert scratch.prepare(settings, restart=True) is None and os.listdir(scratch.path) == ["settings.json"]


def test_the_final_checkpoint_has_no_optimizer_state_and_fp32_weights(uninterrupted):
    from speechprompt.checkpoints import load_checkpoint

    state = load_checkpoint(str(uninterrupted / "checkpoint_best.pt"))
    assert "last_optimizer_state" not in state
    assert {value.dtype for value in state["model"].values() if value.is_floating_point()} == {torch.float32}


def test_bf16_is_fairseq_s_own_bf16_without_its_tpu_tie():
    """--precision bf16 trains with fairseq's `--bf16` (its own option, no patch); fairseq's command line
    ties it to TPUs, which the parsed options undo. fp16 is fairseq's `--amp`."""
    from speechprompt import fairseq_run
    from speechprompt.pretrain import fairseq_argv, precision_argv

    assert precision_argv("bf16") == ["--bf16"] and precision_argv("fp16") == ["--amp"] and precision_argv("fp32") == []
    argv = fairseq_argv("bin", "save", "tiny", None, 10, 512, 1, 0, -1, 1, torch.device("cpu"), "bf16", 0.1, None, 10)
    cfg = fairseq_run.config(argv)
    assert cfg.common.bf16 and not cfg.common.tpu and not cfg.common.amp
