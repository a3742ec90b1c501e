"""Audio at the edge: read with soundfile, mix to mono, resample with scipy.

No tool assumes 16 kHz: `load` returns a segment at the rate the caller asks
for, whatever the file's own rate and channel count. A NaN or infinite sample
is refused by `load` (every tool that encodes audio reads it here) and `probe`
(sp-manifest), naming the file and the sample.
"""
from __future__ import annotations

import functools
import os
from math import gcd

import numpy as np
import soundfile as sf

from .io import BadInput, Utterance


def _check_file(path: str, where: str) -> None:
    """libsndfile says "System error." for a missing file and "Format not recognised." for a directory."""
    if os.path.isdir(path):
        raise BadInput(f"audio {path} is a directory, not a file", where)
    if not os.path.exists(path):
        raise BadInput(f"no such audio file {path}", where)


# Sample formats that can hold NaN or infinity (integer PCM, FLAC and the like cannot).
FLOAT_SUBTYPES = ("FLOAT", "DOUBLE")


def probe(path: str, where: str) -> sf._SoundFileInfo:
    """soundfile's header info, or a one-line error for unreadable, empty or non-finite audio.

    A float file is read through once, to find a NaN or an infinity (an encoder would turn it into
    NaN features, k-means into unit 0 for the whole utterance); integer formats cannot hold one."""
    _check_file(path, where)
    try:
        info = sf.info(path)
        if info.frames and info.subtype in FLOAT_SUBTYPES:
            start = 0
            for block in sf.blocks(path, blocksize=1 << 18, dtype="float32", always_2d=True):
                check_finite(block, path, where, start)
                start += len(block)
    except BadInput:
        raise
    except Exception as error:  # soundfile raises RuntimeError/LibsndfileError/OSError
        raise BadInput(f"unreadable audio {path}: {str(error).splitlines()[0]}", where) from None
    if info.frames == 0:
        raise BadInput(f"empty audio {path}", where)
    return info


def check_finite(wave: np.ndarray, path: str, where: str, offset: int = 0) -> None:
    """Refuse a [samples, channels] block with a NaN or infinite sample, naming the file and the sample."""
    bad = ~np.isfinite(wave)
    if bad.any():
        sample, channel = np.argwhere(bad)[0]
        raise BadInput(f"audio {path} has a non-finite sample ({wave[sample, channel]}) at sample "
                       f"{offset + sample}", where)


@functools.lru_cache
def _lowpass(up: int, down: int) -> np.ndarray:
    """resample_poly's default anti-alias filter, designed once per rate pair instead of per call."""
    from scipy.signal import firwin  # scipy.signal takes seconds to import: only off-rate

    return firwin(2 * 10 * max(up, down) + 1, 1.0 / max(up, down), window=("kaiser", 5.0))


def resample(wave: np.ndarray, rate: int, target: int) -> np.ndarray:
    """`wave` from `rate` to `target` Hz (polyphase, scipy's default filter), in the dtype it came in."""
    if rate == target:
        return wave
    from scipy.signal import resample_poly

    up, down = target // gcd(rate, target), rate // gcd(rate, target)
    return resample_poly(wave, up, down, window=_lowpass(up, down).astype(wave.dtype))  # float32 stays float32


def load(utt: Utterance, rate: int) -> np.ndarray:
    """The utterance's segment as float32 mono at `rate` Hz."""
    _check_file(utt.path, utt.where)
    try:
        with sf.SoundFile(utt.path) as f:
            native = f.samplerate
            if utt.offset >= f.frames > 0:  # libsndfile: "Internal psf_fseek() failed."
                raise BadInput(f"offset {utt.offset} is past the end of {utt.path} ({f.frames} samples)", utt.where)
            f.seek(utt.offset)
            wave = f.read(utt.num_samples, dtype="float32", always_2d=True)
    except BadInput:
        raise
    except Exception as error:
        raise BadInput(f"unreadable audio {utt.path}: {str(error).splitlines()[0]}", utt.where) from None
    if wave.shape[0] == 0:
        raise BadInput(f"empty audio {utt.path}", utt.where)
    if wave.shape[0] < utt.num_samples:
        raise BadInput(f"truncated audio {utt.path}: {wave.shape[0]} of {utt.num_samples} samples", utt.where)
    check_finite(wave, utt.path, utt.where, utt.offset)
    return resample(wave.mean(axis=1), native, rate)
