"""sp-manifest: dataset directories -> per-split manifests, and its dataset adapters."""
import hashlib
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import shell, sp

COMMANDS = "yes no up down left right on off stop go".split()
SPLITS = ("train", "valid", "test")


def google_which_set(name, valid=10.0, test=10.0):
    base = re.sub(r"_nohash_.*$", "", name)
    p = (int(hashlib.sha1(base.encode()).hexdigest(), 16) % 2**27) * (100.0 / (2**27 - 1))
    return "valid" if p < valid else "test" if p < valid + test else "train"


def write_wav(path, seconds=0.5, rate=16000, channels=1, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    wave = 0.1 * np.random.default_rng(seed).standard_normal((int(seconds * rate), channels))
    sf.write(path, wave, rate, subtype="PCM_16")
    return path


def read(path):
    return [line.split("\t") for line in Path(path).read_text().splitlines()]


def manifest(*args, **kw):
    return sp("manifest", *map(str, args), **kw)


def assert_error(result, *fragments):
    """Exit 1, one line `sp-manifest: error: ...` naming what went wrong."""
    assert result.returncode == 1, result.stderr
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and errors[0].startswith("sp-manifest: error: "), result.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    assert result.stdout == ""


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("gsc") / "corpus"
    sp("synth", out, "--speakers", 10, "--noise-seconds", 10, "--seed", 1)
    return out


@pytest.fixture(scope="module")
def manifests(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("manifests")
    manifest("speech_commands", corpus, "--out-dir", out)
    return out


# ---------------------------------------------------------- Speech Commands
def test_speech_commands_three_splits_twelve_classes(corpus, manifests):
    assert sorted(p.name for p in manifests.iterdir()) == ["test.tsv", "train.tsv", "valid.tsv"]
    speakers = {}
    all_ids = []
    for split in SPLITS:
        rows = read(manifests / f"{split}.tsv")
        ids = [r[0] for r in rows]
        assert ids == sorted(ids) and len(set(ids)) == len(ids)
        all_ids += ids
        labels = {r[4] for r in rows}
        assert labels == set(COMMANDS) | {"_silence_", "_unknown_"}, split
        for uid, path, offset, num_samples, label, *speaker in rows:
            assert os.path.isabs(path) and os.path.exists(path)
            word = uid.split("/")[0]
            if label == "_silence_":
                assert not speaker  # noise has no speaker
                assert "/_background_noise_/" in path
                assert int(num_samples) == 16000 and int(offset) % 16000 == 0
                assert int(offset) + 16000 <= sf.info(path).frames
            else:
                assert path == str(corpus / f"{uid}.wav")
                assert (offset, num_samples) == ("0", "16000")
                assert label == (word if word in COMMANDS else "_unknown_")
                assert speaker == [uid.split("/")[1].split("_nohash_")[0]]  # the 6th column, for sp-f0
                speakers.setdefault(uid.split("/")[1].split("_nohash_")[0], set()).add(split)
    assert len(set(all_ids)) == len(all_ids)
    assert all(len(splits) == 1 for splits in speakers.values()), speakers  # speaker-disjoint
    n_files = sum(1 for p in corpus.rglob("*.wav") if p.parent.name != "_background_noise_")
    assert sum(1 for uid in all_ids if not uid.startswith("_silence_/")) == n_files
    assert sum(1 for uid in all_ids if uid.startswith("_silence_/")) == 4 * 10  # 4 noises x 10 s


def test_split_to_stdout_same_as_out_dir_and_deterministic(corpus, manifests):
    result = manifest("speech_commands", corpus, "--split", "test", "-o", "-")
    assert result.stdout == (manifests / "test.tsv").read_text()
    assert "test:" in result.stderr  # the summary goes to stderr


def test_pipe_counts_classes(corpus):
    result = shell(f"sp-manifest speech_commands {corpus} --split test | cut -f5 | sort -u | wc -l")
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) == 12


def test_pipe_valid_ids_match_validation_list(corpus):
    script = (f"diff <(sp-manifest speech_commands {corpus} --split valid | awk -F'\\t' '$5 != \"_silence_\" {{print $1}}') "
              f"<(sed 's/\\.wav$//' {corpus}/validation_list.txt | LC_ALL=C sort)")
    result = shell(script)
    assert result.returncode == 0, result.stdout + result.stderr


def test_separate_test_dir(corpus, tmp_path):
    test_dir = tmp_path / "test_set"
    write_wav(test_dir / "yes" / "aaaa0000_nohash_0.wav")
    write_wav(test_dir / "_unknown_" / "bed_bbbb0000_nohash_0.wav")
    write_wav(test_dir / "_silence_" / "noise_0.wav")
    out = tmp_path / "m"
    manifest("speech_commands", corpus, "--test-dir", test_dir, "--out-dir", out)
    test = read(out / "test.tsv")
    assert [(r[0], r[4]) for r in test] == [("_silence_/noise_0", "_silence_"),
                                             ("_unknown_/bed_bbbb0000_nohash_0", "_unknown_"),
                                             ("yes/aaaa0000_nohash_0", "yes")]
    listed = {line[:-4] for line in (corpus / "testing_list.txt").read_text().split()}
    train = {r[0] for r in read(out / "train.tsv")}
    assert listed and not listed & train  # the testing_list files are left out, not moved to train


# ------------------------------------------------------- Fluent Speech Commands
def fake_fsc(root):
    rows = [("train", "S1", "u1", "activate", "lights", "kitchen"),
            ("train", "S1", "u2", "change language", "Chinese", "none"),
            ("valid", "S2", "u3", "decrease", "volume", "none"),
            ("test", "S3", "u4", "bring", "shoes", "none")]
    (root / "data").mkdir(parents=True)
    for split in SPLITS:
        lines = [",path,speakerId,transcription,action,object,location"]
        for i, (s, speaker, utt, action, obj, location) in enumerate(rows):
            if s == split:
                path = f"wavs/speakers/{speaker}/{utt}.wav"
                write_wav(root / path, seed=i)
                lines.append(f'{i},{path},{speaker},"say, {action}",{action},{obj},{location}')
        (root / "data" / f"{split}_data.csv").write_text("\n".join(lines) + "\n")


def test_fluent_speech_commands_three_slot_labels(tmp_path):
    root = tmp_path / "fsc"
    fake_fsc(root)
    out = tmp_path / "m"
    manifest("fluent_speech_commands", root, "--out-dir", out)
    train = read(out / "train.tsv")
    assert [(r[0], r[4]) for r in train] == [("wavs/speakers/S1/u1", "activate lights kitchen"),
                                              ("wavs/speakers/S1/u2", "change_language Chinese none")]
    assert train[0][1] == str(root / "wavs/speakers/S1/u1.wav") and train[0][3] == "8000"
    assert [r[4] for r in read(out / "valid.tsv")] == ["decrease volume none"]
    assert all(len(r[4].split()) == 3 for split in SPLITS for r in read(out / f"{split}.tsv"))


# ------------------------------------------------------------ generic adapters
def test_folders_hash_split_and_split_folders(tmp_path):
    root = tmp_path / "classes"
    names = [f"{i:08x}_nohash_0.wav" for i in range(40)]
    for i, name in enumerate(names):
        write_wav(root / ("cat" if i % 2 else "dog") / name, seconds=0.1)
    result = manifest("folders", root, "--split", "valid")
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    expected = sorted(f"{'cat' if i % 2 else 'dog'}/{name[:-4]}" for i, name in enumerate(names)
                      if google_which_set(name) == "valid")
    assert [r[0] for r in rows] == expected and expected
    assert all(r[4] == r[0].split("/")[0] for r in rows)

    split_root = tmp_path / "split_folders"
    write_wav(split_root / "train" / "a" / "x.wav")
    write_wav(split_root / "test" / "b" / "x.wav")
    out = tmp_path / "m"
    manifest("folders", split_root, "--out-dir", out)
    assert [(r[0], r[4]) for r in read(out / "train.tsv")] == [("train/a/x", "a")]
    assert [(r[0], r[4]) for r in read(out / "test.tsv")] == [("test/b/x", "b")]
    assert read(out / "valid.tsv") == []


def test_table_with_split_column_and_multi_slot_label(tmp_path):
    for i in range(3):
        write_wav(tmp_path / "audio" / f"{i}.wav", seed=i)
    (tmp_path / "t.tsv").write_text("path\tsplit\tintent\tplace\n"
                                    "audio/0.wav\ttrain\tlights on\tkitchen\n"
                                    "audio/1.wav\tvalidation\t1 8\t20\n"
                                    "audio/2.wav\ttest\toff\t\n")
    out = tmp_path / "m"
    manifest("table", tmp_path / "t.tsv", "--out-dir", out, "--label-column", "intent", "--label-column", "place")
    assert [(r[0], r[4]) for r in read(out / "train.tsv")] == [("audio/0", "lights_on kitchen")]
    assert [(r[0], r[4]) for r in read(out / "valid.tsv")] == [("audio/1", "1_8 20")]
    assert [(r[0], r[4]) for r in read(out / "test.tsv")] == [("audio/2", "off")]


def test_table_directory_of_split_csvs(tmp_path):
    write_wav(tmp_path / "a.wav")
    write_wav(tmp_path / "b.wav", seed=1)
    (tmp_path / "train.csv").write_text("file,emotion\na.wav,happy\n")
    (tmp_path / "test.csv").write_text("file,emotion\nb.wav,sad\n")
    out = tmp_path / "m"
    manifest("table", tmp_path, "--out-dir", out, "--path-column", "file", "--label-column", "emotion")
    assert [(r[0], r[4]) for r in read(out / "train.tsv")] == [("a", "happy")]
    assert [(r[0], r[4]) for r in read(out / "test.tsv")] == [("b", "sad")]


# -------------------------------------------------------------------- bad input
def test_unknown_label_column(tmp_path):
    write_wav(tmp_path / "a.wav")
    (tmp_path / "t.csv").write_text("path,label\na.wav,yes\n")
    out = tmp_path / "m"
    result = manifest("table", tmp_path / "t.csv", "--out-dir", out, "--label-column", "intent", check=False)
    assert_error(result, f"{tmp_path / 't.csv'}:1:", "'intent'", "'path', 'label'")
    assert not out.exists()


def test_missing_field_names_file_and_line(tmp_path):
    write_wav(tmp_path / "a.wav")
    (tmp_path / "t.csv").write_text("path,label\na.wav,yes\na.wav\n")
    result = manifest("table", tmp_path / "t.csv", "--split", "train", check=False)
    assert_error(result, f"{tmp_path / 't.csv'}:3:", "missing field 'label'")


def test_duplicate_ids(tmp_path):
    write_wav(tmp_path / "a.wav")
    (tmp_path / "t.csv").write_text("path,label,split\na.wav,yes,train\n./a.wav,no,train\n")
    out = tmp_path / "m"
    result = manifest("table", tmp_path / "t.csv", "--out-dir", out, check=False)
    assert_error(result, f"{tmp_path / 't.csv'}:3:", "duplicate id 'a'")
    assert not out.exists()


@pytest.fixture
def bad_folders(tmp_path):
    """One class folder with 2 good files and a corrupt, an empty, an 8 kHz and a stereo one."""
    root = tmp_path / "data" / "train"
    write_wav(root / "c" / "good1.wav")
    write_wav(root / "c" / "good2.wav", seed=1)
    (root / "c" / "corrupt.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunkjunkjunk")
    sf.write(root / "c" / "empty.wav", np.zeros((0, 1)), 16000, subtype="PCM_16")
    write_wav(root / "c" / "rate8k.wav", rate=8000)
    write_wav(root / "c" / "stereo.wav", channels=2)
    return tmp_path / "data"


@pytest.mark.parametrize("bad, message", [("corrupt", "unreadable audio"), ("empty", "empty audio"),
                                          ("rate8k", "sample rate 8000 Hz, not 16000"),
                                          ("stereo", "2 channels, not mono")])
def test_bad_audio_fails_with_one_line_and_no_output(bad_folders, tmp_path, bad, message):
    for other in {"corrupt", "empty", "rate8k", "stereo"} - {bad}:
        (bad_folders / "train" / "c" / f"{other}.wav").unlink()
    out = tmp_path / "m"
    result = manifest("folders", bad_folders, "--out-dir", out, check=False)
    assert_error(result, message, str(bad_folders / "train" / "c" / f"{bad}.wav"))
    assert not out.exists() or not list(out.iterdir())


def test_any_rate_lets_8k_and_stereo_through(bad_folders):
    for bad in ("corrupt", "empty"):
        (bad_folders / "train" / "c" / f"{bad}.wav").unlink()
    rows = manifest("folders", bad_folders, "--split", "train", "--any-rate").stdout.splitlines()
    assert [r.split("\t")[0] for r in rows] == ["train/c/good1", "train/c/good2", "train/c/rate8k", "train/c/stereo"]
    assert rows[2].split("\t")[3] == "4000"  # 0.5 s at the file's own rate


def test_skip_bad_counts_and_reports(bad_folders):
    result = manifest("folders", bad_folders, "--split", "train", "--skip-bad")
    assert [r.split("\t")[0] for r in result.stdout.splitlines()] == ["train/c/good1", "train/c/good2"]
    assert "skipped 4 bad files" in result.stderr
    assert result.stderr.count("skipped:") == 4


def test_listed_file_error_names_list_line(corpus, tmp_path):
    copy = tmp_path / "gsc"
    shutil.copytree(corpus, copy)
    first = (copy / "validation_list.txt").read_text().split()[0]
    (copy / first).write_bytes(b"not audio")
    result = manifest("speech_commands", copy, "--split", "valid", check=False)
    assert_error(result, f"{copy / 'validation_list.txt'}:1:", "unreadable audio")
