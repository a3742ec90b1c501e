"""The tools on a CUDA GPU: the same results as on the CPU, half precision by autocast, checkpoints that load on the CPU.

Every test here is marked `cuda` and skipped without a GPU; tests/gpu_check.sh runs them on a GPU machine.
"""
import json

import numpy as np
import pytest
import torch

from conftest import sp
from speechprompt.checkpoints import load_checkpoint

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


def read_jsonl(path):
    return [json.loads(line) for line in open(path, encoding="utf-8")]


def tensors_of(path):
    """Every tensor of a checkpoint, loaded without map_location: each keeps the device it was saved from."""
    from speechprompt.checkpoints import fairseq_globals

    with fairseq_globals():
        state = torch.load(path, weights_only=True)
    found = []

    def walk(value):
        if isinstance(value, torch.Tensor):
            found.append(value)
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, (list, tuple)):
            for item in value:
                walk(item)
    walk(state)
    return found


# --------------------------------------------------------------------- quantize
@pytest.mark.parametrize("encoder", ["logmel", "hubert"])
def test_quantize_on_cuda_gives_the_cpu_units(tmp_path, encoder):
    from test_quantize import corpus, run, save_hubert
    from speechprompt import kmeans, quantize

    manifest = corpus(tmp_path, n=6)
    args = ["--encoder", encoder]
    if encoder == "hubert":
        save_hubert(tmp_path / "hubert.pt")
        args += ["--checkpoint", tmp_path / "hubert.pt", "--layer", 2]
    fitted = run(kmeans.main, manifest, "-o", tmp_path / "km.bin", "-k", 6, "--seed", 1, *args, "--device", "cpu")
    assert fitted.exit_code == 0, fitted.output
    on = {device: run(quantize.main, manifest, "--kmeans", tmp_path / "km.bin", *args, "--device", device)
          for device in ("cpu", "cuda", "cuda:0")}
    for device, result in on.items():
        assert result.exit_code == 0, (device, result.output)
    cpu = [line.split("\t") for line in on["cpu"].stdout.splitlines()]
    for device in ("cuda", "cuda:0"):
        gpu = [line.split("\t") for line in on[device].stdout.splitlines()]
        assert [(r[0], r[2]) for r in gpu] == [(r[0], r[2]) for r in cpu]
        frames = [(a, b) for g, c in zip(gpu, cpu) for a, b in zip(g[1].split(), c[1].split(), strict=True)]
        # float sums in another order may move a frame that sits on a border between two centres
        assert np.mean([a == b for a, b in frames]) >= 0.97


# --------------------------------------------------------------------- pretrain
@pytest.fixture(scope="module")
def unit_bin(tmp_path_factory):
    from prompt_fixtures import make_databin, toy_rows

    root = tmp_path_factory.mktemp("ulm")
    unlabelled = lambda n, seed: [(uid, units, None) for uid, units, _ in toy_rows(n, seed)]
    return make_databin(str(root / "bin"), {"train": unlabelled(400, 1), "valid": unlabelled(80, 2)})


def pretrain(data, save_dir, *options):
    sp("pretrain", data, "--save-dir", save_dir, "--size", "tiny", "--max-epoch", 3, "--max-tokens", 512,
       "--warmup-updates", 10, "--dropout", 0, "--seed", 2, "--threads", 1, *options)
    return json.loads((save_dir / "pretrain.json").read_text())


def test_pretrain_on_cuda_matches_the_cpu_and_the_checkpoint_loads_on_the_cpu(tmp_path, unit_bin):
    from speechprompt.checkpoints import load_lm
    from speechprompt.pretrain import lm_perplexity, read_split

    cpu = pretrain(unit_bin, tmp_path / "cpu", "--device", "cpu")
    runs = {name: pretrain(unit_bin, tmp_path / name, *options)
            for name, options in {"cuda": ["--device", "cuda"], "bf16": ["--device", "cuda", "--precision", "bf16"],
                                  "fp16": ["--device", "cuda", "--precision", "fp16"]}.items()}
    assert cpu["valid_ppl"] < cpu["unigram_valid_ppl"]
    assert runs["cuda"]["valid_ppl"] == pytest.approx(cpu["valid_ppl"], rel=0.05)
    for name in ("bf16", "fp16"):
        assert runs[name]["precision"] == name
        assert runs[name]["valid_ppl"] == pytest.approx(runs["cuda"]["valid_ppl"], rel=0.10), name
    for name in runs:
        checkpoint = tmp_path / name / "checkpoint_best.pt"
        # the saved weights are fp32 whatever the precision (fp16: autocast; bf16: fairseq's --bf16 with fp32
        # master weights, saved in fp32), and load on the CPU
        assert {(t.device.type, t.dtype) for t in tensors_of(checkpoint) if t.is_floating_point()} \
            == {("cpu", torch.float32)}, name
        model, dictionary = load_lm(str(checkpoint))
        ppl = lm_perplexity(model, dictionary, read_split(unit_bin, "valid"), "cpu")
        assert ppl == pytest.approx(runs[name]["valid_ppl"], rel=0.02), name


# ------------------------------------------------------------ train and sample
@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    from prompt_fixtures import make_databin, make_lm, toy_rows, write_verbalizer

    root = tmp_path_factory.mktemp("toy")
    lm = make_lm(str(root / "lm"), normalize_before=True)
    data = make_databin(str(root / "bin"), {"train": toy_rows(240, 1), "valid": toy_rows(48, 2),
                                            "test": toy_rows(60, 3)})
    return root, lm, data, write_verbalizer(str(root / "verbalizer.json"))


def train(toy, output, *options):
    _root, lm, data, _verbalizer = toy
    sp("train", data, "--base", lm, "-o", output, "--max-epoch", 3, "--batch-size", 16, "--lr", 2e-2,
       "--seed", 3, *options)
    return load_checkpoint(output)


def sample(toy, prompt, output, *options):
    _root, _lm, data, verbalizer = toy
    sp("sample", data, "--prompt", prompt, "--verbalizer", verbalizer, "-o", output, *options)
    return read_jsonl(output)


def test_prompt_tuning_and_decoding_on_cuda(tmp_path, toy):
    cpu = train(toy, tmp_path / "cpu.pt", "--device", "cpu")
    trained = {name: train(toy, tmp_path / f"{name}.pt", *options)
               for name, options in {"cuda": ["--device", "cuda"], "cuda0": ["--device", "cuda:0"],
                                     "bf16": ["--device", "cuda", "--precision", "bf16"]}.items()}
    for name, checkpoint in trained.items():
        assert set(checkpoint) == set(cpu) and checkpoint["config"] == cpu["config"], name
        assert checkpoint["labels"] == cpu["labels"]
        assert {k: (v.shape, v.dtype) for k, v in checkpoint["prompt"].items()} \
            == {k: (v.shape, v.dtype) for k, v in cpu["prompt"].items()}, name
        assert {(t.device.type, t.dtype) for t in tensors_of(tmp_path / f"{name}.pt")} == {("cpu", torch.float32)}
    assert trained["cuda"]["best"] == pytest.approx(cpu["best"], abs=0.05)

    # one prompt (trained on the GPU) decoded on the CPU and on the GPU: the same labels and scores
    on_cpu = sample(toy, tmp_path / "cuda.pt", tmp_path / "cpu.jsonl", "--device", "cpu")
    on_gpu = sample(toy, tmp_path / "cuda.pt", tmp_path / "gpu.jsonl", "--device", "cuda")
    on_gpu0 = sample(toy, tmp_path / "cuda.pt", tmp_path / "gpu0.jsonl", "--device", "cuda:0")
    in_bf16 = sample(toy, tmp_path / "cuda.pt", tmp_path / "bf16.jsonl", "--device", "cuda", "--precision", "bf16")
    assert [r["id"] for r in on_gpu] == [r["id"] for r in on_cpu] == [r["id"] for r in in_bf16]
    assert [r["prediction"] for r in on_gpu] == [r["prediction"] for r in on_cpu] == [r["prediction"] for r in on_gpu0]
    assert max(abs(a["scores"][k] - b["scores"][k]) for a, b in zip(on_gpu, on_cpu) for k in a["scores"]) < 1e-3
    assert np.mean([a["prediction"] == b["prediction"] for a, b in zip(in_bf16, on_cpu)]) >= 0.9


# --------------------------------------------------------------------- classify
def test_classify_on_cuda_gives_the_chain_labels_of_the_cpu(tmp_path):
    from classify_fixtures import run_chain

    chain = run_chain(tmp_path)  # the chain on the CPU, exported
    for device in ("cuda", "cuda:0"):
        out = sp("classify", chain.tar, chain.manifests["test"], "--device", device).stdout
        rows = [json.loads(line) for line in out.splitlines()]
        assert [r["id"] for r in rows] == list(chain.predictions), device
        assert [r["label"] for r in rows] == [p["prediction"] for p in chain.predictions.values()], device
        assert max(abs(r["score"] - chain.predictions[r["id"]]["score"]) for r in rows) < 1e-3, device


# --------------------------------------------------------------------- baseline
def test_ulm_states_probe_on_cuda_matches_the_cpu(tmp_path):
    from prompt_fixtures import make_lm, toy_rows

    lm = make_lm(str(tmp_path / "lm"), layers=2, dim=32)
    for split, n, seed in (("train", 120, 1), ("test", 40, 2)):
        (tmp_path / f"{split}.tsv").write_text("".join(f"{uid}\t{' '.join(map(str, units))}\t{label}\n"
                                                       for uid, units, label in toy_rows(n, seed)))
    runs = {}
    for device in ("cpu", "cuda", "cuda:0"):
        out = tmp_path / f"{device.replace(':', '')}.jsonl"
        sp("baseline", "--features", "ulm-states", "--ulm", lm, "--device", device,
           tmp_path / "train.tsv", tmp_path / "test.tsv", "-o", out)
        runs[device] = read_jsonl(out)
    for device in ("cuda", "cuda:0"):
        assert [r["id"] for r in runs[device]] == [r["id"] for r in runs["cpu"]]
        assert np.mean([a["prediction"] == b["prediction"] for a, b in zip(runs[device], runs["cpu"])]) >= 0.95


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_a_graphed_step_adds_the_gradients_of_an_eager_one(tmp_path, precision):
    """prompting/graphs.py: replaying a batch shape's captured forward and backward gives the eager step's loss and
    gradients, for every batch of that shape (its inputs copied in) and for a second shape."""
    from prompt_fixtures import make_databin, make_lm, toy_rows
    from speechprompt.databin import read_split
    from speechprompt.prompting import backbones
    from speechprompt.prompting.graphs import GraphedSteps, pad_for_graphs
    from speechprompt.prompting.batches import make_batches
    from speechprompt.prompting.loop import batch_loss
    from speechprompt.prompting.model import PromptConfig, PromptLM

    lm = make_lm(str(tmp_path / "lm"), normalize_before=True)
    data = make_databin(str(tmp_path / "bin"), {"train": toy_rows(96, 1) + [("l", [5] * 30, "yes no")]})
    device = torch.device("cuda")
    backbone = backbones.load("fairseq", lm, device=device)
    torch.manual_seed(0)
    model = PromptLM(backbone, PromptConfig(4)).to(device).train()
    vocab = backbone.vocab
    batches = make_batches(read_split(data, "train", vocab.index).sentences, vocab, 8, 4096)
    batches = [b.to(device) for b in pad_for_graphs(batches, vocab.pad)]
    assert len({tuple(b.tokens.shape) for b in batches}) >= 2
    half = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    autocast = lambda: torch.autocast("cuda", dtype=half, enabled=half is not None)  # noqa: E731
    params = [p for p in model.parameters() if p.requires_grad]
    graphed = GraphedSteps(model, batch_loss, autocast)
    tolerance = dict(rtol=1e-4, atol=1e-5) if precision == "fp32" else dict(rtol=2e-2, atol=2e-3)
    for batch in batches:
        for p in params:
            p.grad = None
        with autocast():
            loss = batch_loss(model, batch)
        (loss * 0.5).backward()
        eager = float(loss), [p.grad.clone() for p in params]
        for p in params:
            p.grad.zero_()
        replayed = float(graphed(batch, 0.5)), [p.grad.clone() for p in params]
        assert replayed[0] == pytest.approx(eager[0], **{"rel": tolerance["rtol"]})
        for a, b in zip(replayed[1], eager[1]):
            torch.testing.assert_close(a, b, **tolerance)
    assert len(graphed.graphs) == len({(tuple(b.tokens.shape), b.where.numel()) for b in batches})


def test_sp_train_with_and_without_cuda_graphs_learn_alike(tmp_path, toy):
    graphs = train(toy, tmp_path / "graphs.pt", "--device", "cuda", "--cuda-graphs")
    eager = train(toy, tmp_path / "eager.pt", "--device", "cuda")
    assert graphs["stop"]["updates"] == eager["stop"]["updates"]
    for key, tensor in eager["prompt"].items():
        torch.testing.assert_close(graphs["prompt"][key], tensor, rtol=1e-3, atol=1e-3)
