"""GPU measurement of the hf backbone at TWIST-350M's shape (random weights): prompt-tuning updates/s and
decoding utterances/s, bf16 autocast (the project's half precision: fp32 weights), batch 32.

    python tests/bench_hf_gpu.py                    # on a GPU: TWIST-350M's shape, 250-unit utterances (10 s at 25 Hz)
    python tests/bench_hf_gpu.py --shape 1.3b       # TWIST-1.3B's (OPT-1.3B: 24 x 2048)
    python tests/bench_hf_gpu.py --tiny --device cpu   # a smoke test anywhere (fp32, 2 x 64)

Without a GPU (as in `make bench` here) it runs that smoke test: a 350M model on 2 CPU cores would take
an hour and measure nothing the GPU run needs. Skipped (a line) without the optional transformers.

Prints one line per measure. The model is built from its config (no download); an update is
`prompting/loop.train`'s forward, loss, backward to the prompts and Adam step over pre-made batches.
"""
import argparse
import os
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
try:
    import transformers  # noqa: E402
except ImportError:
    print("bench_hf_gpu: skipped (the optional transformers is not installed)")
    sys.exit(0)

from speechprompt.prompting.backbones import hf_lm  # noqa: E402
from speechprompt.prompting.decoding import Decoder  # noqa: E402
from speechprompt.prompting.batches import make_batches  # noqa: E402
from speechprompt.prompting.loop import Settings, train  # noqa: E402
from speechprompt.prompting.model import PromptConfig, PromptLM  # noqa: E402

SHAPES = {  # TWIST's LMs: OPT-350M and OPT-1.3B shapes, 500 units after 4 specials
    "350m": dict(hidden_size=1024, num_hidden_layers=24, ffn_dim=4096, num_attention_heads=16,
                 word_embed_proj_dim=512, do_layer_norm_before=False),
    "1.3b": dict(hidden_size=2048, num_hidden_layers=24, ffn_dim=8192, num_attention_heads=32,
                 word_embed_proj_dim=2048, do_layer_norm_before=True),
    "tiny": dict(hidden_size=64, num_hidden_layers=2, ffn_dim=128, num_attention_heads=2, word_embed_proj_dim=64),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=SHAPES, default="350m")
    parser.add_argument("--tiny", action="store_true", help="the tiny shape, fp32: a smoke test on the CPU")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--units", type=int, default=250, help="units an utterance (250: 10 s at 25 Hz)")
    parser.add_argument("--updates", type=int, default=30)
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cpu" and not args.tiny:
        print("bench_hf_gpu: no GPU, so the tiny shape on the CPU (a smoke test; the numbers mean nothing)")
        args.tiny, args.units, args.updates = True, 20, 3
    shape = "tiny" if args.tiny else args.shape
    half = device.type == "cuda"
    config = transformers.OPTConfig(vocab_size=504, max_position_embeddings=2048, offset=4, **SHAPES[shape])
    torch.manual_seed(0)
    model_hf = transformers.OPTForCausalLM(config).to(device)
    backbone = hf_lm.OPTWalk(model_hf, hf_lm.vocabulary_of(config.to_dict(), "config.json")).freeze()
    vocab = backbone.vocab
    model = PromptLM(backbone, PromptConfig(5)).to(device)
    sentences = [torch.cat([torch.randint(4, 504, (args.units,)), torch.tensor([vocab.bos, 10, vocab.eos])])
                 for _ in range(args.batch * args.updates)]
    batches = make_batches(sentences, vocab, args.batch, 1 << 30)
    settings = Settings(data="bench", base="bench", config={}, lr=5e-3, batch_size=args.batch, max_epoch=1,
                        patience=0, precision="bf16" if half else "fp32")
    valid = make_batches(sentences[:args.batch], vocab, args.batch, 1 << 30)
    with tempfile.TemporaryDirectory() as tmp:  # warm-up: kernels, allocator
        train(model, batches[:3], valid, settings, os.path.join(tmp, "warm.pt"), device, progress=False)
        if half:
            torch.cuda.synchronize()
        start = time.perf_counter()
        train(model, batches, valid, settings, os.path.join(tmp, "state.pt"), device, progress=False)
        if half:
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
    print(f"train: {len(batches) / seconds:.2f} updates/s ({args.batch} x {args.units + 3} tokens an update, incl. one "
          f"validation and resume state) on {torch.cuda.get_device_name(device) if half else 'CPU'}")
    decoder = Decoder(model.eval(), vocab, [str(u) for u in range(10, 22)])
    prefix = torch.cat([torch.full((args.batch, 1), vocab.eos), torch.randint(4, 504, (args.batch, args.units)),
                        torch.full((args.batch, 1), vocab.bos)], 1).to(device)
    lengths = torch.full((args.batch,), prefix.shape[1], device=device)
    with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=half):
        decoder.score(prefix, lengths)
        if half:
            torch.cuda.synchronize()
        start, rounds = time.perf_counter(), 20
        for _ in range(rounds):
            decoder.score(prefix, lengths)
        if half:
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
    print(f"decode: {rounds * args.batch / seconds:.0f} utterances/s (batch {args.batch}, one pass, 12 candidates)")
    print(f"model: TWIST-{shape} shape, {hf_lm.parameter_count(config.to_dict()) / 1e6:.0f} M parameters, "
          f"{'bf16 autocast' if half else 'fp32'}, prompt length 5, transformers {transformers.__version__}")


if __name__ == "__main__":
    main()
