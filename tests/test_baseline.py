"""sp-baseline: a tf-idf unit n-gram probe whose predictions sp-score scores like sp-sample's."""
import json
import random

import numpy as np
import torch

from conftest import shell, sp


def toy_table(n, seed):
    """Units tables where the class is carried by a bigram (`7 8` for yes, `8 7` for no) among noise units."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = rng.choice(["yes", "no"])
        units = [rng.randrange(10, 30) for _ in range(rng.randint(5, 12))]
        at = rng.randrange(len(units))
        units[at:at] = [7, 8] if label == "yes" else [8, 7]
        rows.append(f"{label}/{i:03d}\t{' '.join(map(str, units))}\t{label}\n")
    return "".join(rows)


def test_baseline_learns_bigrams_and_writes_sample_format(tmp_path):
    (tmp_path / "train.tsv").write_text(toy_table(200, 1))
    (tmp_path / "test.tsv").write_text(toy_table(50, 2))
    run = shell("sp-baseline train.tsv test.tsv | tee pred.jsonl | sp-score -o metrics.json", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    records = [json.loads(line) for line in (tmp_path / "pred.jsonl").read_text().splitlines()]
    test_rows = [line.split("\t") for line in (tmp_path / "test.tsv").read_text().splitlines()]
    assert [r["id"] for r in records] == [row[0] for row in test_rows]
    assert all(r["label"] == row[2] and r["units"] == row[1] for r, row in zip(records, test_rows))
    assert all(set(r["scores"]) == {"yes", "no"} and r["score"] == max(r["scores"].values()) for r in records)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["accuracy"] >= 0.9 and "eer" in metrics


def test_baseline_unigrams_cannot_see_the_order(tmp_path):
    (tmp_path / "train.tsv").write_text(toy_table(200, 1))
    (tmp_path / "test.tsv").write_text(toy_table(50, 2))
    records = sp("baseline", tmp_path / "train.tsv", tmp_path / "test.tsv", "--ngrams", 1).stdout.splitlines()
    accuracy = sum(json.loads(r)["label"] == json.loads(r)["prediction"] for r in records) / len(records)
    assert accuracy < 0.8  # yes and no share the unigrams 7 and 8: only the bigram separates them


def test_baseline_unlabelled_test_rows_and_gslm_input(tmp_path):
    (tmp_path / "train.txt").write_text("".join(f"{line.split(chr(9))[0]}|{line.split(chr(9))[1]}|"
                                                f"{line.split(chr(9))[2]}" for line in toy_table(60, 3).splitlines(True)))
    (tmp_path / "test.txt").write_text("x|7 8 20 21\ny|8 7 22\n")
    records = [json.loads(r) for r in sp("baseline", tmp_path / "train.txt", tmp_path / "test.txt").stdout.splitlines()]
    assert [r["id"] for r in records] == ["x", "y"] and all(r["label"] is None for r in records)


def tone_manifest(directory, split, n, seed):
    """A manifest of 0.5 s clips: `low` is a 300 Hz tone, `high` a 3 kHz tone, both in noise."""
    import numpy as np
    import soundfile as sf

    rng = np.random.default_rng(seed)
    rows, t = [], np.arange(8000) / 16000
    for i in range(n):
        label = ["low", "high"][i % 2]
        wave = 0.3 * np.sin(2 * np.pi * (300 if label == "low" else 3000) * t) + 0.05 * rng.standard_normal(8000)
        path = directory / f"{split}{i:03d}.wav"
        sf.write(path, wave.astype("float32"), 16000, subtype="PCM_16")
        rows.append(f"{split}/{i:03d}\t{path}\t0\t8000\t{label}\n")
    manifest = directory / f"{split}.tsv"
    manifest.write_text("".join(rows))
    return manifest


def test_logmel_statistics_baseline_reads_manifests(tmp_path):
    train, test = tone_manifest(tmp_path, "train", 20, 1), tone_manifest(tmp_path, "test", 10, 2)
    out = sp("baseline", "--features", "logmel-stats", train, test).stdout
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["id"] for r in records] == [f"test/{i:03d}" for i in range(10)]
    assert all(r["prediction"] == r["label"] for r in records)  # the tones differ in every statistic
    assert all(r["units"] == "" for r in records)


def test_ulm_states_batched_equal_one_at_a_time(tmp_path):
    from prompt_fixtures import make_lm, toy_rows
    from speechprompt.baseline import ulm_states
    from speechprompt.io import Units

    from speechprompt.prompting import backbones

    backbone = backbones.load("fairseq", make_lm(str(tmp_path / "lm"), layers=2, dim=32))
    rows = [Units(uid, [str(u) for u in units], label) for uid, units, label in toy_rows(23, 4)]
    one = ulm_states(rows, backbone, "cpu", batch_size=1)
    batched = ulm_states(rows, backbone, "cpu", batch_size=8)  # right-padded to the longest of each batch
    assert one.shape == (23, 2 * 2 * 32)
    assert np.allclose(one, batched, atol=1e-5)
    assert not np.allclose(one[0], one[1])
    # the states are fairseq's own: its decoder's inner states after each layer, mean and last
    vocab = backbone.vocab
    tokens = torch.tensor([[vocab.eos] + [vocab.index(u) for u in rows[0].units]])
    with torch.no_grad():
        inner = backbone.model.decoder.extract_features(tokens, None)[1]["inner_states"][1:]
    states = torch.stack([s[:, 0] for s in inner])  # layers x T x d
    expected = torch.cat([states.mean(1), states[:, -1]], -1).flatten().numpy()
    assert np.allclose(one[0], expected, atol=1e-5)


def test_ulm_states_probe_reads_units_and_needs_a_ulm(tmp_path):
    from prompt_fixtures import make_lm, toy_rows

    lm = make_lm(str(tmp_path / "lm"), layers=2, dim=32)
    for split, n, seed in (("train", 120, 1), ("test", 40, 2)):
        (tmp_path / f"{split}.tsv").write_text("".join(f"{uid}\t{' '.join(map(str, units))}\t{label}\n"
                                                       for uid, units, label in toy_rows(n, seed)))
    with open(tmp_path / "test.tsv", "a") as f:
        f.write("odd\t1 999 1\tyes\n")  # unit 999 is not in the uLM's dictionary: read as <unk>, counted
    run = shell(f"sp-baseline --features ulm-states --ulm {lm} train.tsv test.tsv | sp-score -o m.json", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "1 units not in the uLM's dictionary" in run.stderr
    # the class is which of units 1, 2, 3 occurs most: the mean state of even a random LM carries it
    assert json.loads((tmp_path / "m.json").read_text())["accuracy"] >= 0.8
    missing = sp("baseline", "--features", "ulm-states", tmp_path / "train.tsv", tmp_path / "test.tsv", check=False)
    assert missing.returncode == 2 and "needs --ulm" in missing.stderr
