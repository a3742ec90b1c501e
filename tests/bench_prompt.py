"""Benchmark: prompt tuning and label decoding against the bare frozen LM, side by side in one run.

Prints one line per measure, as ratios (time of ours / time of the reference, or throughputs), on a
GSLM-shaped LM scaled down to CPU (BENCH_DIM, BENCH_LAYERS change it):

- step: sp-train's loop (`prompting/loop.train`: batch order, forward, loss on the label, backward to
  the prompts, Adam, the epoch's validation and resume state) over the frozen LM's bare forward and
  backward on the same batches (fairseq's decoder, gradients to its token embeddings only: through
  every layer, as a backward that reaches the prompts must go); goal <= 1.10; and the same loop over
  the prompted model's own forward and backward to the prompts (the prompt's arithmetic: the input
  prompt's P rows, run once a batch, and 2P more keys a layer), which is what the loop itself adds;
- decode: sp-sample's batched one-pass decoding (prompts, logits at `<s>` only, restricted to the
  candidates) over a bare batched fairseq forward of the same LM on the same batch; goal >= 0.8.
"""
import os
import sys
import tempfile

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import timing  # noqa: E402
from prompt_fixtures import build_lm  # noqa: E402
from speechprompt.prompting.backbones.fairseq_lm import FairseqLM  # noqa: E402
from speechprompt.prompting.decoding import Decoder  # noqa: E402
from speechprompt.prompting.batches import make_batches  # noqa: E402
from speechprompt.prompting.loop import Settings, train  # noqa: E402
from speechprompt.prompting.model import PromptConfig, PromptLM  # noqa: E402

DIM = int(os.environ.get("BENCH_DIM", 256))
LAYERS = int(os.environ.get("BENCH_LAYERS", 6))
BATCH, LENGTH, REPEATS = 32, 28, int(os.environ.get("BENCH_REPEATS", 5))
UPDATES = int(os.environ.get("BENCH_UPDATES", 20))


def main():
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        base, _ = build_lm(tmp, layers=LAYERS, dim=DIM, heads=max(1, DIM // 64), ffn=4 * DIM, units=100)
    base.eval()
    from fairseq.data import Dictionary
    dictionary = Dictionary()
    for i in range(100):
        dictionary.add_symbol(str(i))
    backbone = FairseqLM(base, dictionary).freeze()
    vocab = backbone.vocab
    model = PromptLM(backbone, PromptConfig(5, deep=True, input_prompt=True, separator=True))

    # sentences `units <s> label </s>` of LENGTH input tokens: the batches of a train split
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
    embedding = base.decoder.embed_tokens.weight

    def frozen_lm():  # fairseq's decoder forward and backward to its token embeddings, batch by batch
        for t in tokens:
            base.decoder(t)[0][:, -2].logsumexp(-1).sum().backward()
            embedding.grad = None

    prompts = [p for p in model.parameters() if p.requires_grad]

    def prompted_lm():  # the prompted model's forward and backward to the prompts: no loop, no optimizer
        for t in tokens:
            model.features(t, keep_cache=False)[0][:, -2].sum().backward()
            for p in prompts:
                p.grad = None

    model.train()
    timed = [timing.with_gradient(embedding, frozen_lm), prompted_lm, loop]
    reference, prompted, ours = timing.best_of_each(timed, REPEATS)
    print(f"step: {ours / reference:.2f}x the time of the LM's bare forward+backward "
          f"(LM {reference / len(tokens) * 1e3:.1f} ms, sp-train's loop {ours / len(tokens) * 1e3:.1f} ms an update "
          f"incl. its validation and resume state; goal <= 1.10)")
    print(f"step: {ours / prompted:.2f}x the time of the prompted model's own forward+backward to the prompts "
          f"({prompted / len(tokens) * 1e3:.1f} ms: the prompt's arithmetic is {prompted / reference:.2f}x the bare LM's)")

    decoder = Decoder(model.eval(), vocab, [str(u) for u in range(40, 52)])  # 12 one-token candidates
    prefix = tokens[0][:, :LENGTH - 1].clone()
    prefix[:, -1] = vocab.bos  # `</s> units <s>`: what one-pass decoding reads
    lengths = torch.full((BATCH,), LENGTH - 1)
    with torch.inference_mode():
        bare, ours = timing.best_of_each([lambda: base(prefix), lambda: decoder.score(prefix, lengths)], REPEATS)
    print(f"decode: {bare / ours:.2f}x throughput of a bare batched fairseq forward "
          f"(bare {BATCH / bare:.0f}/s, sp-sample {BATCH / ours:.0f}/s; goal >= 0.8)")
    print(f"model: {LAYERS} layers, d={DIM}, batch {BATCH} x {LENGTH} tokens, {UPDATES} updates, best of {REPEATS}, "
          f"{torch.get_num_threads()} threads")


if __name__ == "__main__":
    main()
