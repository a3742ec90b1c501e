"""Benchmark: the hf backbone (transformers' OPT and LLaMA) under the prompt, against the same model's own
bare forward, side by side in one run (bench_prompt.py's measures, for the hf backbone):

- step: sp-train's loop (`prompting/loop.train`) over the model's bare forward and backward (transformers'
  own `model(input_ids)`, gradients to its token embeddings only) on the same batches; goal <= 1.25;
- decode: sp-sample's batched one-pass decoding over a bare batched forward of the model; goal >= 0.8.

BENCH_DIM, BENCH_LAYERS, BENCH_UPDATES, BENCH_REPEATS change the size. Skipped (a line, exit 0) without the
optional `transformers`.
"""
import os
import sys
import tempfile

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import timing  # noqa: E402
try:
    import transformers  # noqa: F401
except ImportError:
    print("bench_hf: skipped (the optional transformers is not installed)")
    sys.exit(0)
from hf_fixtures import build_hf_lm  # noqa: E402
from speechprompt.prompting.backbones import hf_lm  # noqa: E402
from speechprompt.prompting.decoding import Decoder  # noqa: E402
from speechprompt.prompting.batches import make_batches  # noqa: E402
from speechprompt.prompting.loop import Settings, train  # noqa: E402
from speechprompt.prompting.model import PromptConfig, PromptLM  # noqa: E402

DIM = int(os.environ.get("BENCH_DIM", 256))
LAYERS = int(os.environ.get("BENCH_LAYERS", 6))
BATCH, LENGTH, REPEATS = 32, 28, int(os.environ.get("BENCH_REPEATS", 5))
UPDATES = int(os.environ.get("BENCH_UPDATES", 20))


def bench(family, **options):
    torch.manual_seed(0)
    model_hf = build_hf_lm(family, units=100, layers=LAYERS, dim=DIM, heads=max(1, DIM // 64), ffn=4 * DIM,
                           **options)
    backbone = (hf_lm.OPTWalk if family == "opt" else hf_lm.LlamaWalk)(
        model_hf, hf_lm.vocabulary_of(model_hf.config.to_dict(), "config.json")).freeze()
    vocab = backbone.vocab
    model = PromptLM(backbone, PromptConfig(5))
    sentences = []
    for _ in range(BATCH * UPDATES):
        units = torch.randint(4, 104, (LENGTH - 2,))
        sentences.append(torch.cat([units, torch.tensor([vocab.bos, int(torch.randint(40, 52, ())), vocab.eos])]))
    batches = make_batches(sentences, vocab, BATCH, 1 << 20)
    valid = make_batches(sentences[:BATCH], vocab, BATCH, 1 << 20)
    settings = Settings(data="bench", base="bench", config={}, lr=5e-3, batch_size=BATCH, max_epoch=1, patience=0)

    def loop():
        with tempfile.TemporaryDirectory() as tmp:
            train(model, batches, valid, settings, os.path.join(tmp, "state.pt"), torch.device("cpu"), progress=False)

    tokens = [b.tokens for b in batches]
    embedding = model_hf.get_input_embeddings().weight

    def frozen_lm():  # the model's own forward and backward to its token embeddings, batch by batch
        for t in tokens:
            model_hf(input_ids=t).logits[:, -2].logsumexp(-1).sum().backward()
            embedding.grad = None

    reference, ours = timing.best_of_each([timing.with_gradient(embedding, frozen_lm), loop], REPEATS)
    print(f"{family} step: {ours / reference:.2f}x the time of the model's bare forward+backward "
          f"(bare {reference / len(tokens) * 1e3:.1f} ms, sp-train's loop {ours / len(tokens) * 1e3:.1f} ms an update "
          f"incl. its validation and resume state; goal <= 1.25)")
    decoder = Decoder(model.eval(), vocab, [str(u) for u in range(40, 52)])
    prefix = tokens[0][:, :LENGTH - 1].clone()
    prefix[:, -1] = vocab.bos
    lengths = torch.full((BATCH,), LENGTH - 1)
    with torch.inference_mode():
        bare, ours = timing.best_of_each([lambda: model_hf(input_ids=prefix), lambda: decoder.score(prefix, lengths)],
                                         REPEATS)
    print(f"{family} decode: {bare / ours:.2f}x throughput of the model's bare batched forward "
          f"(bare {BATCH / bare:.0f}/s, sp-sample {BATCH / ours:.0f}/s; goal >= 0.8)")


def main():
    bench("opt")
    bench("llama", kv_heads=max(1, DIM // 128))
    print(f"model: {LAYERS} layers, d={DIM}, batch {BATCH} x {LENGTH} tokens, {UPDATES} updates, best of {REPEATS}, "
          f"{torch.get_num_threads()} threads, transformers {transformers.__version__}")


if __name__ == "__main__":
    main()
