"""Benchmark of sp-quantize: x real time (encoder + k-means + I/O) and k-means apply frames/s.

Measured side by side in one run, on generated 1 s clips:
- logmel, the whole tool;
- a HuBERT-base-sized random model (95 M parameters, fairseq's default HubertConfig), layer 6, on 2 threads:
  the whole tool, and fairseq's bare model forward up to layer 6 on the same audio (the ratio is what the
  tool adds: audio I/O, resampling, batching, k-means, writing), and the bare forward through all 12 layers
  (the tool never computes layers above the output layer);
- k-means apply (K=100) frames/s for 768-dim and 80-dim features.
"""
import os

# On a CPU shared with other jobs, OpenMP threads that busy-wait at barriers are many times slower
# (k-means apply on 2 threads measured 30x slower here); passive waiting must be set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import joblib  # noqa: E402
import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_quantize import save_hubert, vowels  # noqa: E402

from speechprompt import kmeans_model, quantize  # noqa: E402

THREADS = 2


def clips(directory, n, rate=16000):
    rows, base = [], vowels(1 / 6)
    for i in range(n):
        wav = directory / f"c{i:04d}.wav"
        sf.write(wav, np.roll(base, i * 331) * (0.4 + 0.001 * i), rate)
        rows.append(f"c{i:04d}\t{wav}\t0\t{len(base)}\tx\n")
    manifest = directory / f"m{n}.tsv"
    manifest.write_text("".join(rows))
    return manifest


def fake_kmeans(path, dim, k=100, seed=0):
    from sklearn.cluster import MiniBatchKMeans

    model = MiniBatchKMeans(n_clusters=k, n_init=1, max_iter=1, random_state=seed)
    model.cluster_centers_ = np.random.default_rng(seed).standard_normal((k, dim)).astype(np.float32)
    joblib.dump(model, path)
    return path


def tool_seconds(*args):
    start = time.perf_counter()
    quantize.main.main([str(a) for a in args] + ["--threads", str(THREADS)], standalone_mode=False)
    return time.perf_counter() - start


def bare_seconds(model, manifest, layer, batch=60):
    waves = [sf.read(line.split("\t")[1], dtype="float32")[0] for line in manifest.read_text().splitlines()]
    start = time.perf_counter()
    with torch.inference_mode():
        for i in range(0, len(waves), batch):
            model.extract_features(torch.from_numpy(np.stack(waves[i:i + batch])), mask=False, output_layer=layer)
    return time.perf_counter() - start


def main():
    torch.set_num_threads(THREADS)
    print(f"bench_quantize: OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}, {THREADS} torch threads, "
          f"{os.cpu_count()} CPUs (shared: compare ratios, not absolute speeds)")
    tmp = Path(tempfile.mkdtemp(prefix="bench_quantize."))
    out = tmp / "units.tsv"

    # logmel: the whole tool on 300 s of audio
    many = clips(tmp, 300)
    km80 = fake_kmeans(tmp / "km80.bin", 80)
    seconds = tool_seconds(many, "--kmeans", km80, "-o", out)
    print(f"sp-quantize logmel (K=100, {THREADS} threads, 300 x 1 s clips): {300 / seconds:.0f}x real time")

    # HuBERT base, random: the tool vs the bare fairseq forward, same audio, same threads
    ckpt = tmp / "hubert_base_random.pt"
    model = save_hubert(ckpt, small=False).eval()
    params = sum(p.numel() for p in model.parameters()) / 1e6
    km768 = fake_kmeans(tmp / "km768.bin", 768)
    few, one = clips(tmp, 31), tmp / "one.tsv"
    one.write_text(few.read_text().splitlines(keepends=True)[0])
    args = ["--kmeans", km768, "--encoder", "hubert", "--checkpoint", ckpt, "--layer", 6, "-o", out]
    bare6 = bare_seconds(model, few, 6)
    startup = tool_seconds(one, *args)  # loading the 380 MB checkpoint, plus one clip
    tool = tool_seconds(few, *args) - startup  # the other 30 clips
    bare6_again = bare_seconds(model, few, 6)
    bare12 = bare_seconds(model, few, None)
    bare = (bare6 + bare6_again) / 2 * 30 / 31
    print(f"sp-quantize hubert base-sized ({params:.0f} M params, layer 6, K=100, {THREADS} threads, 30 x 1 s): "
          f"{30 / tool:.1f}x real time, after {startup:.1f} s start-up (checkpoint load)")
    print(f"bare fairseq HuBERT forward to layer 6, same audio: {30 / bare:.1f}x real time; "
          f"tool / bare speed ratio {bare / tool:.2f}")
    print(f"bare fairseq HuBERT forward, all 12 layers: {30 / (bare12 * 30 / 31):.1f}x real time "
          f"(layer 6 is {bare12 * 30 / 31 / bare:.2f}x faster)")

    # k-means apply alone
    for dim in (768, 80):
        quantizer = kmeans_model.Quantizer(np.random.default_rng(0).standard_normal((100, dim)).astype(np.float32),
                                     torch.device("cpu"))
        frames = torch.randn(50_000, dim)
        start = time.perf_counter()
        for block in frames.split(500):  # about the frames of one 10 s utterance at 50 Hz
            quantizer(block)
        print(f"k-means apply (K=100, dim {dim}, {THREADS} threads): "
              f"{len(frames) / (time.perf_counter() - start) / 1e6:.2f} M frames/s")
    for path in tmp.iterdir():
        path.unlink()
    os.rmdir(tmp)


if __name__ == "__main__":
    main()
