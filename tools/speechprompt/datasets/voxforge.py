"""`voxforge`: language ID on Voxforge (SpeechPrompt v2: de en es fr it ru).

ROOT/<lang>/<user>-<date>-<tag>/{wav,flac}/*.{wav,flac}: one folder per
language holding the unpacked speaker archives.  The label is the language
folder's name; every language folder under ROOT is a class.

Split (v2's 1200/300/300 per language cannot be reproduced: it follows the
directory listing and is not speaker-disjoint): speaker-disjoint, per
language.  A speaker is the `<user>` part of a session folder; sessions of
`anonymous` count as one speaker each.  The language's speakers, sorted and
shuffled with the seed (`--seed` and the language), give 20% (rounded) to
test, 10% to valid, the rest to train; then each split keeps at most
1200/300/300 utterances (train/valid/test) per language, chosen by the same
seeded shuffle.  Ids: `<lang>/<session>/<stem>`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from . import (Context, Item, audio_files, cut, make_id, register, require_dir, seeded_order,
               subdirectories)

VALID, TEST = 0.1, 0.2
CAP = {"train": 1200, "valid": 300, "test": 300}


def speaker_of(session: str) -> str:
    user = session.split("-")[0]
    return session if user.lower() == "anonymous" else user


@register("voxforge")
def voxforge(root: Path, ctx: Context) -> Iterator[Item]:
    for language in subdirectories(require_dir(root)):
        files: dict[str, list[Path]] = {}
        for session in subdirectories(language):
            for folder in ("wav", "flac"):
                if (session / folder).is_dir():
                    files.setdefault(speaker_of(session.name), []).extend(audio_files(session / folder))
        split_of = cut(seeded_order(list(files), f"{ctx.seed}/{language.name}"), VALID, TEST)
        for split, cap in CAP.items():
            paths = [path for speaker, found in files.items() if split_of[speaker] == split for path in found]
            ids = {make_id(language.name, path.parent.parent.name, path.stem): path for path in paths}
            for uid in seeded_order(list(ids), f"{ctx.seed}/{language.name}/{split}")[:cap]:
                yield Item(split, uid, ids[uid], language.name)
