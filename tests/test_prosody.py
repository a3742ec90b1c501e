"""Prosody per unit: sp-f0 (F0 per unit, by speaker), and the durations and F0 columns carried by id
through sp-dedup, sp-lmdata, sp-verbalize and sp-binarize."""
import numpy as np
import pytest
import soundfile as sf

from conftest import sp

RATE = 16000


def tone(hz, seconds):
    t = np.arange(int(RATE * seconds)) / RATE
    return (0.4 * np.sin(2 * np.pi * hz * t) + 0.2 * np.sin(4 * np.pi * hz * t) + 0.1 * np.sin(6 * np.pi * hz * t))


@pytest.fixture
def clips(tmp_path):
    """A 150 Hz then 200 Hz tone (two units of 0.5 s), a 200 Hz tone by the same speaker, half a second of
    silence and a 0.02 s clip; the manifest names speakers for the first two only."""
    waves = {"a": np.concatenate([tone(150, 0.5), tone(200, 0.5)]), "b": tone(200, 0.5),
             "silence": np.zeros(RATE // 2), "short": tone(150, 0.02)}
    rows = []
    for uid, wave in waves.items():
        path = tmp_path / f"{uid}.wav"
        sf.write(path, wave.astype(np.float32), RATE)
        rows.append(f"{uid}\t{path}\t0\t{len(wave)}\tx" + ("\tspk1" if uid in "ab" else ""))
    manifest = tmp_path / "manifest.tsv"
    manifest.write_text("\n".join(rows) + "\n")
    units = tmp_path / "units.tsv"
    units.write_text("a\t1 2\tx\t25 25\nb\t3\tx\t25\nsilence\t4 5\tx\t10 15\nshort\t6\tx\t1\n")
    return manifest, units


def f0_column(out: str) -> dict[str, list[str]]:
    return {line.split("\t")[0]: line.split("\t")[4].split() for line in out.splitlines()}


def test_f0_per_unit_in_cents_from_the_speakers_mean(clips):
    manifest, units = clips
    result = sp("f0", "--tracker", "praat", manifest, units)
    f0 = f0_column(result.stdout)
    # spk1's voiced frames: 0.5 s at 150 Hz, 1 s at 200 Hz; its mean log-F0 is their frame mean
    mean = (np.log(150) + 2 * np.log(200)) / 3
    expected = [1200 * (np.log(hz) - mean) / np.log(2) for hz in (150, 200)]
    assert [int(v) for v in f0["a"]] == pytest.approx(expected, abs=15)
    assert int(f0["b"][0]) == pytest.approx(expected[1], abs=15)
    assert f0["silence"] == ["u", "u"] and f0["short"] == ["u"]  # unvoiced, not an error
    assert "2 normalised by speaker, 2 by utterance" in result.stderr
    # the other columns pass through
    assert [line.split("\t")[:4] for line in result.stdout.splitlines()] == \
        [line.split("\t") for line in units.read_text().splitlines()]


def test_f0_by_utterance_without_speakers(clips):
    manifest, units = clips
    f0 = f0_column(sp("f0", "--tracker", "praat", "--no-speakers", manifest, units).stdout)
    assert [int(v) for v in f0["a"]] == pytest.approx([-249, 249], abs=15)  # 150 and 200 Hz about their mean
    assert int(f0["b"][0]) == pytest.approx(0, abs=5)


def test_yaapt_silence_and_a_short_clip_are_unvoiced_not_errors(tmp_path, clips):
    manifest, units = clips
    rows = [line for line in units.read_text().splitlines() if line.split("\t")[0] in ("silence", "short")]
    units.write_text("\n".join(rows) + "\n")
    result = sp("f0", manifest, units)  # YAAPT, pGSLM's tracker, the default
    f0 = f0_column(result.stdout)
    assert f0["silence"] == ["u", "u"]
    assert len(f0["short"]) == 1  # a 0.02 s clip: a value or `u`, and no error
    assert "Warning" not in result.stderr


def test_speaker_with_no_voiced_frame_falls_back_and_is_counted(tmp_path, clips):
    manifest, units = clips
    manifest.write_text(manifest.read_text().replace("0\tx\n", "0\tx\tquiet\n", 1))  # silence gets a speaker
    result = sp("f0", "--tracker", "praat", manifest, units)
    assert f0_column(result.stdout)["silence"] == ["u", "u"]
    assert "1 of a speaker with no voiced frame, by utterance instead" in result.stderr


def test_f0_bad_input_is_one_line(tmp_path, clips):
    manifest, units = clips
    no_durations = tmp_path / "plain.tsv"
    no_durations.write_text("a\t1 2\tx\n")
    result = sp("f0", "--tracker", "praat", manifest, no_durations, check=False)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == \
        f"sp-f0: error: {no_durations}:1: no durations column: make the units with sp-dedup --durations"
    stranger = tmp_path / "stranger.tsv"
    stranger.write_text("zz\t1\tx\t5\n")
    result = sp("f0", "--tracker", "praat", manifest, stranger, check=False)
    assert f"{stranger}:1: utterance 'zz' is not in the manifest" in result.stderr
    wrong_rate = tmp_path / "rate.tsv"
    wrong_rate.write_text("a\t1 2\tx\t50 50\n")  # 100 frames for 1 s: 100 Hz units read at 50
    result = sp("f0", "--tracker", "praat", manifest, wrong_rate, check=False)
    assert "the units span 2.00 s at --unit-rate 50, the audio 1.00 s" in result.stderr


# ------------------------------------------------- the columns carried by id
TABLE = "b\t7 7 8\tno\t2 3 4\t10 u -20\na\t1 2 2 3\tyes\t1 1 1 1\tu 30 -30 5\n"


def test_dedup_merges_f0_by_duration():
    out = sp("dedup", input=TABLE).stdout
    assert out.splitlines() == ["b\t7 8\tno\t5 4\t10 -20", "a\t1 2 3\tyes\t1 2 1\tu 0 5"]


def test_lmdata_crops_the_prosody_with_its_units():
    out = sp("lmdata", "--max-units", "2", "--crop", "tail", input=TABLE).stdout
    assert out.splitlines() == ["b\t7 8 <s> no\t3 4\tu -20", "a\t2 3 <s> yes\t1 1\t-30 5"]
    out = sp("lmdata", "--no-label", input=TABLE).stdout
    assert out.splitlines()[0] == "b\t7 7 8\t2 3 4\t10 u -20"


def test_prosody_columns_must_match_their_units(tmp_path):
    bad = tmp_path / "bad.tsv"
    for row, message in [("a\t1 2\tx\t1 1\t5", "1 F0 values for 2 units"),
                         ("a\t1 2\tx\t1 1\t5 high", "F0 value 'high' is neither whole cents nor 'u'"),
                         ("a\t1 2\tx\t\t5 5", "an F0 column without durations")]:
        bad.write_text(row + "\n")
        result = sp("lmdata", bad, check=False)
        assert result.returncode == 1 and message in result.stderr, result.stderr


def test_streams_carried_by_id_through_verbalize_and_binarize(tmp_path):
    lm = tmp_path / "train.lm"
    lm.write_text(sp("lmdata", input=TABLE).stdout)
    verbalizer = tmp_path / "v.json"
    sp("verbalize", "fit", "--method", "freq", lm, "-o", verbalizer)
    vlm = tmp_path / "train.vlm"
    sp("verbalize", "apply", verbalizer, lm, "-o", vlm)
    lines = {line.split("\t")[0]: line.split("\t") for line in vlm.read_text().splitlines()}
    assert lines["a"][2:] == ["1 1 1 1", "u 30 -30 5"] and lines["b"][2:] == ["2 3 4", "10 u -20"]
    binned = tmp_path / "bin"
    sp("binarize", "--units", "10", "--out", binned, f"train={vlm}")
    from speechprompt.databin import read_split
    from speechprompt.prosody import NONE, UNVOICED
    from speechprompt.prompting.backbones import Vocabulary

    symbols = ["<s>", "<pad>", "</s>", "<unk>"] + [str(i) for i in range(10)]
    vocab = Vocabulary(symbols, 0, 2, 1, 3)
    split = read_split(str(binned), "train", vocab.index)
    assert split.ids == ["b", "a"]  # the order of the LM data, ids beside
    for uid, sentence, streams in zip(split.ids, split.sentences, split.streams):
        units = len(lines[uid][1].split("<s>")[0].split())
        dur = [int(d) for d in lines[uid][2].split()]
        f0 = [UNVOICED if v == "u" else int(v) for v in lines[uid][3].split()]
        assert streams.shape == (len(sentence), 2)
        assert streams[:units, 0].tolist() == dur and streams[:units, 1].tolist() == f0
        assert (streams[units:, 0] == 0).all() and (streams[units:, 1] == NONE).all()  # <s>, label, </s>
