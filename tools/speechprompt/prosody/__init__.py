"""Prosody per unit: each unit's duration and F0, for pGSLM-style multi-stream unit LMs.

The units table carries prosody in two optional columns (`io/records.py`):

- **durations** (4th column): each unit's run length in encoder frames, what `sp-dedup --durations`
  counts when it merges repeated units (`unique_consecutive`);
- **F0** (5th column, written by `sp-f0`): each unit's log-F0 in **cents relative to its speaker's
  mean**, a whole number, or `u` where no frame inside the unit is voiced. The F0 of a unit is
  pGSLM's: the F0 track (20 ms frames every 5 ms) averaged in Hz over the voiced frames that fall
  inside the unit, then `1200 * log2(F0 / speaker mean)`, the speaker mean being the mean log-F0 of
  the speaker's voiced frames (pGSLM's `logf0_mean`).

Any F0 tracker of one's own can write that column; the built-in ones are in `trackers.py`. The
speaker comes from the manifest's 6th column, which a dataset adapter fills where it knows the
speaker; without it (or for a speaker with no voiced frame at all) the mean is the utterance's own.

In a data-bin the two columns become two more streams beside the tokens (`sp-binarize`;
`databin.py`), one value a token: a unit's duration and F0, and for every other token (`</s>`,
`<s>`, the label) `NONE`. A backbone turns them into what its model reads (the pGSLM backbone
caps durations and puts F0 into its bins).
"""
from __future__ import annotations

import math

import numpy as np

F0_HOP = 0.005  # seconds between F0 frames (pGSLM's F0_FRAME_SPACE)
F0_WINDOW = 0.020  # seconds of audio a frame of the reference tracker sees
CENTS_PER_LOG = 1200 / math.log(2)  # natural log -> cents

# Stream values of a data-bin (int32): durations in frames (0: not a unit); F0 in cents, or one of these.
NONE = -32768  # a token that is not a unit (`</s>`, `<s>`, a label token, padding)
UNVOICED = -32767  # a unit with no voiced frame
STREAMS = ("dur", "f0")
NONE_VALUES = (0, NONE)  # the streams of a token that is not a unit  # the data-bin's stream files: SPLIT.dur.bin/.idx, SPLIT.f0.bin/.idx


class UnitF0:
    """Each unit's mean F0 over its voiced frames, and how many voiced frames the utterance has, for the
    speaker means that come later (`normalise`)."""

    def __init__(self, f0: np.ndarray, durations: list[int], frames_per_unit: float, interpolate: bool = False):
        """`f0`: the track in Hz at F0_HOP (0: unvoiced), frame i centred at i * F0_HOP seconds;
        `frames_per_unit`: F0 frames per encoder frame (a unit of duration d covers d of them)."""
        f0 = np.asarray(f0, dtype=np.float64)
        ends = np.rint(np.cumsum(durations) * frames_per_unit).astype(np.int64)
        starts = np.concatenate([[0], ends[:-1]])
        voiced = f0 > 0
        self.log_sum = float(np.log(f0[voiced]).sum()) if voiced.any() else 0.0
        self.voiced_frames = int(voiced.sum())
        values = np.zeros(len(durations))
        for k, (a, b) in enumerate(zip(starts, ends)):
            segment = f0[a:b]
            segment = segment[segment > 0]
            if len(segment):
                values[k] = segment.mean()
        if interpolate:
            values = interpolate_unvoiced(values)
        self.hz = values  # 0: no voiced frame

    def cents(self, log_mean: float) -> list[int | None]:
        """Each unit's log-F0 relative to `log_mean` (natural log), in whole cents; None where unvoiced."""
        return [None if v <= 0 else int(round((math.log(v) - log_mean) * CENTS_PER_LOG)) for v in self.hz]


def interpolate_unvoiced(values: np.ndarray) -> np.ndarray:
    """pGSLM's `interpolate_f0`, per unit: unvoiced units between voiced ones get the linear interpolation
    of their neighbours (over unit index); those before the first or after the last voiced stay unvoiced."""
    voiced = np.flatnonzero(values > 0)
    if len(voiced) < 2:
        return values
    out = values.copy()
    inside = np.arange(voiced[0], voiced[-1] + 1)
    out[inside] = np.interp(inside, voiced, values[voiced])
    return out


def speaker_means(per_utterance: dict[str, UnitF0], speakers: dict[str, str | None]) -> tuple[dict[str, float], int]:
    """The mean log-F0 by which each utterance is normalised: its speaker's (over the voiced frames of all
    the speaker's utterances here), else its own. Returns the means and how many utterances named a
    speaker with no voiced frame (they fall back to their own, which is then unvoiced too)."""
    sums: dict[str, list[float]] = {}
    for uid, track in per_utterance.items():
        speaker = speakers.get(uid)
        if speaker is not None:
            total = sums.setdefault(speaker, [0.0, 0])
            total[0] += track.log_sum
            total[1] += track.voiced_frames
    means, fallbacks = {}, 0
    for uid, track in per_utterance.items():
        speaker = speakers.get(uid)
        if speaker is not None and sums[speaker][1]:
            means[uid] = sums[speaker][0] / sums[speaker][1]
            continue
        fallbacks += speaker is not None
        means[uid] = track.log_sum / track.voiced_frames if track.voiced_frames else 0.0
    return means, fallbacks


def stream_values(durations: list[int] | None, f0: list[int | None] | None, count: int) -> tuple[list, list]:
    """The data-bin streams of `count` units: durations (0 if none were given) and F0 (UNVOICED, or NONE if
    no F0 was given)."""
    dur = list(durations) if durations is not None else [0] * count
    pitch = [UNVOICED if v is None else v for v in f0] if f0 is not None else [NONE] * count
    return dur, pitch
