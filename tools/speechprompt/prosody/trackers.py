"""F0 trackers by name: a waveform at 16 kHz -> F0 in Hz every 5 ms (frame i centred at i * 5 ms), 0 where
unvoiced. Adding one is a function here and a line in `TRACKERS`.

- `yaapt`: pGSLM's own (fairseq's `codedataset.get_f0`): YAAPT through amfm-decompy, 20 ms frames
  every 5 ms, `nccf_thresh1=0.25`, `tda_frame_length=25`, on the peak-normalised wave. The reference:
  the published pGSLM checkpoints were trained on it. Slow (a few times real time).
- `praat`: Praat's autocorrelation pitch (parselmouth, `to_pitch_ac`, 75 to 600 Hz), read at the same
  frame times. Many times faster; its error against YAAPT is measured in tests/bench_f0.py.

Both are optional packages (`pip install AMFM-decompy`, `pip install praat-parselmouth`); a missing one
is one line saying which to install.
"""
from __future__ import annotations

import warnings

import numpy as np

from ..io import UsageProblem
from . import F0_HOP, F0_WINDOW

RATE = 16000


def _need(module: str, package: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise UsageProblem(f"the F0 tracker needs {package}: pip install {package}") from None


def yaapt(wave: np.ndarray) -> np.ndarray:
    basic = _need("amfm_decompy.basic_tools", "AMFM-decompy")
    pyaapt = _need("amfm_decompy.pYAAPT", "AMFM-decompy")
    frames = int(len(wave) / (F0_HOP * RATE)) + 1
    peak = float(np.abs(wave).max()) if len(wave) else 0.0
    if peak == 0.0 or len(wave) < F0_WINDOW * RATE:  # silence, or too short for one frame: nothing voiced
        return np.zeros(frames)
    pad = int(F0_WINDOW * RATE) // 2  # so that frame i is centred at i * F0_HOP, as fairseq pads
    signal = np.pad(wave.astype(np.float64) / peak * 0.95, (pad, pad))
    try:
        with warnings.catch_warnings():  # scipy's medfilt warns on short clips; the track is right all the same
            warnings.simplefilter("ignore", UserWarning)
            warnings.simplefilter("ignore", RuntimeWarning)  # 0/0 in its NCCF on silent stretches
            pitch = pyaapt.yaapt(basic.SignalObj(signal, RATE), frame_length=F0_WINDOW * 1000,
                                 frame_space=F0_HOP * 1000, nccf_thresh1=0.25, tda_frame_length=25.0)
    except (ValueError, IndexError, ZeroDivisionError):  # YAAPT fails on some clips; pGSLM sets F0 to 0 then
        return np.zeros(frames)
    return np.asarray(pitch.samp_values, dtype=np.float64)


def praat(wave: np.ndarray) -> np.ndarray:
    parselmouth = _need("parselmouth", "praat-parselmouth")
    frames = int(len(wave) / (F0_HOP * RATE)) + 1
    if not np.any(wave) or len(wave) < 3 / 75 * RATE:  # Praat needs three periods of the floor
        return np.zeros(frames)
    pitch = parselmouth.Sound(wave.astype(np.float64), RATE).to_pitch_ac(
        time_step=F0_HOP, pitch_floor=75.0, pitch_ceiling=600.0)
    times, values = pitch.xs(), pitch.selected_array["frequency"]
    index = np.rint((np.arange(frames) * F0_HOP - times[0]) / F0_HOP).astype(np.int64)
    inside = (index >= 0) & (index < len(values))
    out = np.zeros(frames)
    out[inside] = values[index[inside]]
    return np.nan_to_num(out)


TRACKERS = {"yaapt": yaapt, "praat": praat}
