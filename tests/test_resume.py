"""sp-train on shared machines: a killed run resumes to the prompts of an uninterrupted one, one run an output,
settings that differ refused, and its failures one line (damaged data-bins, a full disk, a read-only output)."""
import contextlib
import os
import shutil
import signal
import subprocess
import time

import pytest
import torch

from conftest import BIN, sp
from prompt_fixtures import make_databin, make_lm, toy_rows
from speechprompt.checkpoints import load_checkpoint

SETTINGS = ["--max-epoch", 25, "--patience", 0, "--batch-size", 16, "--lr", 2e-2, "--prompt-length", 4, "--seed", 3,
            "--device", "cpu", "--threads", 1]


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    lm = make_lm(str(root / "lm"), normalize_before=True)
    data = make_databin(str(root / "bin"), {"train": toy_rows(240, 1), "valid": toy_rows(48, 2)})
    reference = root / "reference.pt"
    sp("train", data, "--base", lm, "-o", reference, *SETTINGS)
    return lm, data, load_checkpoint(str(reference)), reference


def start(lm, data, out, *extra):
    """sp-train in the background (a real process: signals must reach it), its stderr to a file."""
    log = open(f"{out}.log", "w")
    return subprocess.Popen([str(BIN / "sp-train"), data, "--base", lm, "-o", str(out), *map(str, SETTINGS + list(extra))],
                            stdout=subprocess.DEVNULL, stderr=log, text=True)


def wait_for(condition, process, seconds=120):
    deadline = time.monotonic() + seconds
    while not condition():
        assert process.poll() is None, "sp-train ended before the test could interrupt it"
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def state_updates(out) -> int:
    with contextlib.suppress(Exception):
        return load_checkpoint(f"{out}.work/state.pt")["position"]["updates"]
    return 0


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL])
def test_a_killed_run_resumes_and_ends_with_the_prompts_of_an_uninterrupted_one(tmp_path, toy, how):
    lm, data, reference, _ = toy
    out = tmp_path / "prompt.pt"
    process = start(lm, data, out)
    wait_for(lambda: state_updates(out) >= 30, process)  # two epochs saved: well into the run
    process.send_signal(how)
    assert process.wait(60) == (128 + how if how == signal.SIGTERM else -how)
    saved = state_updates(out)
    assert saved >= 30 and not out.exists()
    log = open(f"{out}.log").read()
    if how == signal.SIGTERM:  # saved at the end of the update it was in, and said so
        assert f"interrupted at update {saved}: state saved to {out}.work/state.pt" in log
    assert "Traceback" not in log
    rerun = sp("train", data, "--base", lm, "-o", out, *SETTINGS)
    assert f"resumed from {out}.work/state.pt: epoch " in rerun.stderr and f"update {saved}," in rerun.stderr
    ours = load_checkpoint(str(out))
    assert ours["stop"]["updates"] == reference["stop"]["updates"] == 25 * 15
    assert ours["best"] == reference["best"] and set(ours["prompt"]) == set(reference["prompt"])
    for key, tensor in reference["prompt"].items():
        assert torch.equal(ours["prompt"][key], tensor), key  # exact, on the CPU
    assert not os.path.exists(f"{out}.work")  # the resume state goes once the prompt is written


def test_a_second_run_on_the_same_output_refuses_while_the_first_is_alive(tmp_path, toy):
    lm, data, _, _ = toy
    out = tmp_path / "prompt.pt"
    first = start(lm, data, out)
    try:
        wait_for(lambda: state_updates(out) >= 15, first)
        second = sp("train", data, "--base", lm, "-o", out, *SETTINGS, check=False)
        assert second.returncode == 1 and "Traceback" not in second.stderr
        assert second.stderr.strip().splitlines()[-1] == (
            f"sp-train: error: {out}: busy: pid {first.pid} on {os.uname().nodename} is working on it "
            f"(lock {tmp_path}/.prompt.pt.lock); wait for it, or stop it")
    finally:
        first.kill()
        first.wait()
    # the dead holder's lock is taken over: the next run resumes and finishes
    sp("train", data, "--base", lm, "-o", out, *SETTINGS)
    assert out.exists() and not (tmp_path / ".prompt.pt.lock").exists()


def test_a_resume_with_other_settings_is_refused_in_one_line_unless_told_to_restart(tmp_path, toy):
    lm, data, _, _ = toy
    out = tmp_path / "prompt.pt"
    process = start(lm, data, out)
    wait_for(lambda: state_updates(out) >= 15, process)
    process.send_signal(signal.SIGTERM)
    process.wait(60)
    state = f"{out}.work/state.pt"
    other = [a if a != 2e-2 else 1e-2 for a in SETTINGS]
    refused = sp("train", data, "--base", lm, "-o", out, *other, check=False)
    assert refused.returncode == 1 and refused.stderr.strip().splitlines()[-1] == (
        f"sp-train: error: {state}: a run with other settings left this resume state (lr 0.02 there, 0.01 here); "
        f"rerun with its settings to resume it, or with --restart to start afresh")
    assert os.path.exists(state) and not out.exists()
    fresh = sp("train", data, "--base", lm, "-o", out, *other, "--if-settings-differ", "restart")
    assert "starting afresh" in fresh.stderr and "resumed" not in fresh.stderr
    assert load_checkpoint(str(out))["training"]["lr"] == 1e-2


@pytest.mark.parametrize("tool", ["train", "sample"])
@pytest.mark.parametrize("damage,message", [
    ("truncate-bin", "{split}.bin: truncated: "),
    ("truncate-idx", "{split}.idx: truncated: "),
    ("empty", "{split}.bin: the split has no sentences"),
    ("garbage-dict", "dict.txt: not a dictionary"),
])
def test_a_damaged_data_bin_is_one_line(tmp_path, toy, tool, damage, message):
    """sp-train reads train first (an empty split: valid, which it reads next), sp-sample the split it decodes."""
    lm, data, _, prompt = toy
    split = "valid" if tool == "sample" or damage == "empty" else "train"
    broken = tmp_path / "bin"
    shutil.copytree(data, broken)
    if damage.startswith("truncate"):
        path = broken / f"{split}.{damage[-3:]}"
        path.write_bytes(path.read_bytes()[:-7])
    elif damage == "empty":
        make_databin(str(tmp_path / "empty"), {split: []})
        for suffix in ("bin", "idx", "id"):
            shutil.copy(tmp_path / "empty" / f"{split}.{suffix}", broken / f"{split}.{suffix}")
    else:
        (broken / "dict.txt").write_text("12\n")
    args = {"train": ["--base", lm, "-o", tmp_path / "p.pt", *SETTINGS],
            "sample": ["--prompt", prompt, "--split", "valid", "-o", tmp_path / "p.jsonl", "--device", "cpu"]}[tool]
    result = sp(tool, broken, *args, check=False)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[-1].startswith(f"sp-{tool}: error: {broken}/") and message.format(split=split) in lines[-1], lines[-1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bin"] + ["empty"] * (damage == "empty")  # nothing beside


@contextlib.contextmanager
def mounted_tmpfs(path, options):
    """A tmpfs at `path` (the test is skipped where mounting is not allowed)."""
    path.mkdir()
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True, text=True)
    if mount.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mount.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_a_read_only_output_directory_is_refused_before_training(tmp_path, toy):
    lm, data, _, _ = toy
    with mounted_tmpfs(tmp_path / "ro", "ro,size=64k") as ro:
        result = sp("train", data, "--base", lm, "-o", ro / "prompt.pt", *SETTINGS, check=False)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert lines[-1] == f"sp-train: error: {ro}/prompt.pt: cannot write: {ro} is on a read-only file system"
    assert not any("epoch" in line for line in lines)  # nothing trained


def test_a_full_disk_when_saving_is_one_line_and_keeps_the_previous_state(tmp_path, toy):
    lm, data, _, _ = toy
    out = tmp_path / "prompt.pt"
    process = start(lm, data, out)
    wait_for(lambda: state_updates(out) >= 15, process)
    process.send_signal(signal.SIGTERM)
    process.wait(60)
    saved = open(f"{out}.work/state.pt", "rb").read()
    with mounted_tmpfs(tmp_path / "small", f"size={len(saved) + 8192}") as small:
        shutil.copytree(f"{out}.work", small / "prompt.pt.work")  # the state, and room for less than another
        result = sp("train", data, "--base", lm, "-o", small / "prompt.pt", *SETTINGS, check=False)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 1 and "Traceback" not in result.stderr
        assert lines[-1] == (f"sp-train: error: {small}/prompt.pt.work/state.pt: cannot save the resume state "
                             f"(No space left on device); the previous one is kept")
        assert (small / "prompt.pt.work" / "state.pt").read_bytes() == saved
        assert sorted(os.listdir(small / "prompt.pt.work")) == ["state.pt"]  # no temporary left
        assert not (small / "prompt.pt").exists()
