"""The intonation contrast of the pGSLM measurements: the same words said with a rising or a falling pitch.

    .venv/bin/python tests/intonation_corpus.py OUT [--speakers 40]
    make TASK=FOLDERS DATA=OUT EXP=exp/intonation-fairseq predict
    make TASK=FOLDERS DATA=OUT EXP=exp/intonation-pgslm BACKBONE=pgslm predict

Writes OUT/rise/<speaker>_nohash_<k>.wav and OUT/fall/... (16 kHz mono), in the FOLDERS layout: each
speaker (an espeak-ng accent, voice variant and rate, as sp-synth draws them) says each phrase twice,
word by word, with espeak's pitch going 20 -> 80 across the words (rise) or 80 -> 20 (fall). The labels
differ only in pitch, the words and voices are the same; FOLDERS' hash on the part before `_nohash_`
keeps speakers apart between splits, and names them for sp-f0's speaker means.
"""
import argparse
import random
from pathlib import Path

import numpy as np
import soundfile as sf

from speechprompt import audio, espeak
from speechprompt.synth import ACCENTS, VARIANTS

PHRASES = ["turn the lights off", "you are coming home", "that was the last one", "we go there tomorrow",
           "the door is open", "she likes green tea", "it will rain today", "he found the keys"]


def say(words, voice, pitches, gap):
    parts = []
    for word, pitch in zip(words, pitches):
        spoken = espeak.synthesize(word, espeak.Voice(voice.language, voice.variant, voice.rate, int(pitch)))
        parts += [audio.resample(spoken.astype(np.float32) / 32768, espeak.sample_rate(), 16000), gap]
    return np.concatenate(parts)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--speakers", type=int, default=40)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    gap = np.zeros(800, np.float32)  # 50 ms between words
    for s in range(args.speakers):
        voice = espeak.Voice(rng.choice(ACCENTS), rng.choice(VARIANTS), rng.choice([140, 175, 210]))
        speaker = f"spk{s:03d}{rng.randrange(16 ** 4):04x}"
        for k, phrase in enumerate(PHRASES):
            words = phrase.split()
            rising = np.linspace(20, 80, len(words))
            for label, pitches in (("rise", rising), ("fall", rising[::-1])):
                path = args.out / label / f"{speaker}_nohash_{k}.wav"
                path.parent.mkdir(parents=True, exist_ok=True)
                sf.write(path, say(words, voice, pitches, gap), 16000, subtype="PCM_16")


if __name__ == "__main__":
    main()
