"""sp-f0: add each unit's F0 to a units table (the 5th column), from the audio of its manifest.

    sp-quantize ... train.tsv | sp-dedup --durations -o units.tsv
    sp-f0 manifest/train.tsv units.tsv -o units.f0.tsv            # id units label durations f0

Each utterance's F0 is tracked (`--tracker`, prosody/trackers.py: pGSLM's YAAPT, or Praat), averaged
over the voiced frames inside each unit (a unit of duration d covers d / `--unit-rate` seconds), and
written as cents relative to the speaker's mean log-F0 (`u`: no voiced frame). The speaker is the
manifest's 6th column, where the dataset's adapter names one; without one an utterance is normalised
by its own mean. So the means need every utterance of the input first: the table is written at the end.

A units row needs its durations (`sp-dedup --durations`) and an id the manifest has. Silence and clips
too short to track give unvoiced units, not an error; a speaker with no voiced frame at all falls back
to per-utterance normalisation, counted in the log.
"""
from __future__ import annotations

import sys

import click

from .io import (BadInput, Skipper, atomic_output, command, log, output_option, read_manifest, read_units,
                 skip_bad_option)


@command("Add each unit's F0 (cents from the speaker's mean, `u` unvoiced) to a units table with durations.")
@click.argument("manifest", type=click.Path(dir_okay=False, allow_dash=False))
@click.argument("units", type=click.Path(dir_okay=False, allow_dash=True))
@output_option
@click.option("--tracker", default="yaapt", show_default=True, type=click.Choice(["yaapt", "praat"]),
              help="yaapt: pGSLM's (AMFM-decompy), what its published checkpoints were trained on; praat: "
                   "parselmouth's autocorrelation, many times faster.")
@click.option("--unit-rate", default=50.0, show_default=True, type=click.FloatRange(min=1, min_open=False),
              help="Encoder frames per second that the durations count (HuBERT and log-mel --subsample 2: 50).")
@click.option("--interpolate", is_flag=True,
              help="Unvoiced units between voiced ones get their neighbours' interpolation (pGSLM's "
                   "--interpolate-f0, which its published checkpoints were trained with).")
@click.option("--speakers/--no-speakers", default=True, show_default=True,
              help="Normalise by the manifest's speaker column where it has one (else by the utterance).")
@skip_bad_option
def main(manifest, units, output, tracker, unit_rate, interpolate, speakers, skip_bad):
    from tqdm import tqdm

    from . import audio
    from .prosody import F0_HOP, UnitF0, speaker_means
    from .prosody.trackers import RATE, TRACKERS

    track = TRACKERS[tracker]
    skipper = Skipper(skip_bad)
    utterances = {utt.id: utt for utt in read_manifest(manifest)}
    rows, tracks = [], {}
    for record in tqdm(list(read_units(units, skipper)), desc=f"sp-f0 {tracker}", unit="utt", file=sys.stderr):
        with skipper.guard():
            utt = utterances.get(record.id)
            if utt is None:
                raise BadInput(f"utterance {record.id!r} is not in the manifest {manifest}", record.where)
            if record.durations is None:
                raise BadInput("no durations column: make the units with sp-dedup --durations", record.where)
            wave = audio.load(utt, RATE)
            span, seconds = sum(record.durations) / unit_rate, len(wave) / RATE
            if abs(span - seconds) > max(0.1, 0.1 * seconds):
                raise BadInput(f"the units span {span:.2f} s at --unit-rate {unit_rate:g}, the audio {seconds:.2f} s "
                               f"(units of another encoder rate?)", record.where)
            tracks[record.id] = UnitF0(track(wave), record.durations, 1 / (unit_rate * F0_HOP), interpolate)
            rows.append(record)
    named = {uid: utt.speaker if speakers else None for uid, utt in utterances.items()}
    means, fallbacks = speaker_means(tracks, named)
    with atomic_output(output) as out:
        for record in rows:
            record.f0 = tracks[record.id].cents(means[record.id])
            out.write(record.row() + "\n")
    skipper.report("utterances")
    by_speaker = sum(named.get(uid) is not None for uid in tracks)
    unvoiced = sum(not t.voiced_frames for t in tracks.values())
    log(f"wrote {len(rows)} rows: {by_speaker} normalised by speaker, {len(rows) - by_speaker} by utterance"
        + (f"; {fallbacks} of a speaker with no voiced frame, by utterance instead" if fallbacks else "")
        + (f"; {unvoiced} with no voiced frame (all `u`)" if unvoiced else ""))
