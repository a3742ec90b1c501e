"""`speech_commands`: Google Speech Commands v0.01, the 12-class SUPERB/SpeechPrompt set-up.

- ROOT/WORD/*.wav; the 10 command words keep their label, other words become
  `_unknown_`; files named in ROOT/validation_list.txt go to valid, those in
  ROOT/testing_list.txt to test, the rest to train.
- ROOT/_background_noise_/*.wav are cut into 1 s `_silence_` segments (rows
  with an offset, no new files), ids `_silence_/<noise>_<k>`: segment k goes
  to valid when k % 10 == 1, to test when k % 10 == 2, else to train.
- The speaker is the part of a file name before `_nohash_` (sp-synth names its files the same way);
  the `_silence_` segments have none.
- With `--test-dir` (v0.01's separate test set, folders WORD, `_silence_` and
  `_unknown_`), the test split is that directory; the testing_list.txt files
  and the test share of the silence segments are then left out and kept out
  of train.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from ..io import BadInput
from . import Context, Item, audio_files, make_id, nohash_speaker, register, require_dir, subdirectories

COMMANDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
SILENCE, UNKNOWN, NOISE_DIR = "_silence_", "_unknown_", "_background_noise_"


def label_of(word: str) -> str:
    return word if word in COMMANDS or word == SILENCE else UNKNOWN


def read_list(root: Path, name: str) -> dict[str, str]:
    """`word/file.wav` -> `list:line` for each entry of a split list."""
    path = root / name
    if not path.is_file():
        raise BadInput(f"split list not found: {path}")
    entries = {}
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if line.strip():
                entries[line.strip()] = f"{path}:{number}"
    return entries


def check_listed(root: Path, entries: dict[str, str]) -> None:
    for relative, where in entries.items():
        if not (root / relative).is_file():
            raise BadInput(f"listed file not found: {root / relative}", where)


@register("speech_commands")
def speech_commands(root: Path, ctx: Context) -> Iterator[Item]:
    require_dir(root)
    valid, test = read_list(root, "validation_list.txt"), read_list(root, "testing_list.txt")
    check_listed(root, valid)
    check_listed(root, test)
    for word_dir in subdirectories(root):
        if word_dir.name == NOISE_DIR:
            continue
        for path in audio_files(word_dir):
            relative = f"{word_dir.name}/{path.name}"
            split = "valid" if relative in valid else "test" if relative in test else "train"
            if split == "test" and ctx.test_dir:
                continue
            yield Item(split, f"{word_dir.name}/{path.stem}", path, label_of(word_dir.name),
                       where=valid.get(relative) or test.get(relative), speaker=nohash_speaker(path.name))
    yield from silence(root / NOISE_DIR, ctx)
    if ctx.test_dir:
        for word_dir in subdirectories(require_dir(ctx.test_dir, "test-set directory")):
            for path in audio_files(word_dir):
                yield Item("test", f"{word_dir.name}/{path.stem}", path, label_of(word_dir.name),
                           speaker=nohash_speaker(path.name))


def silence(noise_dir: Path, ctx: Context) -> Iterator[Item]:
    """Each noise file cut into 1 s `_silence_` segments; segment k goes to valid if k % 10 == 1, to test if 2."""
    if not noise_dir.is_dir():
        return
    for path in audio_files(noise_dir):
        info = ctx.probe(path, None)
        if info is None:  # skipped under --skip-bad
            continue
        for k in range(info.frames // info.samplerate):
            split = {1: "valid", 2: "test"}.get(k % 10, "train")
            if split == "test" and ctx.test_dir:
                continue
            yield Item(split, make_id(SILENCE, f"{path.stem}_{k:04d}"), path, SILENCE,
                       offset=k * info.samplerate, num_samples=info.samplerate)
