"""Benchmark on a GPU: sp-train's loop at GSLM's shape (12 x 1024, 16 heads, 100 units), batch 32, bf16.

Prints, side by side in one run:
- bare: the frozen LM's forward + backward to its token embeddings (fairseq's own decoder) on the same
  batches, in ms a batch: the arithmetic a prompt step cannot avoid;
- eager, graphs: `prompting/loop.train` over the same batches, one epoch, updates/s and the ratio of its
  time an update to the bare one (eager: every kernel launched from Python; graphs: each batch shape's
  forward and backward replayed as a CUDA graph, `prompting/graphs.py`);
- epoch: one epoch of a Speech Commands v1-sized train split (51,094 utterances, unit lengths drawn like
  the real HuBERT-100 units': mean 23, at most 46), its validation included, in seconds.

    python tests/bench_gpu_loop.py [--utterances 51094] [--updates 300] [--precision bf16]

Runs on the CPU too, at a small shape, as a smoke test (BENCH_SMALL=1 or no GPU).
"""
import argparse
import os
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from prompt_fixtures import build_lm  # noqa: E402
from speechprompt.prompting.backbones.fairseq_lm import FairseqLM  # noqa: E402
from speechprompt.prompting.graphs import pad_for_graphs  # noqa: E402
from speechprompt.prompting.batches import make_batches  # noqa: E402
from speechprompt.prompting.loop import Settings, train  # noqa: E402
from speechprompt.prompting.model import PromptConfig, PromptLM  # noqa: E402


def sentences(n, vocab, generator):
    """`units <s> label </s>` with unit counts like Speech Commands' HuBERT-100 units after dedup."""
    lengths = (torch.randn(n, generator=generator) * 7 + 23).round().clamp(5, 46).long()
    out = []
    for length in lengths.tolist():
        units = torch.randint(4, 104, (length,), generator=generator)
        label = torch.randint(4, 14, (1,), generator=generator)  # ten classes, one token each
        out.append(torch.cat([units, torch.tensor([vocab.bos]), label, torch.tensor([vocab.eos])]))
    return out


def synced(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def run_loop(model, batches, valid, device, precision, graphs):
    settings = Settings(data="bench", base="bench", config={}, lr=5e-3, batch_size=32, max_epoch=1, patience=0,
                        precision=precision)
    with tempfile.TemporaryDirectory() as tmp:
        synced(device)
        start = time.perf_counter()
        _, record = train(model, batches, valid, settings, os.path.join(tmp, "state.pt"), device, progress=False,
                          cuda_graphs=graphs)
        synced(device)
        return time.perf_counter() - start, record


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--utterances", type=int, default=51094)
    parser.add_argument("--updates", type=int, default=300)
    parser.add_argument("--precision", default="bf16")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    small = device.type == "cpu" or os.environ.get("BENCH_SMALL")
    layers, dim, heads = (2, 64, 2) if small else (12, 1024, 16)
    precision = args.precision if device.type == "cuda" else "fp32"
    if small:
        args.utterances, args.updates = min(args.utterances, 640), min(args.updates, 10)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        base, _ = build_lm(tmp, layers=layers, dim=dim, heads=heads, ffn=4 * dim, units=100)
    from fairseq.data import Dictionary
    dictionary = Dictionary()
    for i in range(100):
        dictionary.add_symbol(str(i))
    backbone = FairseqLM(base.to(device), dictionary).freeze()
    vocab = backbone.vocab
    model = PromptLM(backbone, PromptConfig(5)).to(device)
    generator = torch.Generator().manual_seed(1)
    timed = make_batches(sentences(32 * args.updates, vocab, generator), vocab, 32, 1 << 20)
    if device.type == "cuda":  # made and moved once, as a run does before its first epoch
        timed = [b.to(device) for b in pad_for_graphs(timed, vocab.pad)]
    valid = make_batches(sentences(256, vocab, generator), vocab, 32, 1 << 20)
    half = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)

    # bare: fairseq's decoder forward and backward to its token embeddings, batch by batch
    embedding = base.decoder.embed_tokens.weight
    embedding.requires_grad_(True)
    tokens = [b.tokens.to(device) for b in timed]

    def bare():
        for t in tokens:
            with torch.autocast(device.type, dtype=half, enabled=half is not None):
                logits = base.decoder(t)[0]
            logits[:, -2].float().logsumexp(-1).sum().backward()
            embedding.grad = None
    bare()  # warm-up
    synced(device)
    start = time.perf_counter()
    bare()
    synced(device)
    bare_ms = (time.perf_counter() - start) / len(tokens) * 1e3
    embedding.requires_grad_(False)
    print(f"bare: {bare_ms:.2f} ms a batch ({1e3 / bare_ms:.0f} batches/s) of 32 x ~26 tokens, forward + backward",
          flush=True)

    results = {}
    for name, graphs in (("eager", False), ("graphs", True)):
        run_loop(model, timed[:max(4, len(timed) // 10)], valid, device, precision, graphs)  # warm-up, captures
        seconds, record = run_loop(model, timed, valid, device, precision, graphs)
        per_update = seconds / record.updates * 1e3
        results[name] = record.updates / seconds
        print(f"{name}: {record.updates / seconds:.1f} updates/s ({per_update:.2f} ms an update, epoch's validation "
              f"included; {per_update / bare_ms:.2f}x the bare forward+backward)", flush=True)

    start = time.perf_counter()
    gsc = make_batches(sentences(args.utterances, vocab, generator), vocab, 32, 1 << 20)
    gsc = [b.to(device) for b in pad_for_graphs(gsc, vocab.pad)] if device.type == "cuda" else gsc
    prepared = time.perf_counter() - start
    seconds, record = run_loop(model, gsc, valid, device, precision, True)
    print(f"epoch: {args.utterances:,} utterances, {record.updates} updates in {seconds:.1f} s (graphs captured and "
          f"validation included; goal <= 20 s on an H100); batches made and moved before it in {prepared:.1f} s",
          flush=True)
    gpu = torch.cuda.get_device_name() if device.type == "cuda" else "CPU"
    print(f"model: {layers} x {dim}, {heads} heads, {sum(p.numel() for p in base.parameters()) / 1e6:.0f} M "
          f"parameters, {precision}, {gpu}, torch {torch.__version__}; goal >= 100 updates/s "
          f"(graphs {results['graphs']:.1f}, eager {results['eager']:.1f})")


if __name__ == "__main__":
    main()
