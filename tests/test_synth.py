"""sp-synth: the offline Speech Commands-style corpus."""
import hashlib
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import sp

COMMANDS = "yes no up down left right on off stop go".split()


def google_which_set(name, valid=10.0, test=10.0):
    """The split rule from the Speech Commands README, written out independently of the tools."""
    base = re.sub(r"_nohash_.*$", "", name)
    h = int(hashlib.sha1(base.encode()).hexdigest(), 16)
    p = (h % (2**27)) * (100.0 / (2**27 - 1))
    return "valid" if p < valid else "test" if p < valid + test else "train"


def synth(out, *args):
    return sp("synth", out, "--speakers", 10, "--noise-seconds", 10, *args)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "corpus"
    synth(out, "--seed", 3)
    return out


def wavs(root):
    return sorted(p.relative_to(root).as_posix() for p in Path(root).rglob("*.wav"))


def test_layout_and_audio_format(corpus):
    words = sorted(p.name for p in corpus.iterdir() if p.is_dir() and not p.name.startswith("_"))
    assert set(COMMANDS) <= set(words) and len(words) == 30
    noises = sorted((corpus / "_background_noise_").glob("*.wav"))
    assert len(noises) >= 3
    for name in wavs(corpus):
        info = sf.info(corpus / name)
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16"), name
        if not name.startswith("_background_noise_"):
            assert info.frames == 16000, name
            assert re.fullmatch(r"[a-z]+/[0-9a-f]{8}_nohash_\d+\.wav", name), name
    for noise in noises:
        assert sf.info(noise).frames == 10 * 16000
    # every speaker says every command word
    speakers = {line.split("\t")[0] for line in (corpus / "speakers.tsv").read_text().splitlines()}
    assert len(speakers) == 10
    for word in COMMANDS:
        assert {p.name.split("_")[0] for p in (corpus / word).glob("*.wav")} == speakers


def test_speaker_disjoint_splits_follow_google_rule(corpus):
    lists = {"valid": "validation_list.txt", "test": "testing_list.txt"}
    listed = {split: (corpus / f).read_text().split() for split, f in lists.items()}
    by_split = {"train": set(), "valid": set(), "test": set()}
    for name in wavs(corpus):
        if name.startswith("_background_noise_"):
            continue
        split = "valid" if name in listed["valid"] else "test" if name in listed["test"] else "train"
        speaker = Path(name).name.split("_nohash_")[0]
        assert google_which_set(Path(name).name) == split, name
        by_split[split].add(speaker)
    assert all(by_split.values()), by_split  # tiny corpora still have all three splits
    assert not (by_split["train"] & by_split["valid"] or by_split["train"] & by_split["test"]
                or by_split["valid"] & by_split["test"])
    for split, speakers in by_split.items():  # speakers.tsv agrees
        rows = [line.split("\t") for line in (corpus / "speakers.tsv").read_text().splitlines()]
        assert {r[0] for r in rows if r[4] == split} == speakers


def test_words_vary_in_place_and_level(corpus):
    starts, peaks = set(), set()
    for path in sorted((corpus / "yes").glob("*.wav")):
        wave, _ = sf.read(path)
        energy = np.convolve(wave**2, np.ones(400), "same")
        starts.add(int(np.argmax(energy)) // 400)
        peaks.add(round(float(np.abs(wave).max()), 2))
        assert np.abs(wave).max() > 0.1
    assert len(starts) >= 5 and len(peaks) >= 5


def test_existing_output_kept_unless_forced_and_same_seed_same_bytes(tmp_path, corpus):
    out = tmp_path / "c"
    out.mkdir()
    (out / "keep").write_text("x")
    result = sp("synth", out, "--speakers", 3, check=False)
    assert result.returncode == 1
    assert result.stderr.startswith("sp-synth: error:") and "exists" in result.stderr
    assert (out / "keep").exists()
    synth(out, "--seed", 3, "--force")  # replaces it, with the very corpus of the fixture
    assert not (out / "keep").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["c"]  # no temporary directory left behind
    assert wavs(out) == wavs(corpus)
    for name in wavs(corpus) + ["validation_list.txt", "testing_list.txt", "speakers.tsv"]:
        assert (out / name).read_bytes() == (corpus / name).read_bytes(), name


def test_other_seed_other_corpus(tmp_path, corpus):
    other = tmp_path / "other"
    synth(other, "--seed", 4)
    assert (other / "speakers.tsv").read_text() != (corpus / "speakers.tsv").read_text()
    noise = "_background_noise_/white_noise.wav"
    assert (other / noise).read_bytes() != (corpus / noise).read_bytes()
