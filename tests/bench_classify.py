"""Benchmark: sp-classify against the chain's own stages on the same audio files, side by side in one run.

A small experiment is run through the chain's tools first (untimed; classify_fixtures.run_chain: log-mel
units with the demo's front end, K=100, a random uLM of the demo's `small` shape, 4 x 128). Then the
same test files (BENCH_FILES clips of 0.5-1.5 s) are labelled twice, each tool in this process with
the same threads, model loading included on both sides:

- the chain: sp-quantize, sp-dedup, sp-lmdata, sp-verbalize apply, sp-binarize, sp-sample, writing their
  files as Make does;
- sp-classify from the exported bundle (its sha256 checks included).

Printed: audio seconds per second of each, and the ratio sp-classify / chain (goal >= 0.9), with the
share of the chain that quantize + sample take. Both label every file the same (checked).
"""
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as bench_quantize: spinning OpenMP threads on a shared CPU

import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import soundfile as sf  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from classify_fixtures import LOGMEL, run_chain, write_corpus  # noqa: E402

from speechprompt import binarize, classify, dedup, lmdata, quantize, sample, verbalize  # noqa: E402

THREADS = 2
FILES = int(os.environ.get("BENCH_FILES", 300))
MAX_UNITS = 100


def timed(main, *args):
    start = time.perf_counter()
    main.main([str(a) for a in args], standalone_mode=False)
    return time.perf_counter() - start


def main():
    torch.set_num_threads(THREADS)
    print(f"bench_classify: {THREADS} torch threads, {os.cpu_count()} CPUs (shared: compare ratios, not speeds)")
    root = Path(tempfile.mkdtemp(prefix="bench_classify."))
    chain = run_chain(root / "exp", LOGMEL, counts={"train": 60, "valid": 9, "test": 9}, epochs=1, k=100,
                      max_units=MAX_UNITS, lm_shape=dict(layers=4, dim=128, heads=4, ffn=512))
    manifest = write_corpus(root / "bench", {"test": FILES}, seed=7, seconds=(0.5, 1.5))["test"]
    paths = [line.split("\t")[1] for line in manifest.read_text().splitlines()]
    seconds = sum(sf.info(p).duration for p in paths)
    exp, run = chain.root, root / "run"
    run.mkdir()
    cpu = ["--device", "cpu", "--threads", THREADS]
    steps = {
        "quantize": timed(quantize.main, *LOGMEL, "--kmeans", chain.km, *cpu, manifest, "-o", run / "frames.tsv"),
        "dedup": timed(dedup.main, run / "frames.tsv", "-o", run / "units.tsv"),
        "lmdata": timed(lmdata.main, "--max-units", MAX_UNITS, "--crop", "center", run / "units.tsv", "-o", run / "test.lm"),
        "verbalize": timed(verbalize.main, "apply", exp / "verbalizer.json", run / "test.lm", "-o", run / "test.vlm"),
        "binarize": timed(binarize.main, "--dict", Path(chain.lm).parent / "dict.txt", "--out", run / "data-bin",
                          f"test={run / 'test.vlm'}"),
        "sample": timed(sample.main, run / "data-bin", "--split", "test", "--prompt", exp / "prompt.pt",
                        "--verbalizer", exp / "verbalizer.json", *cpu, "-o", run / "predictions.jsonl"),
    }
    chain_seconds = sum(steps.values())
    ours = timed(classify.main, chain.bundle, manifest, *cpu, "-o", run / "classified.jsonl")
    expected = {r["id"]: r["prediction"] for r in map(json.loads, open(run / "predictions.jsonl"))}
    got = {r["id"]: r["label"] for r in map(json.loads, open(run / "classified.jsonl"))}
    assert got == expected and len(got) == FILES, "sp-classify and the chain disagree"
    share = (steps["quantize"] + steps["sample"]) / chain_seconds
    print(f"chain (quantize, dedup, lmdata, verbalize, binarize, sample; {FILES} files, {seconds:.0f} s of audio): "
          f"{seconds / chain_seconds:.1f} audio s/s ({chain_seconds:.1f} s; quantize + sample {share:.0%} of it)")
    print(f"sp-classify, same files, from the bundle: {seconds / ours:.1f} audio s/s ({ours:.1f} s)")
    print(f"sp-classify / chain speed ratio {chain_seconds / ours:.2f} (goal >= 0.9); same labels for all {FILES}")
    for path in sorted(root.rglob("*"), key=lambda p: -len(p.parts)):
        path.rmdir() if path.is_dir() else path.unlink()
    root.rmdir()


if __name__ == "__main__":
    main()
