"""Reading a data-bin (sp-binarize's directory) for the tools that train and decode on one.

A data-bin holds `dict.txt` and, per split, `SPLIT.bin`/`SPLIT.idx` (fairseq's mmap format) and
`SPLIT.id` (one id a sentence, in order). The mmap format is read here (a header, the sentence sizes and
byte offsets in `.idx`, the tokens in `.bin`: what fairseq's `MMapIndexedDataset` reads), with checks
that turn a damaged directory into one line naming the file (a truncated `.idx` or `.bin`, an empty
split, ids that do not match), never an index error deep in numpy. The tokens are mapped from the data-bin's dictionary into the uLM's vocabulary by symbol
(`to_index`), so a data-bin binarised with GSLM's `dict.txt` and one binarised with `0 1 ... K-1 1`
both read right.
"""
from __future__ import annotations

import dataclasses
import os
import struct
from typing import Callable

import numpy as np
import torch

from .io import BadInput

MAGIC = b"MMIDIDX\x00\x00"  # fairseq's MMapIndexedDataset index header
DTYPES = {1: np.uint8, 2: np.int8, 3: np.int16, 4: np.int32, 5: np.int64, 6: np.float64, 7: np.float64,
          8: np.uint16, 9: np.uint32, 10: np.uint64}  # fairseq's dtype codes


@dataclasses.dataclass
class Split:
    """The sentences of one split as uLM vocabulary indices (1-D LongTensors), and their ids."""
    sentences: list[torch.Tensor]
    ids: list[str]

    def where(self, data: str, split: str, i: int) -> str:
        """How an error names sentence i: `DIR/SPLIT:LINE (id)`."""
        return f"{data}/{split}:{i + 1} ({self.ids[i]})"


def load_dictionary(path: str):
    """A fairseq Dictionary from `dict.txt`; a missing or malformed one is one line naming it."""
    from fairseq.data import Dictionary

    try:
        return Dictionary.load(path)
    except FileNotFoundError:
        raise BadInput("no such file (a data-bin has a dict.txt; see sp-binarize)", path) from None
    except OSError as error:
        raise BadInput(f"cannot read: {error.strerror}", path) from None
    except (ValueError, RuntimeError) as error:  # fairseq: "Incorrect dictionary format, expected '<token> <cnt>'"
        raise BadInput(f"not a dictionary ({str(error).splitlines()[0]})", path) from None


def read_tokens(prefix: str) -> list[np.ndarray]:
    """The token arrays of `PREFIX.bin`, one a sentence, as `PREFIX.idx` lays them out; checked first."""
    index, data = prefix + ".idx", prefix + ".bin"
    for path in (index, data):
        if not os.path.exists(path):
            raise BadInput("no such file (a split is SPLIT.bin and SPLIT.idx; see sp-binarize)", path)
    head = len(MAGIC) + 8 + 1 + 8  # magic, version, dtype code, sentences
    with open(index, "rb") as f:
        header = f.read(head)
    if len(header) < head or header[:len(MAGIC)] != MAGIC:
        raise BadInput("truncated or not a fairseq mmap index (see sp-binarize)", index)
    code = header[len(MAGIC) + 8]
    (count,) = struct.unpack("<Q", header[len(MAGIC) + 9:])
    expected = head + count * (4 + 8)
    if code not in DTYPES or os.path.getsize(index) < expected:
        raise BadInput(f"truncated: {os.path.getsize(index)} bytes, the header announces {expected}", index)
    if count == 0:
        raise BadInput("the split has no sentences", data)
    sizes = np.fromfile(index, dtype=np.int32, count=count, offset=head).astype(np.int64)
    pointers = np.fromfile(index, dtype=np.int64, count=count, offset=head + count * 4)
    dtype = np.dtype(DTYPES[code])
    if os.path.getsize(data) < int(pointers[-1]) + int(sizes[-1]) * dtype.itemsize:
        raise BadInput(f"truncated: {os.path.getsize(data)} bytes, its index needs "
                       f"{int(pointers[-1]) + int(sizes[-1]) * dtype.itemsize}", data)
    tokens = np.fromfile(data, dtype=dtype)
    starts = pointers // dtype.itemsize
    return [tokens[start:start + size] for start, size in zip(starts.tolist(), sizes.tolist())]


def read_split(data: str, split: str, to_index: Callable[[str], int]) -> Split:
    """The sentences of `DATA/SPLIT` with their ids (`SPLIT.id`; positions when there is none), each token
    mapped by its symbol through `to_index` (the uLM's vocabulary)."""
    prefix = os.path.join(data, split)
    arrays = read_tokens(prefix)
    symbols = load_dictionary(os.path.join(data, "dict.txt")).symbols
    largest = max((int(a.max()) for a in arrays if len(a)), default=0)
    if largest >= len(symbols):
        raise BadInput(f"token index {largest} is past the data-bin's dict.txt ({len(symbols)} symbols)", prefix + ".bin")
    remap = torch.tensor([to_index(s) for s in symbols], dtype=torch.long)
    sentences = [remap[torch.from_numpy(a.astype(np.int64))] for a in arrays]
    id_path = prefix + ".id"
    if not os.path.exists(id_path):
        return Split(sentences, [str(i) for i in range(len(arrays))])
    with open(id_path, encoding="utf-8") as f:
        ids = f.read().split("\n")
    if ids and ids[-1] == "":
        ids.pop()
    if len(ids) != len(arrays):
        raise BadInput(f"{len(ids)} ids for {len(arrays)} sentences", id_path)
    return Split(sentences, ids)

