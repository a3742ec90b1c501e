"""The dataset adapters of the SpeechPrompt v2 rows, each on a tiny fixture in its official layout.

Every fixture carries its row's quirks (FLAC, 8/22.05/44.1/48 kHz, stereo, spaces and
parentheses in names, NFD-written UTF-8 folder names, JSON metadata, headerless
protocols, TAB-separated metadata) and each test asserts the exact split sizes and labels.
"""
import hashlib
import json
import pickle
import re
import unicodedata
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import sp

SPLITS = ("train", "valid", "test")


def write_audio(path, seconds=0.1, rate=16000, channels=1, seed=0, pitch=None):
    """Noise in the format the suffix says (WAV int16, FLAC, Ogg Vorbis); with `pitch` (Hz), a tone
    over its middle half as well, so that a class can be told by its pitch (per-utterance CMVN would
    flatten a tone that lasts the whole clip)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    length = int(round(seconds * rate))
    wave = 0.1 * rng.standard_normal((length, channels))
    if pitch:
        wave *= 0.2
        middle = slice(length // 4, 3 * length // 4)
        t = np.arange(middle.stop - middle.start) / rate
        wave[middle] += 0.5 * np.sin(2 * np.pi * pitch * t + rng.uniform(0, 2 * np.pi))[:, None]
    sf.write(path, wave, rate, subtype="PCM_16" if path.suffix == ".wav" else None)
    return path


def google_which_set(name, valid=10.0, test=10.0):
    """Speech Commands' README rule, written out here independently of the adapters."""
    base = re.sub(r"_nohash_.*$", "", name)
    p = (int(hashlib.sha1(base.encode()).hexdigest(), 16) % 2**27) * (100.0 / (2**27 - 1))
    return "valid" if p < valid else "test" if p < valid + test else "train"


def manifest(dataset, root, out, *args, check=True):
    return sp("manifest", dataset, root, "--out-dir", out, "--any-rate", *args, check=check)


def rows(out):
    """split -> [(id, path, offset, num_samples, label)]"""
    return {split: [tuple(line.split("\t"))
                    for line in (Path(out) / f"{split}.tsv").read_text(encoding="utf-8").splitlines()]
            for split in SPLITS}


def sizes(split_rows):
    return tuple(len(split_rows[split]) for split in SPLITS)


def labels(split_rows, split=None):
    return {r[4] for s in ([split] if split else SPLITS) for r in split_rows[s]}


def split_of_ids(split_rows):
    return {r[0]: split for split in SPLITS for r in split_rows[split]}


def assert_one_error(result, *fragments):
    assert result.returncode == 1, result.stderr
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and errors[0].startswith("sp-manifest: error: "), result.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    assert "Traceback" not in result.stderr


# ------------------------------------------------------------------- GRABO
GRABO_COMMANDS = ["recording1", "recording2", "recording36"]


def grabo(root, speakers=("pp2", "pp10"), commands=GRABO_COMMANDS, seconds=0.1, pitches=None):
    """Seven takes of each command by each speaker; `pitches` maps a command to its tone (Hz)."""
    for s, speaker in enumerate(speakers):
        for command in commands:
            for k in [3, 1, 7, 5, 2, 6, 4]:  # written out of order: the split follows the sorted names
                write_audio(root / "speakers" / speaker / "spchdatadir" / command / f"utt{k}.wav",
                            seconds=seconds, seed=k + s, pitch=(pitches or {}).get(command))
    return root


def test_grabo_first_two_train_next_four_valid_rest_test(tmp_path):
    root = grabo(tmp_path / "grabo")
    out = tmp_path / "m"
    manifest("grabo", root, out)
    got = rows(out)
    assert sizes(got) == (12, 24, 6)
    assert labels(got) == {"recording1", "recording2", "recording36"}
    assert {r[0] for r in got["train"]} == {f"{s}/{c}/utt{k}" for s in ["pp2", "pp10"]
                                            for c in ["recording1", "recording2", "recording36"] for k in [1, 2]}
    assert {r[0].rsplit("/", 1)[1] for r in got["test"]} == {"utt7"}
    assert all(r[4] == r[0].split("/")[1] for split in SPLITS for r in got[split])


def test_grabo_unknown_command_folder(tmp_path):
    root = tmp_path / "grabo"
    write_audio(root / "speakers" / "pp2" / "spchdatadir" / "recording1" / "a.wav")
    write_audio(root / "speakers" / "pp2" / "spchdatadir" / "recording37" / "a.wav")
    result = manifest("grabo", root, tmp_path / "m", check=False)
    assert_one_error(result, "recording37", "unknown command folder")
    skipped = manifest("grabo", root, tmp_path / "m", "--skip-bad")
    assert "skipped 1 bad files" in skipped.stderr
    assert sizes(rows(tmp_path / "m")) == (1, 0, 0)


# ------------------------------------------------------------------ LT_SCR
LT_WORDS = ["ne", "į_viršų", "ačiū", "namo", "vienas"]  # the last two are not commands
LT_SPEAKERS = [f"{k:08x}" for k in range(0, 400, 37)]


def test_lt_speech_commands_utf8_labels_unknown_silence_and_hash_split(tmp_path):
    root = tmp_path / "dataset"
    expected = {split: set() for split in SPLITS}
    for w, word in enumerate(LT_WORDS):
        folder = unicodedata.normalize("NFD", word)  # as some file systems hand names back
        for speaker in LT_SPEAKERS:
            name = f"{speaker}_nohash_{w % 2}.wav"
            write_audio(root / folder / name, seconds=0.1)
            label = word if word in ("ne", "į_viršų", "ačiū") else "_unknown_"
            expected[google_which_set(name)].add((f"{word}/{speaker}_nohash_{w % 2}", label))
    write_audio(root / "_background_noise_" / "white noise.wav", seconds=3.2)  # 3 whole seconds
    for k, split in enumerate(["train", "valid", "test"]):
        expected[split].add((f"_silence_/white_noise_{k:04d}", "_silence_"))
    out = tmp_path / "m"
    manifest("lt_speech_commands", tmp_path, out)  # the folder holding `dataset` works too
    got = rows(out)
    for split in SPLITS:
        assert {(r[0], r[4]) for r in got[split]} == expected[split], split
    assert labels(got) == {"ne", "į_viršų", "ačiū", "_unknown_", "_silence_"}
    raw = (out / "train.tsv").read_bytes() + (out / "test.tsv").read_bytes() + (out / "valid.tsv").read_bytes()
    assert "į_viršų".encode("utf-8") in raw  # NFC UTF-8, not the NFD of the folder name
    silence = [r for split in SPLITS for r in got[split] if r[4] == "_silence_"]
    assert sorted((r[2], r[3]) for r in silence) == [("0", "16000"), ("16000", "16000"), ("32000", "16000")]


# ------------------------------------------------------------------ AR_SCR
def test_ar_speech_commands_prefix_labels_8k_and_48k(tmp_path):
    root = tmp_path / "AR_ SpeechCommands_Database"
    files = {"Words/A_Add1.wav": ("add", 48000), "Words/B_Back2.wav": ("back", 48000),
             "Words/E_Confirm3.wav": ("confirm", 48000), "Words/F_Continue4.wav": ("continue", 48000),
             "Numbers/0_1.wav": ("zero", 8000), "Numbers/9_12.wav": ("nine", 8000)}
    files.update({f"Numbers/5_{k}.wav": ("five", 8000) for k in range(20)})
    for relative, (_, rate) in files.items():
        write_audio(root / relative, rate=rate)
    out = tmp_path / "m"
    manifest("ar_speech_commands", tmp_path, out, "--valid-percent", 8, "--test-percent", 23)
    got = rows(out)
    for split in SPLITS:
        assert {(r[0], r[4]) for r in got[split]} == {
            (relative[:-4], label) for relative, (label, _) in files.items()
            if google_which_set(Path(relative).name, 8, 23) == split}
    assert sum(sizes(got)) == len(files)
    rates = {r[0]: sf.info(r[1]).samplerate for split in SPLITS for r in got[split]}
    assert rates["Words/A_Add1"] == 48000 and rates["Numbers/0_1"] == 8000


def test_ar_speech_commands_unknown_prefix(tmp_path):
    root = tmp_path / "AR_ SpeechCommands_Database"
    write_audio(root / "Words" / "A_Add1.wav")
    write_audio(root / "Words" / "X_Other1.wav")
    assert_one_error(manifest("ar_speech_commands", root, tmp_path / "m", check=False),
                     "X_Other1.wav", "unknown command prefix 'X'")


# ------------------------------------------------------------------ DM_SCR
def test_dm_speech_commands_spaces_parentheses_and_dropped_classes(tmp_path):
    root = tmp_path / "dysarthria_zh_command"
    expected = {split: set() for split in SPLITS}
    for speaker in ["D_SPK1", "D_SPK2"]:
        for command in ["01", "02", "10", "13", "19"]:
            for k in range(1, 9):
                name = f"{speaker}_c{int(command)} ({k}).wav"
                path = write_audio(root / speaker / command / name, rate=44100, seed=k)
                if command in ("01", "02"):
                    expected[google_which_set(name, 16, 20)].add(
                        (f"{speaker}/{command}/{speaker}_c{int(command)}_({k})", str(path), command))
    out = tmp_path / "m"
    manifest("dm_speech_commands", root, out, "--valid-percent", 16, "--test-percent", 20)
    got = rows(out)
    for split in SPLITS:
        assert {(r[0], r[1], r[4]) for r in got[split]} == expected[split], split
    assert sum(sizes(got)) == 2 * 2 * 8 and labels(got) == {"01", "02"}
    assert all(" " not in r[0] for split in SPLITS for r in got[split])  # ids stay one token


def test_dm_speech_commands_ids_that_collide_after_whitespace_is_replaced(tmp_path):
    root = tmp_path / "dm"
    write_audio(root / "D_SPK1" / "01" / "a (1).wav")
    write_audio(root / "D_SPK1" / "01" / "a_(1).wav")
    result = manifest("dm_speech_commands", root, tmp_path / "m", check=False)
    assert_one_error(result, "duplicate id 'D_SPK1/01/a_(1)'")


# --------------------------------------------------------------------- LID
def test_voxforge_speaker_disjoint_split_per_language(tmp_path):
    root = tmp_path / "voxforge"
    for language in ["de", "it"]:
        sessions = [f"user{k}-20100101-{k:03d}" for k in range(8)] + [f"user0-20110101-x{language}"]
        sessions += [f"anonymous-2009010{k}-a{k}" for k in range(4)]  # four speakers, not one
        for session in sessions:
            for n in range(2):
                folder = "flac" if session.endswith("-003") else "wav"
                write_audio(root / language / session / folder / f"{language}{n}.{folder}", rate=48000 if n else 16000)
            (root / language / session / "etc").mkdir()
            (root / language / session / "etc" / "PROMPTS").write_text("prompts\n")
    out = tmp_path / "m"
    manifest("voxforge", root, out)
    got = rows(out)
    # per language 12 speakers: test round(2.4) = 2, valid round(1.2) = 1, train 9; user0 has 2 sessions
    for language in ["de", "it"]:
        speakers = {split: {r[0].split("/")[1] for r in got[split] if r[4] == language} for split in SPLITS}
        count = {split: len({s if s.startswith("anonymous") else s.split("-")[0] for s in speakers[split]})
                 for split in SPLITS}
        assert count == {"train": 9, "valid": 1, "test": 2}, count
        utterances = {split: sum(1 for r in got[split] if r[4] == language) for split in SPLITS}
        user0 = next(split for split in SPLITS if any(s.startswith("user0-") for s in speakers[split]))
        assert utterances[user0] == 2 * (count[user0] + 1)  # both of user0's sessions, in one split
        assert sum(utterances.values()) == 13 * 2
    assert labels(got) == {"de", "it"}
    again = tmp_path / "m2"
    manifest("voxforge", root, again)
    assert rows(again) == got  # seeded: the same split every time
    other = tmp_path / "m3"
    manifest("voxforge", root, other, "--seed", 2)
    assert split_of_ids(rows(other)) != split_of_ids(got)


# --------------------------------------------------------------------- FSD
ASVSPOOF_LINES = {"train.trn": [("LA_0079", "LA_T_1138215", "-", "-", "bonafide"),
                                 ("LA_0079", "LA_T_1271820", "-", "A01", "spoof"),
                                 ("LA_0080", "LA_T_1272637", "-", "A06", "spoof")],
                   "dev.trl": [("LA_0069", "LA_D_1047731", "-", "-", "bonafide"),
                               ("LA_0070", "LA_D_1105538", "-", "A05", "spoof")],
                   "eval.trl": [("LA_0039", "LA_E_2834763", "-", "A11", "spoof"),
                                ("LA_0014", "LA_E_8877452", "-", "-", "bonafide")]}


def asvspoof(root, lines=ASVSPOOF_LINES, seconds=0.1, pitches=None):
    """The LA folder: headerless protocols of `lines` (protocol suffix -> records), FLAC audio;
    `pitches` maps a key (bonafide, spoof) to its tone (Hz)."""
    la = root / "LA"
    for suffix, records in lines.items():
        part = {"train.trn": "train", "dev.trl": "dev", "eval.trl": "eval"}[suffix]
        protocol = la / "ASVspoof2019_LA_cm_protocols" / f"ASVspoof2019.LA.cm.{suffix}.txt"
        protocol.parent.mkdir(parents=True, exist_ok=True)
        protocol.write_text("".join(" ".join(record) + "\n" for record in records))
        for k, record in enumerate(records):
            write_audio(la / f"ASVspoof2019_LA_{part}" / "flac" / f"{record[1]}.flac", seconds=seconds, seed=k,
                        pitch=(pitches or {}).get(record[4]))
    return la


def test_asvspoof2019_protocols_flac_and_keys(tmp_path):
    la = asvspoof(tmp_path)
    out = tmp_path / "m"
    manifest("asvspoof2019", tmp_path, out)
    got = rows(out)
    assert sizes(got) == (3, 2, 2)
    assert [(r[0], r[4]) for r in got["train"]] == [("LA_T_1138215", "bonafide"), ("LA_T_1271820", "spoof"),
                                                    ("LA_T_1272637", "spoof")]
    assert [(r[0], r[4]) for r in got["test"]] == [("LA_E_2834763", "spoof"), ("LA_E_8877452", "bonafide")]
    assert got["valid"][0][1] == str(la / "ASVspoof2019_LA_dev" / "flac" / "LA_D_1047731.flac")
    assert sf.info(got["valid"][0][1]).format == "FLAC"


def test_asvspoof2019_missing_protocol_file(tmp_path):
    la = asvspoof(tmp_path)
    protocol = la / "ASVspoof2019_LA_cm_protocols" / "ASVspoof2019.LA.cm.dev.trl.txt"
    protocol.unlink()
    result = manifest("asvspoof2019", la, tmp_path / "m", check=False)
    assert_one_error(result, "protocol file not found", str(protocol))
    assert not (tmp_path / "m").exists()


def test_asvspoof2019_bad_lines_name_file_and_line_or_are_counted(tmp_path):
    la = asvspoof(tmp_path)
    protocol = la / "ASVspoof2019_LA_cm_protocols" / "ASVspoof2019.LA.cm.train.trn.txt"
    with open(protocol, "a") as f:
        f.write("LA_0081 LA_T_9999999 - A02 spoof\n")  # line 4: no such audio
        f.write("LA_0081 LA_T_1272637 - A02 fake\n")   # line 5: unknown key
    (la / "ASVspoof2019_LA_cm_protocols" / "keep").write_text("")
    result = manifest("asvspoof2019", la, tmp_path / "m", check=False)
    assert_one_error(result, f"{protocol}:5:", "unknown key 'fake'")
    lines = protocol.read_text().splitlines()
    protocol.write_text("\n".join(lines[:4]) + "\n")
    result = manifest("asvspoof2019", la, tmp_path / "m", check=False)
    assert_one_error(result, f"{protocol}:4:", "LA_T_9999999.flac", "audio file not found")
    protocol.write_text("\n".join(lines) + "\n")
    skipped = manifest("asvspoof2019", la, tmp_path / "m", "--skip-bad")
    assert "skipped 2 bad files" in skipped.stderr
    assert sizes(rows(tmp_path / "m")) == (3, 2, 2)


# ---------------------------------------------------------------------- ER
def iemocap(root, unknown=False):
    """Session 1: 3 kept utterances; Sessions 2-5: 4 kept each; plus fru/xxx left out."""
    emotions = {1: ["neu", "exc", "sad", "fru"], 2: ["ang", "hap", "neu", "xxx", "exc"],
                3: ["sad", "sad", "neu", "hap"], 4: ["exc", "ang", "dis", "ang", "neu"],
                5: ["hap", "neu", "sad", "oth", "ang"]}
    if unknown:
        emotions[3][1] = "joy"
    kept = {}
    for session, labels_ in emotions.items():
        dialog = f"Ses0{session}F_impro0{session}"
        lines = ["% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]", ""]
        for k, emotion in enumerate(labels_):
            utterance = f"{dialog}_{'FM'[k % 2]}{k:03d}"
            lines += [f"[{1.5 * k:.4f} - {1.5 * k + 1.2:.4f}]\t{utterance}\t{emotion}\t[2.5000, 3.0000, 2.5000]",
                      f"C-E2:\tNeutral;\t()", f"A-E3:\tval 3; act 2; dom  2;\t()", ""]
            write_audio(root / f"Session{session}" / "sentences" / "wav" / dialog / f"{utterance}.wav", seed=k)
            if emotion in ("neu", "hap", "exc", "ang", "sad"):
                kept[utterance] = ("hap" if emotion == "exc" else emotion, session)
        table = root / f"Session{session}" / "dialog" / "EmoEvaluation" / f"{dialog}.txt"
        table.parent.mkdir(parents=True, exist_ok=True)
        table.write_text("\n".join(lines) + "\n")
        (table.parent / "Categorical").mkdir()
        (table.parent / f"._{dialog}.txt").write_bytes(b"\x00\x05\x16\x07 resource fork")
    return kept


def test_iemocap_session1_test_exc_merged_into_hap_others_left_out(tmp_path):
    kept = iemocap(tmp_path)
    out = tmp_path / "m"
    manifest("iemocap", tmp_path, out)
    got = rows(out)
    assert sizes(got) == (13, 3, 3)  # Sessions 2-5: 16 kept, valid round(3.2) = 3
    assert {(r[0], r[4]) for r in got["test"]} == {(u, label) for u, (label, s) in kept.items() if s == 1}
    assert {(r[0], r[4]) for split in ("train", "valid") for r in got[split]} == {
        (u, label) for u, (label, s) in kept.items() if s != 1}
    assert labels(got) == {"neu", "hap", "ang", "sad"}
    assert got["test"][0][1].endswith("Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_F000.wav")


def test_iemocap_unknown_emotion_names_file_and_line(tmp_path):
    iemocap(tmp_path, unknown=True)
    table = tmp_path / "Session3" / "dialog" / "EmoEvaluation" / "Ses03F_impro03.txt"
    assert_one_error(manifest("iemocap", tmp_path, tmp_path / "m", check=False), f"{table}:7:", "unknown emotion 'joy'")


def test_iemocap_missing_session(tmp_path):
    iemocap(tmp_path)
    for path in sorted((tmp_path / "Session4").rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    assert_one_error(manifest("iemocap", tmp_path, tmp_path / "m", check=False), "Session4")


# --------------------------------------------------------------------- ACC
def test_accentdb_seeded_split_per_accent_mono_stereo_rates(tmp_path):
    data = tmp_path / "accentdb_extended" / "data"
    for accent, rate, channels in [("american", 48000, 2), ("indian", 22050, 1), ("welsh", 48000, 1)]:
        for speaker in ["speaker_01", "speaker_02"]:
            for n in range(5):
                write_audio(data / accent / speaker / f"{accent}_s{speaker[-2:]}_{n:03d}.wav",
                            rate=rate, channels=channels, seed=n)
    out = tmp_path / "m"
    manifest("accentdb", tmp_path / "accentdb_extended", out)
    got = rows(out)
    assert sizes(got) == (18, 6, 6)  # 10 per accent: test round(2.0), valid round(1.6), train 6
    for accent in ["american", "indian", "welsh"]:
        assert [sum(r[4] == accent for r in got[split]) for split in SPLITS] == [6, 2, 2]
    stereo = next(r for r in got["train"] if r[4] == "american")
    assert sf.info(stereo[1]).channels == 2 and stereo[3] == "4800"


# ---------------------------------------------------------------------- SD
def mustard(root, count=20, protocol=2, test_size=4, seconds=0.1, pitches=None):
    """MUStARD's JSON, five folds of `test_size` test indices each, 48 kHz stereo WAVs;
    `pitches` maps the sarcasm value (True, False) to a tone (Hz)."""
    data = {}
    for k in range(count):
        uid = f"{k // 5 + 1}_{k * 7}"
        data[uid] = {"utterance": f"line {k}", "speaker": "CHANDLER", "context": ["a", "b"],
                     "context_speakers": ["ROSS", "JOEY"], "show": "FRIENDS", "sarcasm": k % 3 == 0}
        write_audio(root / "utterances_final_wav" / f"{uid}.wav", seconds=seconds, rate=48000, channels=2, seed=k,
                    pitch=(pitches or {}).get(k % 3 == 0))
    (root / "data").mkdir(parents=True, exist_ok=True)
    (root / "data" / "sarcasm_data.json").write_text(json.dumps(data, indent=4))
    rng = np.random.default_rng(0)
    folds = []
    for _ in range(5):
        order = rng.permutation(count)
        folds.append((np.sort(order[test_size:]), np.sort(order[:test_size])))
    (root / "data" / "split_indices.p").write_bytes(pickle.dumps(folds, protocol=protocol))
    return list(data.items()), folds


@pytest.mark.parametrize("protocol", [2, 4])
def test_mustard_fold0_seeded_valid_and_named_labels(tmp_path, protocol):
    items, folds = mustard(tmp_path, protocol=protocol)
    out = tmp_path / "m"
    manifest("mustard", tmp_path, out)
    got = rows(out)
    assert sizes(got) == (15, 1, 4)  # 16 train+valid: valid 10% rounded down
    name = {True: "sarcastic", False: "not_sarcastic"}
    assert {(r[0], r[4]) for r in got["test"]} == {(items[i][0], name[items[i][1]["sarcasm"]]) for i in folds[0][1]}
    assert {r[0] for split in ("train", "valid") for r in got[split]} == {items[i][0] for i in folds[0][0]}
    assert labels(got) == {"sarcastic", "not_sarcastic"}


def test_mustard_refuses_a_pickle_that_is_not_indices(tmp_path):
    mustard(tmp_path)

    class Exploit:
        def __reduce__(self):
            import os
            return (os.system, ("touch pwned",))

    (tmp_path / "data" / "split_indices.p").write_bytes(pickle.dumps([(Exploit(), [1])]))
    result = manifest("mustard", tmp_path, tmp_path / "m", check=False)
    assert_one_error(result, "split_indices.p", "refusing", "system")
    assert not (Path.cwd() / "pwned").exists() and not (tmp_path / "pwned").exists()


def test_mustard_bad_sarcasm_value_names_its_line(tmp_path):
    items, folds = mustard(tmp_path)
    data = dict(items)
    bad = items[folds[0][1][0]][0]
    data[bad]["sarcasm"] = "maybe"
    (tmp_path / "data" / "sarcasm_data.json").write_text(json.dumps(data, indent=4))
    line = 1 + json.dumps(data, indent=4).splitlines().index(f'    "{bad}": {{')
    result = manifest("mustard", tmp_path, tmp_path / "m", check=False)
    assert_one_error(result, f"sarcasm_data.json:{line}:", "unknown sarcasm value 'maybe'")


# --------------------------------------------------------------- GID, SID
def voxceleb(root):
    meta = ["VoxCeleb1 ID\tVGGFace1 ID\tGender\tNationality\tSet",
            "id10001\tA.J._Buckley\tm\tIreland\tdev", "id10002\tAJ_Cook\tf\tCanada\tdev",
            "id10003\tAaron_Tveit \tm\tUSA\ttest"]  # a stray space as in the real file
    (root / "vox1_meta.csv").parent.mkdir(parents=True, exist_ok=True)
    (root / "vox1_meta.csv").write_text("\n".join(meta) + "\n")
    split = [("1", "id10001/1zcIwhmdeo4/00001.wav"), ("1", "id10001/1zcIwhmdeo4/00002.wav"),
             ("1", "id10002/7w0IBEWc9Qw/00001.wav"), ("1", "id10003/5ablueV_1tw/00001.wav"),
             ("2", "id10002/7w0IBEWc9Qw/00002.wav"), ("3", "id10001/Y8hIVOBuels/00001.wav"),
             ("3", "id10003/5ablueV_1tw/00002.wav")]
    (root / "iden_split.txt").write_text("".join(f"{s} {p}\n" for s, p in split))
    for k, (_, relative) in enumerate(split):
        write_audio(root / "wav" / relative, seed=k)
    return split


def test_voxceleb1_gender_and_speaker_share_iden_split(tmp_path):
    split = voxceleb(tmp_path)
    gender, speaker = tmp_path / "gid", tmp_path / "sid"
    manifest("voxceleb1_gender", tmp_path, gender)
    manifest("voxceleb1_speaker", tmp_path, speaker)
    gid, sid = rows(gender), rows(speaker)
    assert sizes(gid) == sizes(sid) == (4, 1, 2)
    for s in SPLITS:
        assert [r[0] for r in gid[s]] == [r[0] for r in sid[s]]
    assert {(r[0], r[4]) for r in gid["test"]} == {("id10001/Y8hIVOBuels/00001", "male"),
                                                   ("id10003/5ablueV_1tw/00002", "male")}
    assert [r[4] for r in gid["valid"]] == ["female"] and labels(gid) == {"female", "male"}
    assert labels(sid) == {"id10001", "id10002", "id10003"}
    assert all(r[4] == r[0].split("/")[0] for s in SPLITS for r in sid[s])
    assert len(split) == sum(sizes(sid))


def test_voxceleb1_speaker_missing_from_metadata_and_missing_audio(tmp_path):
    voxceleb(tmp_path)
    with open(tmp_path / "iden_split.txt", "a") as f:
        f.write("1 id10009/abc/00001.wav\n")
    write_audio(tmp_path / "wav" / "id10009" / "abc" / "00001.wav")
    result = manifest("voxceleb1_gender", tmp_path, tmp_path / "m", check=False)
    assert_one_error(result, f"{tmp_path / 'iden_split.txt'}:8:", "'id10009' not in vox1_meta.csv")
    (tmp_path / "wav" / "id10001" / "1zcIwhmdeo4" / "00002.wav").unlink()
    result = manifest("voxceleb1_speaker", tmp_path, tmp_path / "m", check=False)
    assert_one_error(result, f"{tmp_path / 'iden_split.txt'}:2:", "audio file not found")
    (tmp_path / "vox1_meta.csv").unlink()
    assert_one_error(manifest("voxceleb1_gender", tmp_path, tmp_path / "m", check=False),
                     "VoxCeleb1 metadata not found", "vox1_meta.csv")


# --------------------------------------------------------------------- VAD
def nemo(root):
    """Speech: one 1 s 16 kHz clip per split; background: a 2 s 44.1 kHz file cut in 0.63 s windows."""
    speech = {split: write_audio(root / "google_speech" / "yes" / f"{split}_nohash_0.wav", seconds=1.0)
              for split in SPLITS}
    noise = write_audio(root / "freesound" / "background" / "rain (1).wav", seconds=2.0, rate=44100, channels=2)
    (root / "manifests").mkdir(parents=True)
    for split, part in [("train", "training"), ("valid", "validation"), ("test", "testing")]:
        windows = {"train": [0.0, 0.63], "valid": [1.26], "test": [1.37]}[split]  # 1.37 + 0.63 = 2.0: the end
        speech_line = {"audio_filepath": str(speech[split]), "duration": 0.63, "label": "speech", "text": "_",
                       "offset": 0.2}
        background = [{"audio_filepath": "../freesound/background/rain (1).wav", "duration": 0.63,
                       "label": "background", "text": "_", "offset": offset} for offset in windows]
        (root / "manifests" / f"balanced_speech_{part}_manifest.json").write_text(json.dumps(speech_line) + "\n")
        (root / "manifests" / f"balanced_background_{part}_manifest.json").write_text(
            "".join(json.dumps(line) + "\n" for line in background))
    return noise


def test_nemo_vad_windows_become_sample_segments_at_each_files_rate(tmp_path):
    noise = nemo(tmp_path)
    out = tmp_path / "m"
    manifest("nemo_vad", tmp_path, out)
    got = rows(out)
    assert sizes(got) == (3, 2, 2)
    assert [r[0] for r in got["train"]] == ["freesound/background/rain_(1)@0", "freesound/background/rain_(1)@27783",
                                            "google_speech/yes/train_nohash_0@3200"]
    by_id = {r[0]: r for s in SPLITS for r in got[s]}
    assert by_id["google_speech/yes/train_nohash_0@3200"][2:] == ("3200", "10080", "speech")
    assert by_id["freesound/background/rain_(1)@27783"][1:] == (str(noise), "27783", "27783", "background")
    end = by_id["freesound/background/rain_(1)@60417"]  # int(1.37 * 44100); trimmed to the file's end
    assert int(end[2]) + int(end[3]) == 88200
    assert labels(got) == {"speech", "background"}


def test_nemo_vad_bad_json_line_and_unknown_label(tmp_path):
    nemo(tmp_path)
    manifest_file = tmp_path / "manifests" / "balanced_background_validation_manifest.json"
    good = manifest_file.read_text()
    manifest_file.write_text(good + '{"audio_filepath": "x.wav", "duration": 0.63, "label": "music", "offset": 0}\n')
    assert_one_error(manifest("nemo_vad", tmp_path, tmp_path / "m", check=False),
                     f"{manifest_file}:2:", "unknown label 'music'")
    manifest_file.write_text(good + "{not json\n")
    assert_one_error(manifest("nemo_vad", tmp_path, tmp_path / "m", check=False), f"{manifest_file}:2:", "invalid JSON")
    skipped = manifest("nemo_vad", tmp_path, tmp_path / "m", "--skip-bad")
    assert "skipped 1 bad files" in skipped.stderr and sizes(rows(tmp_path / "m")) == (3, 2, 2)
    manifest_file.unlink()
    assert_one_error(manifest("nemo_vad", tmp_path, tmp_path / "m", check=False), "NeMo manifest not found")


# --------------------------------------------------------------------- AUC
def test_esc50_fold1_test_seeded_valid(tmp_path):
    lines = ["filename,fold,target,category,esc10,src_file,take"]
    categories = {0: "dog", 10: "rain", 19: "thunderstorm"}
    for k in range(13):
        fold, target = k % 5 + 1, [0, 10, 19][k % 3]
        name = f"{fold}-{100000 + k}-A-{target}.wav"
        lines.append(f"{name},{fold},{target},{categories[target]},{target == 0},{100000 + k},A")
        write_audio(tmp_path / "audio" / name, rate=44100, seed=k)
    (tmp_path / "meta").mkdir()
    (tmp_path / "meta" / "esc50.csv").write_text("\n".join(lines) + "\n")
    out = tmp_path / "m"
    manifest("esc50", tmp_path, out)
    got = rows(out)
    assert sizes(got) == (8, 2, 3)  # fold 1: k = 0, 5, 10; the other 10: valid 20%
    assert {r[0] for r in got["test"]} == {"1-100000-A-0", "1-100005-A-19", "1-100010-A-10"}
    assert labels(got) == {"dog", "rain", "thunderstorm"}
    assert all(r[4] == categories[int(r[0].rsplit("-", 1)[1])] for s in SPLITS for r in got[s])
    assert not {r[0] for r in got["valid"]} & {r[0] for r in got["train"]}


# ----------------------------------------------------------------- FOLDERS
def test_folders_names_with_spaces_parentheses_and_accents_vorbis(tmp_path):
    root = tmp_path / "langs"
    write_audio(root / "train" / unicodedata.normalize("NFD", "français") / "é (1).ogg", rate=44100, channels=2)
    write_audio(root / "train" / "en gb" / "a b.ogg", rate=22050)
    write_audio(root / "test" / "en gb" / "c.wav", rate=8000)
    out = tmp_path / "m"
    manifest("folders", root, out)
    got = rows(out)
    assert [(r[0], r[4]) for r in got["train"]] == [("train/en_gb/a_b", "en_gb"), ("train/français/é_(1)", "français")]
    assert got["train"][1][1] == str(root / "train" / unicodedata.normalize("NFD", "français") / "é (1).ogg")
    assert sf.info(got["train"][1][1]).format == "OGG" and got["train"][1][3] == "4410"
    assert [(r[0], r[4]) for r in got["test"]] == [("test/en_gb/c", "en_gb")]


# ---------------------------------------------------------------- task files
ROWS = {"GRABO": ("grabo", "--any-rate", 4), "LT_SCR": ("lt_speech_commands", "--any-rate", 1),
        "AR_SCR": ("ar_speech_commands", "--any-rate --valid-percent 8 --test-percent 23", 1),
        "DM_SCR": ("dm_speech_commands", "--any-rate --valid-percent 16 --test-percent 20", 1),
        "LID": ("voxforge", "--any-rate", 16), "FSD": ("asvspoof2019", "--any-rate", 32),
        "ER": ("iemocap", "--any-rate", 32), "ACC": ("accentdb", "--any-rate", 32),
        "SD": ("mustard", "--any-rate", 32), "GID": ("voxceleb1_gender", "--any-rate", 32),
        "SID": ("voxceleb1_speaker", "--any-rate", 32), "VAD": ("nemo_vad", "--any-rate", 64),
        "AUC": ("esc50", "--any-rate", 4), "FOLDERS": ("folders", "--any-rate", 32)}
METRICS = {"FSD": ("eer", "spoof"), "SD": ("f1", "sarcastic"), "GID": ("macro_f1", ""), "VAD": ("accuracy", "speech")}


def make(*args):
    import subprocess

    from conftest import ROOT
    return subprocess.run(["make", "--no-print-directory", *map(str, args)], cwd=ROOT, capture_output=True, text=True)


def tool_line(out, tool):
    return next(line for line in out.splitlines() if line.startswith(f".venv/bin/{tool} "))


@pytest.mark.parametrize("task", sorted(ROWS))
def test_task_file_dry_run_shows_adapter_options_and_batch_size(tmp_path, task):
    dataset, options, batch_size = ROWS[task]
    data = tmp_path / "data"
    data.mkdir()
    result = make("-n", f"TASK={task}", f"DATA={data}", f"EXP={tmp_path}/exp", "predict")
    assert result.returncode == 0, result.stderr
    assert tool_line(result.stdout, "sp-manifest") == (
        f".venv/bin/sp-manifest {dataset} {data} {options} --out-dir {tmp_path}/exp/manifest")
    assert f" --batch-size {batch_size} " in tool_line(result.stdout, "sp-train")
    printed = make("-s", f"TASK={task}", f"DATA={data}", f"EXP={tmp_path}/exp",
                   "--eval=show: ; @echo $(METRIC)/$(POSITIVE)", "show")
    assert printed.stdout.strip() == "/".join(METRICS.get(task, ("accuracy", "")))


def test_task_files_hold_only_what_differs_from_the_recipe_defaults(tmp_path):
    from conftest import ROOT
    defaults = ["SYNTH_CORPUS :=\n", "METRIC := accuracy", "MANIFEST_OPTS ?= --any-rate\n", "BATCH_SIZE ?= 32",
                "DATASETS.md"]
    for task in sorted((ROOT / "tasks").glob("*.mk")):
        text = task.read_text()
        assert not [d for d in defaults if d in text], task
        settings = [line for line in text.splitlines() if line and not line.startswith(("#", " "))]
        assert len(settings) <= 8, task  # data and settings, no logic
    # the defaults reach the rows that leave them out: SCR and IC decode audio at any rate too
    for task in ["SCR", "IC"]:
        data = tmp_path / "data"
        data.mkdir(exist_ok=True)
        out = make("-n", f"TASK={task}", f"DATA={data}", f"EXP={tmp_path}/exp", "predict").stdout
        assert f" {data} --any-rate --out-dir " in tool_line(out, "sp-manifest")
        assert " --batch-size 32 " in tool_line(out, "sp-train")


@pytest.mark.parametrize("task", sorted(ROWS) + ["TABLE"])
def test_task_file_from_units_skips_the_audio_stages(tmp_path, task):
    units = tmp_path / "units"
    units.mkdir()
    for split in SPLITS:
        (units / f"{split}.txt").write_text(f"{split}-a|1 2 3|x\n{split}-b|3 2 1|y\n")
    result = make("-n", f"TASK={task}", f"UNITS={units}", f"EXP={tmp_path}/exp", "predict")
    assert result.returncode == 0, result.stderr
    assert "sp-manifest" not in result.stdout and "sp-quantize" not in result.stdout
    assert f"sp-dedup --skip-bad {units}/train.txt" in result.stdout and "sp-train" in result.stdout


def test_table_task_takes_the_table_options_as_make_variables(tmp_path):
    table = tmp_path / "clips.csv"
    table.write_text("file,intent,place\n")
    result = make("-n", "TASK=TABLE", f"DATA={table}", f"EXP={tmp_path}/exp", "TABLE_PATH_COLUMN=file",
                  "TABLE_LABEL_COLUMNS=intent place", "TABLE_SPLIT_COLUMN=fold", "predict")
    assert result.returncode == 0, result.stderr
    assert tool_line(result.stdout, "sp-manifest") == (
        f".venv/bin/sp-manifest table {table} --any-rate --path-column file --label-column intent "
        f"--label-column place --split-column fold --out-dir {tmp_path}/exp/manifest")
    default = make("-n", "TASK=TABLE", f"DATA={table}", f"EXP={tmp_path}/exp", "predict")
    assert f"sp-manifest table {table} --any-rate --path-column path --label-column label --out-dir" in default.stdout


def test_changing_the_adapter_options_reruns_the_manifests(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    exp = tmp_path / "exp"
    base = ["TASK=FOLDERS", f"DATA={data}", f"EXP={exp}"]
    make(*base, "MANIFEST_OPTS=--any-rate", "--eval=noop: ; @:", "noop")  # records the variables
    (exp / "manifest").mkdir(parents=True)
    for split in SPLITS:  # manifests newer than the data and the recorded variables
        (exp / "manifest" / f"{split}.tsv").write_text("")
    first = make("-n", *base, "MANIFEST_OPTS=--any-rate", "predict").stdout
    assert "sp-manifest" not in first and "sp-kmeans" in first
    changed = make("-n", *base, "MANIFEST_OPTS=--any-rate --test-percent 20", "predict").stdout
    assert "sp-manifest folders" in changed and "--test-percent 20" in changed
