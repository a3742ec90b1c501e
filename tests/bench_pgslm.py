"""Benchmark: decoding with a pGSLM prompt against a bare batched forward of the same multi-stream model.

Prints the ratio of sp-sample's decoding throughput (`Decoder.score`: the prompt, the prosody streams, 12
single-token candidate labels read at `<s>`) to that of fairseq's own `TransformerUnitLanguageModel`
forward on the same batch of `<s> units <s>` with its duration and F0 inputs (goal >= 0.8), on a
pGSLM-shaped model scaled down to CPU (BENCH_DIM, BENCH_LAYERS, BENCH_BATCH, BENCH_LENGTH change it).
"""
import json
import os
import sys
import tempfile

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import timing  # noqa: E402
from prompt_fixtures import F0_EDGES, build_ulm, save_ulm  # noqa: E402
from speechprompt.prompting import backbones  # noqa: E402
from speechprompt.prompting.decoding import Decoder  # noqa: E402
from speechprompt.prompting.model import PromptConfig, PromptLM  # noqa: E402
from speechprompt.prosody import NONE  # noqa: E402

DIM = int(os.environ.get("BENCH_DIM", 256))
LAYERS = int(os.environ.get("BENCH_LAYERS", 6))
BATCH = int(os.environ.get("BENCH_BATCH", 16))
LENGTH = int(os.environ.get("BENCH_LENGTH", 200))
REPEATS = int(os.environ.get("BENCH_REPEATS", 5))



def best_of(function, repeats=REPEATS):
    return timing.best_of(function, repeats)


def main():
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        model, task, cfg = build_ulm(tmp, layers=LAYERS, dim=DIM, heads=max(1, DIM // 64), ffn=4 * DIM, units=100,
                                     positions=LENGTH + 16)
        path = save_ulm(model, cfg, os.path.join(tmp, "ulm.pt"))
        with open(os.path.join(tmp, "f0_bins.json"), "w") as f:
            json.dump({"format": "speechprompt-f0-bins/1", "edges_cents": F0_EDGES, "unvoiced": "symbol"}, f)
        backbone = backbones.load("pgslm", path, device=device)
    model = model.to(device).eval()
    vocab = backbone.vocab
    units = torch.randint(0, 100, (BATCH, LENGTH - 2), device=device)
    tokens = torch.cat([torch.full((BATCH, 1), vocab.eos, device=device), units,
                        torch.full((BATCH, 1), vocab.bos, device=device)], 1)
    streams = torch.stack([torch.randint(1, 10, (BATCH, LENGTH), device=device),
                           torch.randint(-900, 900, (BATCH, LENGTH), device=device)], -1)
    streams[:, 0] = streams[:, -1] = torch.tensor([0, NONE], device=device)
    lengths = torch.full((BATCH,), LENGTH, device=device)
    labels = [str(u) for u in range(12)]  # SCR's 12 classes, one token each
    decoder = Decoder(PromptLM(backbone, PromptConfig(5)).to(device), vocab, labels)
    # fairseq's inputs: `<s> units <s>`, durations and F0 codes shifted by one
    src = torch.where(tokens == vocab.eos, vocab.bos, tokens)
    dur_src = torch.cat([torch.zeros(BATCH, 1, dtype=torch.long, device=device), streams[:, :-1, 0].clamp(max=20)], 1)
    f0_src = torch.cat([torch.full((BATCH, 1), task.source_f0_dictionary.pad(), device=device),
                        torch.randint(0, 33, (BATCH, LENGTH - 1), device=device)], 1)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def timed(function):
        return best_of(lambda: (function(), sync()))

    with torch.inference_mode():
        bare = timed(lambda: model(src, dur_src, f0_src))
        ours = timed(lambda: decoder.score(tokens, lengths, streams))
    print(f"pgslm decoding: {bare / ours:.2f}x throughput of a bare batched fairseq transformer_ulm forward "
          f"(bare {BATCH / bare:.0f}/s, sp-sample {BATCH / ours:.0f}/s; goal >= 0.8)")
    print(f"model: {LAYERS} layers, d={DIM}, batch {BATCH} x {LENGTH} tokens, best of {REPEATS}, "
          f"{device.type}, {torch.get_num_threads()} threads")


if __name__ == "__main__":
    main()
