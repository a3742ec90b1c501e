"""sp-pretrain: a tiny unit LM on generated units learns, and reloads."""
import json
import math
import os
import random

import pytest
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
    cuda:0", seen on an H100 machine). Here the GPU is simulated by a current device of `meta`;
    tests/test_cuda.py runs sp-pretrain on the CPU of a real GPU machine.
    """
    import torch
    from fairseq import utils

    from speechprompt.precision import fairseq_training

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: torch.device("meta"))
    layer = torch.nn.Linear(4, 3)
    layer(torch.ones(2, 4)).sum().mul(100).backward()
    # what fairseq does on its own: the norm goes to "the GPU" (on a real one, clipping by it then fails)
    assert utils.clip_grad_norm_(list(layer.parameters()), 1.0).device.type == "meta"
    with fairseq_training(torch.device("cpu"), "fp32"):
        norm = utils.clip_grad_norm_(list(layer.parameters()), 1.0)
    assert norm.device.type == "cpu" and norm > 1
    clipped = torch.cat([p.grad.flatten() for p in layer.parameters()]).norm()
    assert clipped == pytest.approx(1.0, rel=1e-4)
