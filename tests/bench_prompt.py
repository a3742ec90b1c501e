"""Benchmark: prompt tuning and label decoding against the bare frozen LM, side by side in one run.

Prints one line per measure, as ratios (time of the reference / time of ours, or the reverse),
on a GSLM-shaped LM scaled down to CPU (set BENCH_DIM/BENCH_LAYERS to change it):

- decode: sp-sample's batched one-pass decoding (prompts, logits at `<s>` only, restricted to the
  candidates) over a bare batched fairseq forward of the same LM on the same batch; goal >= 0.8;
- step: a prompt-tuning step (forward + backward to the prompts, Adam) over the frozen LM's
  forward + backward on the same batch; goal <= 1.25.
"""
import os
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from prompt_fixtures import build_lm  # noqa: E402
from speechprompt.prompting.model import PromptConfig, PromptLM  # noqa: E402
from speechprompt.sample import Decoder  # noqa: E402

DIM = int(os.environ.get("BENCH_DIM", 256))
LAYERS = int(os.environ.get("BENCH_LAYERS", 6))
BATCH, LENGTH, REPEATS = 32, 28, int(os.environ.get("BENCH_REPEATS", 5))


def best_of(function, repeats=REPEATS):
    function()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def main():
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        base, _ = build_lm(tmp, layers=LAYERS, dim=DIM, heads=max(1, DIM // 64), ffn=4 * DIM, units=100)
    base.eval()
    from fairseq.data import Dictionary
    dictionary = Dictionary()
    for i in range(100):
        dictionary.add_symbol(str(i))
    tokens = torch.randint(4, 104, (BATCH, LENGTH))
    tokens[:, 0] = dictionary.eos()
    tokens[:, -1] = dictionary.bos()  # `</s> units <s>`: what one-pass decoding reads
    lengths = torch.full((BATCH,), LENGTH)
    model = PromptLM(base, PromptConfig(5, deep=True, input_prompt=True, separator=True))
    decoder = Decoder(model, dictionary, [str(u) for u in range(40, 52)])  # 12 one-token candidates

    # training: the label sits at the last position; the loss is on it only
    target = torch.randint(4, 104, (BATCH,))
    mask = torch.zeros(BATCH, LENGTH, dtype=torch.bool)
    mask[:, -1] = True
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=5e-3)

    def prompt_step():
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(tokens, mask), target).backward()
        optimizer.step()

    full = base.train(False)

    def frozen_lm_step():  # the whole LM's forward and backward (all weights), no optimizer
        full.zero_grad()
        logits = full(tokens)[0]
        torch.nn.functional.cross_entropy(logits[:, -1], target).backward()

    for p in base.parameters():
        p.requires_grad_(True)
    reference = best_of(frozen_lm_step)
    for p in base.parameters():
        p.requires_grad_(False)
    step = best_of(prompt_step)
    print(f"step: {step / reference:.2f}x the time of the LM's forward+backward "
          f"(LM {reference * 1e3:.0f} ms, prompt step {step * 1e3:.0f} ms; goal <= 1.25)")
    # decoding last: fairseq caches sinusoidal positions made under inference_mode, unusable in autograd
    with torch.inference_mode():
        bare = best_of(lambda: base(tokens))
        ours = best_of(lambda: decoder.score(tokens, lengths))
    print(f"decode: {bare / ours:.2f}x throughput of a bare batched fairseq forward "
          f"(bare {BATCH / bare:.0f}/s, sp-sample {BATCH / ours:.0f}/s; goal >= 0.8)")

    print(f"model: {LAYERS} layers, d={DIM}, batch {BATCH} x {LENGTH} tokens, best of {REPEATS}, "
          f"{torch.get_num_threads()} threads")


if __name__ == "__main__":
    main()
