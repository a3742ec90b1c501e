"""Benchmark: the F0 trackers of sp-f0 (prosody/trackers.py), speed and agreement with YAAPT.

Sentences from the offline synthesiser (espeak-ng: several voices, pitches and rates, a rising and a
falling reading of each), resampled to 16 kHz. For each tracker: how many times real time it runs on
one core (CPU seconds of this process, one thread; goal >= 50 for a tracker other than YAAPT), and, for
every tracker but YAAPT, its median error against YAAPT in cents over the frames both call voiced, and
how often they agree on voicing. BENCH_F0_SENTENCES sets how many sentences.
"""
import os
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from speechprompt import audio, espeak  # noqa: E402
from speechprompt.prosody.trackers import RATE, TRACKERS  # noqa: E402

SENTENCES = int(os.environ.get("BENCH_F0_SENTENCES", 12))
TEXTS = ["the quick brown fox jumps over the lazy dog", "would you like another cup of tea",
         "turn the lights off in the kitchen", "she sells sea shells by the sea shore"]
VOICES = [espeak.Voice("en-us", "m3", 160, 40), espeak.Voice("en-gb-x-rp", "f2", 180, 70),
          espeak.Voice("en-us", "", 140, 55), espeak.Voice("en-029", "m1", 200, 30)]


def sentences():
    for i in range(SENTENCES):
        text = TEXTS[i % len(TEXTS)] + ("?" if i % 2 else ".")  # a question rises, a statement falls
        wave = espeak.synthesize(text, VOICES[i % len(VOICES)], seed=i).astype(np.float32) / 32768
        yield audio.resample(wave, espeak.sample_rate(), RATE)


def main():
    waves = list(sentences())
    seconds = sum(len(w) for w in waves) / RATE
    tracks, speed = {}, {}
    for name, track in TRACKERS.items():
        start = time.process_time()
        tracks[name] = [track(w) for w in waves]
        speed[name] = seconds / (time.process_time() - start)
    reference = tracks["yaapt"]
    for name in TRACKERS:
        line = f"{name}: {speed[name]:.0f}x real time on one core"
        if name != "yaapt":
            errors, agree, frames = [], 0, 0
            for ours, ref in zip(tracks[name], reference):
                n = min(len(ours), len(ref))
                ours, ref = ours[:n], ref[:n]
                both = (ours > 0) & (ref > 0)
                errors.append(np.abs(1200 * np.log2(ours[both] / ref[both])))
                agree += int(((ours > 0) == (ref > 0)).sum())
                frames += n
            errors = np.concatenate(errors)
            line += (f"; against YAAPT: median error {np.median(errors):.1f} cents over {len(errors)} frames voiced in "
                     f"both (90th percentile {np.percentile(errors, 90):.0f}), voicing agrees on {agree / frames:.1%} "
                     f"of frames (goal: >= 50x)")
        print(line)
    print(f"audio: {len(waves)} synthesised sentences, {seconds:.1f} s, 16 kHz")


if __name__ == "__main__":
    main()
