"""Benchmark: decoding with 1,251 candidate labels (VoxCeleb1's speakers) against a bare forward of the same batch.

Prints one line per decoder, as the ratio of its throughput to that of a bare batched fairseq forward of
the frozen LM on the same batch of `</s> units <s>` (goal >= 0.5), on a GSLM-shaped LM scaled down to
CPU (BENCH_DIM, BENCH_LAYERS, BENCH_BATCH, BENCH_LENGTH change it):

- spelled: 1,251 labels spelled as two of 100 unit tokens (`sp-verbalize --method spelled`), scored
  on the KV cache of the units through the candidates' trie (13 distinct first tokens);
- linear: the linear verbalizer onto 1,251 classes, read at `<s>`.
"""
import os
import sys
import tempfile

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import timing  # noqa: E402
from prompt_fixtures import build_lm  # noqa: E402
from speechprompt.prompting.model import PromptConfig, PromptLM  # noqa: E402
from speechprompt.prompting.backbones.fairseq_lm import FairseqLM  # noqa: E402
from speechprompt.prompting.decoding import Decoder  # noqa: E402
from speechprompt.verbalizer import spell  # noqa: E402

DIM = int(os.environ.get("BENCH_DIM", 256))
LAYERS = int(os.environ.get("BENCH_LAYERS", 6))
BATCH = int(os.environ.get("BENCH_BATCH", 16))
LENGTH = int(os.environ.get("BENCH_LENGTH", 200))  # VoxCeleb1: about 8 s, some 250 units after dedup at 50 Hz
REPEATS = int(os.environ.get("BENCH_REPEATS", 5))
CLASSES = 1251



def best_of(function, repeats=REPEATS):
    return timing.best_of(function, repeats)


def main():
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        base, _ = build_lm(tmp, layers=LAYERS, dim=DIM, heads=max(1, DIM // 64), ffn=4 * DIM, units=100,
                           positions=1024)  # the tokens and the longest label fit, as sp-lmdata crops them
    base = base.to(device).eval()
    from fairseq.data import Dictionary
    dictionary = Dictionary()
    for i in range(100):
        dictionary.add_symbol(str(i))
    tokens = torch.randint(4, 104, (BATCH, LENGTH), device=device)
    tokens[:, 0] = dictionary.eos()
    tokens[:, -1] = dictionary.bos()
    lengths = torch.full((BATCH,), LENGTH, device=device)
    labels = spell(CLASSES, [str(u) for u in range(100)])
    backbone = FairseqLM(base, dictionary).freeze()
    spelled = Decoder(PromptLM(backbone, PromptConfig(5)).to(device), backbone.vocab, labels)
    linear = Decoder(PromptLM(backbone, PromptConfig(5, num_classes=CLASSES)).to(device), backbone.vocab, labels)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def timed(function):
        return best_of(lambda: (function(), sync()))

    with torch.inference_mode():
        bare = timed(lambda: base(tokens))
        for name, decoder in [("spelled", spelled), ("linear", linear)]:
            ours = timed(lambda: decoder.score(tokens, lengths))
            print(f"{name}: {bare / ours:.2f}x throughput of a bare batched fairseq forward with {CLASSES} "
                  f"candidate labels (bare {BATCH / bare:.0f}/s, sp-sample {BATCH / ours:.0f}/s, "
                  f"{decoder.extra_tokens} extra tokens a sentence; goal >= 0.5)")
    print(f"model: {LAYERS} layers, d={DIM}, batch {BATCH} x {LENGTH} tokens, best of {REPEATS}, "
          f"{device.type}, {torch.get_num_threads()} threads")


if __name__ == "__main__":
    main()
