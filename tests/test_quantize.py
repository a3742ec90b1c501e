"""sp-kmeans and sp-quantize: encoders, k-means fit/load/apply, the streaming engine.

Everything is tiny and built here: wavs written with numpy, a random HuBERT
built with fairseq's own classes and saved as a fairseq checkpoint.
"""
import dataclasses
import fractions
import json
import logging
import math
import pickle
import sys
import types
import warnings

import joblib
import numpy as np
import pytest
import soundfile as sf
import torch
from click.testing import CliRunner
from scipy.signal import lfilter

from conftest import sp, shell

from speechprompt import encoders, kmeans, kmeans_model, quantize
from speechprompt.audio import resample
from speechprompt.io import BadInput

RATE = 16000


# ----------------------------------------------------------------- helpers
def save_hubert(path, seed=0, normalize=False, extractor_mode="default", small=True, extra_state=None,
                task_state=True):
    """A random HuBERT saved the way fairseq saves one: cfg (omegaconf), model, task_state with Dictionary."""
    from fairseq.data.dictionary import Dictionary
    from fairseq.models.hubert.hubert import HubertConfig, HubertModel
    from fairseq.tasks.hubert_pretraining import HubertPretrainingConfig
    from omegaconf import OmegaConf

    logging.getLogger("fairseq").setLevel(logging.WARNING)  # fairseq logs the whole config at INFO
    warnings.filterwarnings("ignore", "`torch.nn.utils.weight_norm` is deprecated", FutureWarning)
    task = HubertPretrainingConfig(data="/nonexistent", labels=["km"], label_rate=50.0, normalize=normalize)
    size = dict(encoder_layers=3, encoder_embed_dim=32, encoder_ffn_embed_dim=64, encoder_attention_heads=2,
                conv_feature_layers="[(32,10,5)] + [(32,3,2)] * 4 + [(32,2,2)] * 2", conv_pos=16,
                conv_pos_groups=4, final_dim=16) if small else {}
    config = HubertConfig(label_rate=50.0, extractor_mode=extractor_mode, **size)
    labels = Dictionary()
    for unit in range(100):
        labels.add_symbol(str(unit))
    torch.manual_seed(seed)
    model = HubertModel(config, task, [labels])
    cfg = OmegaConf.create({"model": {**dataclasses.asdict(config), "_name": "hubert"},
                            "task": {**dataclasses.asdict(task), "_name": "hubert_pretraining"}})
    history = [{"criterion_name": "hubert", "optimizer_name": "FairseqAdam", "lr_scheduler_state": {"best": 3.5},
                "num_updates": 0}]
    state = {"args": None, "cfg": cfg, "model": model.state_dict(), "task_state": {"dictionaries": [labels]},
             "optimizer_history": history, "extra_state": extra_state or {"train_iterator": {"epoch": 1}}}
    if not task_state:
        del state["task_state"]
    torch.save(state, path)
    return model


def vowels(seconds_each=0.25, noise=0.003, seed=0):
    """Six vowel-like segments (pulse train through two resonances) over a noise floor, at 16 kHz."""
    segments = []
    for f0, formants in zip([110, 150, 200, 130, 170, 240],
                            [(700, 1200), (300, 2300), (500, 900), (400, 1900), (650, 1700), (350, 800)]):
        y = np.zeros(int(seconds_each * RATE))
        y[::RATE // f0] = 1
        for f in formants:
            r, theta = math.exp(-math.pi * 100 / RATE), 2 * math.pi * f / RATE
            y = lfilter([1], [1, -2 * r * math.cos(theta), r * r], y)
        segments.append(y / np.abs(y).max())
    x = np.concatenate(segments) + noise * np.random.default_rng(seed).standard_normal(len(segments) * len(y))
    return (0.3 * x / np.abs(x).max()).astype(np.float32)


def write_manifest(path, rows):
    path.write_text("".join(f"{uid}\t{wav}\t0\t{n}\t{label}\n" for uid, wav, n, label in rows))
    return path


def corpus(tmp_path, n=12, seconds=1.0):
    """n short clips (vowel segments, shuffled per clip), 16 kHz mono; returns the manifest path."""
    rows = []
    base = vowels(seconds / 6)
    for i in range(n):
        x = np.roll(base, i * 997) * (0.5 + 0.05 * i)
        wav = tmp_path / f"c{i:02d}.wav"
        sf.write(wav, x, RATE)
        rows.append((f"clip/{i:02d}", wav, len(x), ["yes", "no", "up down"][i % 3]))
    return write_manifest(tmp_path / "train.tsv", rows)


def run(main, *args):
    """A tool in-process (fast: no interpreter start-up), on one thread (the CI CPU is shared); click's Result."""
    return CliRunner().invoke(main, [str(a) for a in args] + ["--threads", "1"], catch_exceptions=False)


def table(text):
    return [line.split("\t") for line in text.splitlines()]


@pytest.fixture(scope="module")
def logmel_km(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("km")
    manifest = corpus(tmp)
    result = run(kmeans.main, manifest, "-o", tmp / "km.bin", "-k", 8, "--seed", 1)
    assert result.exit_code == 0, result.stderr
    return tmp / "km.bin", manifest


# ------------------------------------------------------------------ logmel
def numpy_fbank(x, rate=RATE, bins=80):
    """Independent, loop-by-loop numpy version of the Kaldi fbank recipe (as in feature-fbank.cc)."""
    x = np.asarray(x, dtype=np.float64) * 32768
    length, shift, padded = int(0.025 * rate), int(0.010 * rate), 512
    mel = lambda f: 1127 * math.log(1 + f / 700)  # noqa: E731
    low, high = mel(20), mel(rate / 2)
    delta = (high - low) / (bins + 1)
    out = []
    for start in range(0, len(x) - length + 1, shift):
        frame = x[start:start + length].copy()
        frame -= frame.mean()
        for i in range(length - 1, 0, -1):
            frame[i] -= 0.97 * frame[i - 1]
        frame[0] -= 0.97 * frame[0]
        frame *= [(0.5 - 0.5 * math.cos(2 * math.pi * i / (length - 1))) ** 0.85 for i in range(length)]
        power = np.abs(np.fft.rfft(frame, padded)) ** 2
        energies = []
        for b in range(bins):
            left, center, right = low + b * delta, low + (b + 1) * delta, low + (b + 2) * delta
            total = 0.0
            for k in range(padded // 2):
                m = mel(k * rate / padded)
                if left < m < right:
                    up, down = (m - left) / (center - left), (right - m) / (right - center)
                    total += power[k] * (up if m <= center else down)
            energies.append(math.log(max(total, np.finfo(np.float32).eps)))
        out.append(energies)
    return np.array(out)


def test_logmel_matches_an_independent_numpy_kaldi_fbank():
    t = np.arange(int(0.1 * RATE)) / RATE
    x = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.1 * np.sin(2 * np.pi * 3000 * t) + 0.01).astype(np.float32)
    ours = encoders.build("logmel", torch.device("cpu")).features([x])[0].numpy()
    reference = numpy_fbank(x)
    assert ours.shape == reference.shape == (1 + (len(x) - 400) // 160, 80)
    assert np.abs(ours - reference).max() < 2e-3 * np.abs(reference).max()
    normed = encoders.build("logmel", torch.device("cpu"), mean_norm=True).features([x])[0].numpy()
    assert np.allclose(normed, reference - reference.mean(axis=0), atol=2e-3 * np.abs(reference).max())


def test_logmel_batching_matches_one_by_one_and_short_audio_gives_one_frame():
    encoder = encoders.build("logmel", torch.device("cpu"))
    waves = [vowels()[:n] for n in (16000, 300, 4321)]
    batched = encoder.features(waves)
    assert [len(f) for f in batched] == [98, 1, 25]
    for wave, features in zip(waves, batched):
        assert torch.allclose(encoder.features([wave])[0], features, atol=1e-4)


def test_logmel_post_processing_is_kaldis_add_deltas_cmvn_and_subsample():
    x = vowels()[:8000]
    plain = encoders.build("logmel", torch.device("cpu")).features([x])[0].numpy().astype(np.float64)
    T = len(plain)

    def delta(c):  # add-deltas, loop by loop: window 2, frames beyond the edges are the edge frames
        at = lambda t: c[min(max(t, 0), T - 1)]  # noqa: E731
        return np.array([sum(n * (at(t + n) - at(t - n)) for n in (1, 2)) / 10 for t in range(T)])

    stacked = np.concatenate([plain, delta(plain), delta(delta(plain))], axis=1)
    normed = (stacked - stacked.mean(axis=0)) / stacked.std(axis=0)
    encoder = encoders.build("logmel", torch.device("cpu"), deltas=True, cmvn=True, subsample=2)
    ours = encoder.features([x])[0].numpy()
    assert (encoder.dim, encoder.hop, ours.shape) == (240, 50.0, (len(range(0, T, 2)), 240))
    assert np.allclose(ours, normed[::2], atol=1e-3)
    batched = encoder.features([x[:3000], x, vowels()[:300]])
    assert [len(f) for f in batched] == [9, len(ours), 1] and torch.allclose(batched[1], torch.from_numpy(ours))
    assert torch.isfinite(batched[2]).all()  # one frame: variance 0, no division by zero
    with pytest.raises(encoders.EncoderOptionError, match="--subsample 0"):
        encoders.build("logmel", torch.device("cpu"), subsample=0)
    assert encoders.build("logmel", torch.device("cpu")).spec() == {"encoder": "logmel", "bins": 80,
                                                                    "mean_norm": False}


# ------------------------------------------------------------------ hubert
def test_hubert_checkpoint_loads_through_the_allowlist_and_is_deterministic(tmp_path):
    ckpt = tmp_path / "hubert.pt"
    save_hubert(ckpt)
    needs = set(torch.serialization.get_unsafe_globals_in_checkpoint(str(ckpt)))
    assert {"fairseq.data.dictionary.Dictionary", "omegaconf.dictconfig.DictConfig"} <= needs
    with pytest.raises(pickle.UnpicklingError):  # weights-only loading without the allowlist refuses it
        torch.load(ckpt, weights_only=True)
    encoder = encoders.build("hubert", torch.device("cpu"), checkpoint=str(ckpt), layer=2)
    assert (encoder.sample_rate, encoder.hop, encoder.dim, encoder.field, encoder.stride) == (16000, 50, 32, 400, 320)
    assert not encoder.pad_exact  # GroupNorm extractor: only equal lengths share a batch
    assert sorted(encoder._groups([16000, 8000, 16000], None)) == [[0, 2], [1]]
    waves = [vowels()[:n] for n in (16000, 16000, 8000, 399)]
    first = encoder.features(waves)
    assert [len(f) for f in first] == [49, 49, 24, 1]
    again = encoders.build("hubert", torch.device("cpu"), checkpoint=str(ckpt), layer=2).features(waves)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    # layer 2 is layer 2 of fairseq's own forward, and layer 3 differs from it
    with torch.inference_mode():
        x, _ = encoder.model.extract_features(torch.from_numpy(waves[2])[None], output_layer=2)
        deeper = encoders.build("hubert", torch.device("cpu"), checkpoint=str(ckpt), layer=3).features(waves[2:3])[0]
    assert torch.allclose(first[2], x[0], atol=1e-5)
    assert not torch.allclose(deeper, first[2], atol=1e-3)


def test_hubert_chunks_keep_every_frame_and_survive_a_tail_shorter_than_the_kernel(tmp_path):
    ckpt = tmp_path / "hubert.pt"
    save_hubert(ckpt, normalize=True, extractor_mode="layer_norm")
    encoder = encoders.build("hubert", torch.device("cpu"), checkpoint=str(ckpt), layer=1, chunk_seconds=0.2)
    assert encoder.normalize and encoder.pad_exact and encoder.chunk == 3200
    lengths = [3200 * 3 + 100, 3200 * 3 + 399, 3200 * 3 + 400, 3200 * 2, 5000]  # tails under / at the kernel
    waves = [np.random.default_rng(n).standard_normal(n).astype(np.float32) for n in lengths]
    feats = encoder.features(waves)
    assert [len(f) for f in feats] == [(n - 400) // 320 + 1 for n in lengths]
    # the conv frames of overlapping chunks are exactly those of the whole (normalised) wave
    with torch.inference_mode():
        wave = torch.nn.functional.layer_norm(torch.from_numpy(waves[1]), (lengths[1],))
        whole = encoder.model.feature_extractor(wave[None])[0].T
        parts = torch.cat([encoder.model.feature_extractor(c[None])[0].T for c in encoder._chunks(wave)])
    assert torch.allclose(whole, parts, atol=1e-5)
    # padded batches (with a padding_mask) give each wave its own frames
    chunk_lengths = [3280, 3200, 1800]
    assert any(len({chunk_lengths[j] for j in g}) > 1 for g in encoder._groups(chunk_lengths, 10 ** 4))
    for wave, batched in zip(waves, feats):
        assert torch.allclose(encoder.features([wave])[0], batched, atol=1e-4)


def test_sp_quantize_with_a_hubert_checkpoint_and_a_joblib_kmeans(tmp_path):
    ckpt = tmp_path / "hubert.pt"
    save_hubert(ckpt)
    manifest = corpus(tmp_path, n=5)
    km = tmp_path / "km.bin"
    assert run(kmeans.main, manifest, "-o", km, "-k", 4, "--encoder", "hubert", "--checkpoint", ckpt,
               "--layer", 2).exit_code == 0
    args = [manifest, "--kmeans", km, "--encoder", "hubert", "--checkpoint", ckpt, "--layer", 2]
    first = run(quantize.main, *args)
    rows = table(first.stdout)
    assert [r[0] for r in rows] == [f"clip/{i:02d}" for i in range(5)]
    assert [r[2] for r in rows] == ["yes", "no", "up down", "yes", "no"]
    assert all(len(r[1].split()) == 49 and set(r[1].split()) <= set(map(str, range(4))) for r in rows)
    assert len({r[1] for r in rows}) > 1
    assert run(quantize.main, *args, "--batch-size", 1).stdout == first.stdout


def test_a_checkpoint_without_task_state_loads_with_stand_in_label_dicts(tmp_path):
    with_dicts, without = tmp_path / "with.pt", tmp_path / "without.pt"
    save_hubert(with_dicts)
    save_hubert(without, task_state=False)
    from fairseq import checkpoint_utils
    from speechprompt.checkpoints import fairseq_globals
    with fairseq_globals(), pytest.raises(FileNotFoundError, match="dict.km.txt"):  # fairseq alone fails
        checkpoint_utils.load_model_ensemble_and_task([str(without)])
    wave = [vowels()[:8000]]
    a = encoders.build("hubert", torch.device("cpu"), checkpoint=str(with_dicts), layer=2).features(wave)[0]
    b = encoders.build("hubert", torch.device("cpu"), checkpoint=str(without), layer=2).features(wave)[0]
    assert torch.equal(a, b)


def test_a_checkpoint_with_a_class_off_the_allowlist_is_refused(tmp_path):
    import fractions

    ckpt = tmp_path / "hubert.pt"
    save_hubert(ckpt, extra_state={"odd": fractions.Fraction(1, 3)})
    joblib.dump({"cluster_centers_": np.zeros((2, 32))}, tmp_path / "km.bin")
    result = CliRunner().invoke(quantize.main, ["/dev/null", "--kmeans", str(tmp_path / "km.bin"),
                                                "--encoder", "hubert", "--checkpoint", str(ckpt)])
    assert result.exit_code == 1
    assert result.stderr.strip().count("\n") == 0
    assert f"{ckpt}: refused: not loadable through the weights-only allowlist" in result.stderr
    assert "fractions.Fraction" in result.stderr


# ------------------------------------------------------------------ kmeans
def test_kmeans_file_is_an_npz_that_loads_without_pickle(logmel_km):
    with np.load(logmel_km[0], allow_pickle=False) as npz:  # no pickle needed: none is in the file
        assert str(npz["format"]) == "speechprompt-kmeans/1"
        centers = npz["centers"]
        assert json.loads(str(npz["encoder"])) == {"encoder": "logmel", "bins": 80, "mean_norm": False}
    assert centers.shape == (8, 80) and centers.dtype == np.float32
    loaded, spec = kmeans_model.load_kmeans(logmel_km[0])
    assert np.array_equal(loaded, centers) and spec == {"encoder": "logmel", "bins": 80, "mean_norm": False}


def test_joblib_kmeans_files_still_load_through_the_restricted_unpickler(logmel_km, tmp_path):
    from sklearn.cluster import KMeans, MiniBatchKMeans

    frames = np.random.default_rng(0).standard_normal((300, 6)).astype(np.float32)
    for i, model in enumerate([MiniBatchKMeans(5, n_init=2, random_state=0).fit(frames),
                               KMeans(4, n_init=2, random_state=np.random.RandomState(1)).fit(frames)]):
        model.speechprompt_encoder_ = {"encoder": "logmel", "bins": 6}  # as older sp-kmeans files have it
        for protocol, compress in [(2, 0), (5, 3)]:
            path = tmp_path / f"km{i}-{protocol}-{compress}.bin"
            joblib.dump(model, path, protocol=protocol, compress=compress)
            centers, spec = kmeans_model.load_kmeans(str(path))
            assert np.array_equal(centers, model.cluster_centers_.astype(np.float32))
            assert spec == {"encoder": "logmel", "bins": 6}


def test_kmeans_fit_is_seeded(logmel_km, tmp_path):
    km, manifest = logmel_km
    assert run(kmeans.main, manifest, "-o", tmp_path / "again.bin", "-k", 8, "--seed", 1).exit_code == 0
    assert np.array_equal(kmeans_model.load_centroids(tmp_path / "again.bin"), kmeans_model.load_centroids(km))
    assert run(kmeans.main, manifest, "-o", tmp_path / "sub.bin", "-k", 8, "--percent", 50, "--max-frames", 300,
               "--seed", 2).exit_code == 0
    assert not np.array_equal(kmeans_model.load_centroids(tmp_path / "sub.bin"), kmeans_model.load_centroids(km))


def test_old_kmeans_pickle_whose_class_is_gone_loads_through_the_restricted_unpickler(tmp_path, monkeypatch):
    module = types.ModuleType("sklearn.cluster.k_means_")  # sklearn 0.2x's module, gone from today's sklearn

    class MiniBatchKMeans:  # the shape of an old sklearn object; its module will not exist at load time
        pass

    MiniBatchKMeans.__module__, MiniBatchKMeans.__qualname__ = module.__name__, "MiniBatchKMeans"
    module.MiniBatchKMeans = MiniBatchKMeans
    monkeypatch.setitem(sys.modules, module.__name__, module)
    old = MiniBatchKMeans()
    old.__dict__.update(n_clusters=3, cluster_centers_=np.arange(12, dtype=np.float64).reshape(3, 4),
                        random_state=np.random.RandomState(0), _sklearn_version="0.24.2")
    path = tmp_path / "km.bin"
    joblib.dump(old, path)
    monkeypatch.delitem(sys.modules, module.__name__)
    with pytest.raises(ModuleNotFoundError):
        joblib.load(path)
    centers = kmeans_model.load_centroids(str(path))
    assert centers.dtype == np.float32 and np.array_equal(centers, np.arange(12).reshape(3, 4))
    bad = tmp_path / "bad.bin"
    joblib.dump({"labels": [1, 2]}, bad)
    with pytest.raises(BadInput, match="not a k-means model"):
        kmeans_model.load_centroids(str(bad))
    other = tmp_path / "other.bin"
    joblib.dump({"cluster_centers_": np.zeros((2, 3)), "extra": fractions.Fraction(1, 3)}, other)
    with pytest.raises(BadInput, match="refused: global fractions.Fraction is not allowed"):
        kmeans_model.load_centroids(str(other))


def test_reservoir_keeps_a_bounded_seeded_uniform_sample():
    def sample(seed):
        reservoir = kmeans.Reservoir(1000, seed)
        for start in range(0, 20_000, 700):  # uneven blocks, like utterances of different lengths
            reservoir.add(np.arange(start, min(start + 700, 20_000), dtype=np.float32)[:, None])
        return reservoir.sample()[:, 0]

    kept = sample(0)
    assert len(kept) == 1000 == len(set(kept.tolist()))
    assert np.array_equal(kept, sample(0)) and not np.array_equal(kept, sample(1))
    assert abs(kept.mean() - 10_000) < 800  # uniform over the stream: about 5800/sqrt(1000) sd of 180
    assert (kept >= 10_000).mean() > 0.4  # the second half is not starved
    small = kmeans.Reservoir(1000, 0)
    small.add(np.ones((10, 3), dtype=np.float32))
    assert small.sample().shape == (10, 3)


def test_quantizer_is_the_nearest_centre():
    rng = np.random.default_rng(0)
    centers, x = rng.standard_normal((7, 5)).astype(np.float32), rng.standard_normal((50, 5)).astype(np.float32)
    units = kmeans_model.Quantizer(centers, torch.device("cpu"))(torch.from_numpy(x)).numpy()
    assert np.array_equal(units, ((x[:, None] - centers[None]) ** 2).sum(-1).argmin(1))


# ------------------------------------------------------------------ engine
def test_other_rates_and_stereo_give_nearly_the_same_units(tmp_path):
    x = vowels(seconds_each=1 / 6)
    stereo = np.stack([x + 0.01, x - 0.01], axis=1)
    files = {"mono16k": (x, 16000), "mono8k": (resample(x, 16000, 8000), 8000),
             "mono44k": (resample(x, 16000, 44100), 44100), "stereo16k": (stereo, 16000)}
    rows = []
    for name, (wave, rate) in files.items():
        sf.write(tmp_path / f"{name}.wav", wave, rate, subtype="FLOAT")
        rows.append((name, tmp_path / f"{name}.wav", len(wave), ""))
    km = tmp_path / "km.bin"  # one centre per vowel, fitted on the 16 kHz mono clip
    assert run(kmeans.main, write_manifest(tmp_path / "ref.tsv", rows[:1]), "-o", km, "-k", 6).exit_code == 0
    result = run(quantize.main, write_manifest(tmp_path / "m.tsv", rows), "--kmeans", km)
    units = {r[0]: np.array(r[1].split()) for r in table(result.stdout)}
    reference = units.pop("mono16k")
    assert len(reference) == 98
    for name, other in units.items():
        assert len(other) == len(reference), name
        assert (other == reference).mean() >= 0.9, (name, (other == reference).mean())


def test_bad_audio_fails_with_file_line_or_is_skipped_with_ids_aligned(logmel_km, tmp_path):
    km, manifest = logmel_km
    good = manifest.read_text().splitlines()[:3]
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really audio" * 10)
    sf.write(tmp_path / "empty.wav", np.zeros(0, dtype=np.float32), RATE)
    sf.write(tmp_path / "short.wav", np.zeros(800, dtype=np.float32), RATE)
    bad = [f"bad/corrupt\t{tmp_path}/corrupt.wav\t0\t16000\tyes", f"bad/empty\t{tmp_path}/empty.wav\t0\t16000\tno",
           f"bad/truncated\t{tmp_path}/short.wav\t0\t16000\tno"]
    lines = [good[0], bad[0], good[1], bad[1], bad[2], good[2]]
    mixed = tmp_path / "mixed.tsv"
    mixed.write_text("\n".join(lines) + "\n")
    failed = sp("quantize", mixed, "--kmeans", km, check=False)
    assert failed.returncode == 1 and failed.stdout == ""
    assert failed.stderr.strip().startswith(f"sp-quantize: error: {mixed}:2: unreadable audio")
    assert failed.stderr.strip().count("\n") == 0
    result = run(quantize.main, mixed, "--kmeans", km, "--skip-bad")
    assert [r[0] for r in table(result.stdout)] == [line.split("\t")[0] for line in good]
    assert [r[2] for r in table(result.stdout)] == [line.split("\t")[4] for line in good]
    assert "skipped 3 bad utterances" in result.stderr
    assert f"{mixed}:4: empty audio" in result.stderr and f"{mixed}:5: truncated audio" in result.stderr
    alone = run(quantize.main, manifest, "--kmeans", km)
    assert result.stdout == "".join(alone.stdout.splitlines(keepends=True)[:3])


def test_shards_concatenate_to_the_whole_output(logmel_km, tmp_path):
    km, manifest = logmel_km
    whole = run(quantize.main, manifest, "--kmeans", km, "--batch-seconds", 3)
    assert len(table(whole.stdout)) == 12
    parts = [run(quantize.main, manifest, "--kmeans", km, "--shard", i, "--num-shards", 5, "-o", tmp_path / f"s{i}")
             for i in range(5)]
    assert all(p.exit_code == 0 and p.stdout == "" for p in parts)
    assert "".join((tmp_path / f"s{i}").read_text() for i in range(5)) == whole.stdout
    assert len(table((tmp_path / "s0").read_text())) == 2
    assert run(quantize.main, manifest, "--kmeans", km, "--batch-size", 5).stdout == whole.stdout
    assert run(quantize.main, manifest, "--kmeans", km, "--batch-seconds", 0.5).stdout == whole.stdout  # 2 windows
    bad = CliRunner().invoke(quantize.main, [str(manifest), "--kmeans", str(km), "--shard", "5", "--num-shards", "5"])
    assert bad.exit_code == 2 and "--shard 5" in bad.stderr


def test_kmeans_of_another_dimension_is_refused(logmel_km, tmp_path):
    km, manifest = logmel_km
    ckpt = tmp_path / "hubert.pt"
    save_hubert(ckpt)
    result = CliRunner().invoke(quantize.main, [str(manifest), "--kmeans", str(km), "--encoder", "hubert",
                                                "--checkpoint", str(ckpt), "--layer", "2"])
    assert result.exit_code == 1 and "80-dim centres" in result.stderr and "32-dim" in result.stderr
    wrong = CliRunner().invoke(quantize.main, [str(manifest), "--kmeans", str(km), "--layer", "3"])
    assert wrong.exit_code == 2 and "--layer does not apply to the logmel encoder" in wrong.stderr
    normed = CliRunner().invoke(quantize.main, [str(manifest), "--kmeans", str(km), "--mean-norm"])
    assert normed.exit_code == 1 and "'mean_norm': False" in normed.stderr and "'mean_norm': True" in normed.stderr
    cmvn = CliRunner().invoke(quantize.main, [str(manifest), "--kmeans", str(km), "--cmvn"])
    assert cmvn.exit_code == 1 and "'cmvn': True" in cmvn.stderr
    deltas = CliRunner().invoke(quantize.main, [str(manifest), "--kmeans", str(km), "--deltas"])
    assert deltas.exit_code == 1 and "80-dim centres" in deltas.stderr and "240-dim" in deltas.stderr


def test_logmel_end_to_end_on_a_tiny_sp_synth_corpus(tmp_path):
    sp("synth", tmp_path / "corpus", "--speakers", 3, "--unknown-per-speaker", 1, "--noise-seconds", 10,
       "--valid-percent", 34, "--test-percent", 34)
    sp("manifest", "speech_commands", tmp_path / "corpus", "--out-dir", tmp_path)
    km = tmp_path / "km.bin"
    assert run(kmeans.main, tmp_path / "train.tsv", "-o", km, "-k", 16).exit_code == 0
    result = shell(f"sp-quantize {tmp_path}/valid.tsv --kmeans {km} --threads 1 | sp-dedup --durations")
    assert result.returncode == 0, result.stderr
    manifest = table((tmp_path / "valid.tsv").read_text())
    rows = table(result.stdout)
    assert [r[0] for r in rows] == [m[0] for m in manifest] and len(rows) > 5
    assert [r[2] for r in rows] == [m[4] for m in manifest]
    assert all(sum(map(int, r[3].split())) == 1 + (int(m[3]) - 400) // 160 for r, m in zip(rows, manifest))
    assert all(set(r[1].split()) <= set(map(str, range(16))) for r in rows)
    assert len({r[1] for r in rows}) == len(rows)  # different words, different unit strings


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_one_resampler_is_scipys_polyphase_default_in_the_dtype_it_gets(dtype):
    from scipy.signal import resample_poly

    x = np.random.default_rng(0).standard_normal(22050).astype(dtype)
    for rate, up, down in [(22050, 320, 441), (8000, 2, 1), (44100, 160, 441)]:
        y = resample(x[:rate], rate, RATE)
        assert y.dtype == dtype and np.array_equal(y, resample_poly(x[:rate], up, down))
    assert resample(x, RATE, RATE) is x
