"""Dataset adapters of sp-manifest, chosen by name from a registry.

An adapter turns a dataset directory into `Item`s (split, id, audio path,
label, and optionally a segment of the file).  Adding a dataset is one small
module in this package with one registered function:

    from . import Context, Item, register

    @register("my_dataset")
    def my_dataset(root: Path, ctx: Context) -> Iterator[Item]:
        for path in sorted(root.glob("*/*.wav")):
            yield Item("train", f"{path.parent.name}/{path.stem}", path, path.parent.name)

sp-manifest probes every item's audio, checks rate and channels, ids and
segments, sorts by id and writes one manifest per split; adapters only list.
A bad record (an unknown label, a malformed line) goes to
`ctx.reject(message, "file:line")`: an error, or under --skip-bad a counted
skip after which the adapter leaves the record out.  Items carry `where`, so
a listed file that is missing or unreadable is reported at its record's line.
Ids come from `make_id` (NFC, no whitespace); labels are made NFC by sp-manifest (`normalize_label`), so
every adapter's labels compare alike whatever form the data set spells them in.
An adapter that knows who speaks sets `Item.speaker`
and says in its documentation where the speaker comes from; sp-f0 normalises F0 by it.
Every module of this package is imported on start, so registering is enough.
"""
from __future__ import annotations

import dataclasses
import hashlib
import importlib
import pkgutil
import random
import re
import unicodedata
from pathlib import Path
from typing import Callable, Iterator, Sequence, TypeVar

from ..io import BadInput, Skipper

SPLITS = ("train", "valid", "test")
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")


@dataclasses.dataclass
class Item:
    split: str  # train | valid | test
    id: str
    path: Path
    label: str | None
    offset: int = 0
    num_samples: int | None = None  # None: the whole file
    where: str | None = None  # `file:line` of the record that listed it, if any
    speaker: str | None = None  # where the dataset names it (the manifest's 6th column; sp-f0 normalises by it)


@dataclasses.dataclass
class Context:
    """Options from the command line, and the probe sp-manifest checks audio with."""

    probe: Callable  # probe(path, where) -> soundfile info, or None when skipped (--skip-bad)
    test_dir: Path | None = None
    path_column: str = "path"
    label_columns: tuple[str, ...] = ("label",)
    id_column: str | None = None
    split_column: str | None = None
    valid_percent: float = 10.0
    test_percent: float = 10.0
    seed: int = 1  # of the seeded splits
    skip: Skipper = dataclasses.field(default_factory=lambda: Skipper(False))

    def reject(self, message: str, where: str | None = None) -> None:
        """A bad record: an error, or under --skip-bad a counted skip (the adapter then leaves it out)."""
        with self.skip.guard():
            raise BadInput(message, where)


Adapter = Callable[[Path, Context], Iterator[Item]]
ADAPTERS: dict[str, Adapter] = {}


def register(name: str) -> Callable[[Adapter], Adapter]:
    def add(function: Adapter) -> Adapter:
        ADAPTERS[name] = function
        return function

    return add


# ------------------------------------------------------------ shared helpers
MAX_NUM_WAVS_PER_CLASS = 2**27 - 1  # from the Speech Commands README


def which_set(name: str, valid_percent: float = 10.0, test_percent: float = 10.0) -> str:
    """Google's Speech Commands split rule: a stable hash of the speaker part of a name.

    `name` is a file name like `0a7c2a8d_nohash_0.wav` (the part before `_nohash_`
    is hashed, so all of a speaker's files land in one split) or a bare speaker id.
    """
    base = re.sub(r"_nohash_.*$", "", Path(name).name)
    hashed = int(hashlib.sha1(base.encode("utf-8")).hexdigest(), 16)
    percentage = (hashed % (MAX_NUM_WAVS_PER_CLASS + 1)) * (100.0 / MAX_NUM_WAVS_PER_CLASS)
    if percentage < valid_percent:
        return "valid"
    if percentage < valid_percent + test_percent:
        return "test"
    return "train"


def nohash_speaker(name: str) -> str | None:
    """The speaker of a Speech Commands file name, `<speaker>_nohash_<n>.wav`; None for other names."""
    base, found, _ = Path(name).name.partition("_nohash_")
    return make_id(base) if found and base else None


def slot(value: str) -> str:
    """One label slot: inner whitespace becomes `_` (`change language` -> `change_language`)."""
    return "_".join(value.split())


def make_id(*parts: str) -> str:
    """An utterance id from path-like parts joined by `/`: Unicode NFC, each run of
    whitespace made `_` (`D_SPK1_c2 (4)` -> `D_SPK1_c2_(4)`), so ids stay one TSV field
    and one token of the whitespace-separated tools."""
    return "_".join(unicodedata.normalize("NFC", "/".join(parts)).split())


def nfc(text: str) -> str:
    """Labels and names compared as Unicode NFC (file systems may hand back NFD)."""
    return unicodedata.normalize("NFC", text)


T = TypeVar("T")


def seeded_order(items: Sequence[T], seed: int | str) -> list[T]:
    """`items` sorted, then shuffled by `random.Random(seed)`: the same on every machine."""
    ordered = sorted(items)
    random.Random(seed).shuffle(ordered)
    return ordered


def split_sizes(n: int, valid_fraction: float, test_fraction: float) -> tuple[int, int, int]:
    """(train, valid, test) counts of `n` items, valid and test rounded half up."""
    test = min(n, int(n * test_fraction + 0.5))
    valid = min(n - test, int(n * valid_fraction + 0.5))
    return n - valid - test, valid, test


def cut(ordered: Sequence[T], valid_fraction: float, test_fraction: float) -> dict[T, str]:
    """item -> split: the first of `ordered` go to test, the next to valid, the rest to train."""
    _, valid, test = split_sizes(len(ordered), valid_fraction, test_fraction)
    return {item: "test" if k < test else "valid" if k < test + valid else "train"
            for k, item in enumerate(ordered)}


def require_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise BadInput(f"{what} not found: {path}")
    return path


def audio_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir()
                  if p.suffix.lower() in AUDIO_SUFFIXES and not p.name.startswith("."))


def subdirectories(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.is_dir() and not p.name.startswith("."))


def require_dir(path: Path, what: str = "dataset directory") -> Path:
    if not path.is_dir():
        raise BadInput(f"{what} not found: {path}")
    return path


for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
