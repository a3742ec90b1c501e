"""sp-synth: synthesise the offline default corpus, in Speech Commands v0.01 layout.

    sp-synth data/synth --speakers 200 --seed 0
    sp-manifest speech_commands data/synth --out-dir data/SCR

Writes OUT/WORD/<speaker>_nohash_<n>.wav (16 kHz mono int16, 1 s), with
espeak-ng through espeakng_loader:

- the 10 command words, each said by every speaker, and `--unknown-per-speaker`
  of 20 other words (Speech Commands' auxiliary words) for `_unknown_`;
- speakers = accent x voice variant x speed x pitch; a speaker id is the first
  8 hex digits of a sha1 of its voice;
- speaker-disjoint splits by Google's sha1 rule (`which_set` of the speaker
  id), written to validation_list.txt and testing_list.txt; speakers are
  drawn until each split has its share, so tiny corpora have all three;
- each word trimmed, resampled to 16 kHz, put at a random place in the clip,
  with white, pink, brown noise or hum at a random SNR;
- OUT/_background_noise_/{white_noise,pink_noise,brown_noise,hum}.wav, long
  enough for about one `_silence_` segment per speaker;
- OUT/speakers.tsv: speaker, voice, rate, pitch, split.

Deterministic for a given --seed (synthesis runs in one fixed order, see
espeak.py).  The corpus is built in a temporary directory beside OUT and
renamed into place at the end.
"""
from __future__ import annotations

import hashlib
import math
import os
import shutil
import tempfile
import wave
from pathlib import Path

import click
import numpy as np
from tqdm import tqdm

from . import audio, espeak
from .datasets import which_set
from .datasets.speech_commands import COMMANDS, NOISE_DIR
from .io import BadInput, command, log, output_dir_callback, writing

AUXILIARY = ("bed", "bird", "cat", "dog", "eight", "five", "four", "happy", "house", "marvin",
             "nine", "one", "seven", "sheila", "six", "three", "tree", "two", "wow", "zero")
ACCENTS = ("en-us", "en", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-us-nyc", "en-gb-x-gbclan",
           "en-gb-x-gbcwmd")
VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5", "klatt", "klatt2", "klatt3")
RATES = (120, 220)  # words per minute
PITCHES = (25, 75)  # espeak's 0..100
RATE = 16000
SPLIT_LIST = {"valid": "validation_list.txt", "test": "testing_list.txt"}


# --------------------------------------------------------------------- noise
def colored(rng: np.random.Generator, n: int, exponent: float) -> np.ndarray:
    """Noise with power spectrum 1/f**exponent (0 white, 1 pink, 2 brown), unit RMS."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n)
    f[0] = f[1]
    noise = np.fft.irfft(spectrum / f ** (exponent / 2), n)
    noise -= noise.mean()
    return noise / (np.sqrt(np.mean(noise**2)) + 1e-12)


def hum(rng: np.random.Generator, n: int) -> np.ndarray:
    """Mains hum: 50 or 60 Hz and harmonics, a little white noise, unit RMS."""
    t = np.arange(n) / RATE
    base = rng.choice([50.0, 60.0])
    wave = sum(rng.uniform(0.2, 1.0) / h * np.sin(2 * np.pi * base * h * t + rng.uniform(0, 2 * np.pi))
               for h in range(1, 8))
    wave = wave + 0.05 * rng.standard_normal(n)
    return wave / np.sqrt(np.mean(wave**2))


NOISES = {
    "white_noise": lambda rng, n: colored(rng, n, 0.0),
    "pink_noise": lambda rng, n: colored(rng, n, 1.0),
    "brown_noise": lambda rng, n: colored(rng, n, 2.0),
    "hum": hum,
}


def to_int16(wave: np.ndarray, peak: float) -> np.ndarray:
    return np.round(wave * (peak / (np.max(np.abs(wave)) + 1e-12)) * 32767).astype(np.int16)


# ------------------------------------------------------------------- corpus
def speaker_id(voice: espeak.Voice, seed: int) -> str:
    return hashlib.sha1(f"{seed}/{voice.name}/{voice.rate}/{voice.pitch}".encode()).hexdigest()[:8]


def draw_speakers(n: int, seed: int, valid_percent: float, test_percent: float) -> list[tuple[str, espeak.Voice, str]]:
    """n distinct speakers, split by the sha1 rule, drawn until each split has its share."""
    quota = {"valid": max(1, round(n * valid_percent / 100)), "test": max(1, round(n * test_percent / 100))}
    quota["train"] = n - quota["valid"] - quota["test"]
    if quota["train"] < 1:
        raise click.UsageError(f"--speakers {n} is too few for three splits")
    rng = np.random.default_rng([seed, 1])
    speakers, seen = [], set()
    while len(speakers) < n:
        voice = espeak.Voice(str(rng.choice(ACCENTS)), str(rng.choice(VARIANTS)),
                             int(rng.integers(RATES[0], RATES[1] + 1)), int(rng.integers(PITCHES[0], PITCHES[1] + 1)))
        sid = speaker_id(voice, seed)
        split = which_set(sid, valid_percent, test_percent)
        if sid in seen or quota[split] == 0:
            continue
        seen.add(sid)
        quota[split] -= 1
        speakers.append((sid, voice, split))
    return speakers


def clip(word: np.ndarray, rate: int, rng: np.random.Generator, snr: tuple[float, float]) -> np.ndarray:
    """A 1 s clip: the trimmed word at a random place, plus noise at a random SNR."""
    x = word.astype(np.float64) / 32768
    loud = np.flatnonzero(np.abs(x) > 0.02 * np.max(np.abs(x)))
    x = audio.resample(x[loud[0]:loud[-1] + 1], rate, RATE)[:RATE] if len(loud) else np.zeros(RATE // 2)
    out = np.zeros(RATE)
    start = int(rng.integers(0, RATE - len(x) + 1))
    out[start:start + len(x)] = x
    power = np.mean(x**2) + 1e-12
    kind = str(rng.choice(list(NOISES)))
    db = rng.uniform(*snr)
    out += NOISES[kind](rng, RATE) * np.sqrt(power / 10 ** (db / 10))
    return to_int16(out, rng.uniform(0.3, 0.9))


def write_wav(path: Path, samples: np.ndarray) -> None:
    """16 kHz mono int16 PCM (the stdlib writer: soundfile fsyncs every file)."""
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(RATE)
        f.writeframes(samples.astype("<i2").tobytes())


def build(out: Path, speakers, seed: int, unknown_per_speaker: int, noise_seconds: int,
          snr: tuple[float, float]) -> int:
    jobs = []  # (speaker, voice, split, word, n): the fixed order of synthesis
    for sid, voice, split in speakers:
        rng = np.random.default_rng([seed, 2, int(sid, 16)])
        others = rng.choice(AUXILIARY, size=min(unknown_per_speaker, len(AUXILIARY)), replace=False)
        jobs += [(sid, voice, split, str(word)) for word in (*COMMANDS, *sorted(others))]
    lists = {split: [] for split in SPLIT_LIST}
    for word in (*COMMANDS, *AUXILIARY):
        (out / word).mkdir()
    rate = espeak.sample_rate()
    for sid, voice, split, word in tqdm(jobs, desc="sp-synth", unit="clip", disable=None):
        rng = np.random.default_rng([seed, 3, int(sid, 16), (COMMANDS + AUXILIARY).index(word)])
        name = f"{word}/{sid}_nohash_0.wav"
        samples = espeak.synthesize(word, voice, seed=int(rng.integers(2**31)))
        write_wav(out / name, clip(samples, rate, rng, snr))
        if split in lists:
            lists[split].append(name)
    for split, file in SPLIT_LIST.items():
        (out / file).write_text("".join(f"{name}\n" for name in sorted(lists[split])))
    (out / NOISE_DIR).mkdir()
    for k, (kind, make) in enumerate(NOISES.items()):
        noise = make(np.random.default_rng([seed, 4, k]), noise_seconds * RATE)
        write_wav(out / NOISE_DIR / f"{kind}.wav", to_int16(noise, 0.5))
    with open(out / "speakers.tsv", "w") as f:
        for sid, voice, split in sorted(speakers, key=lambda s: s[0]):
            f.write(f"{sid}\t{voice.name}\t{voice.rate}\t{voice.pitch}\t{split}\n")
    return len(jobs)


@command("Synthesise a Speech Commands v0.01-style corpus with espeak-ng (the offline default corpus).")
@click.argument("out", type=click.Path(path_type=Path), callback=output_dir_callback)
@click.option("--speakers", default=200, show_default=True, help="Number of synthetic speakers.")
@click.option("--unknown-per-speaker", default=3, show_default=True,
              help="How many of the 20 non-command words each speaker says (the _unknown_ class).")
@click.option("--noise-seconds", type=int, help="Length of each background-noise file [default: about "
              "one 1 s _silence_ segment per speaker, at least 10].")
@click.option("--snr", nargs=2, type=float, default=(10.0, 30.0), show_default=True,
              help="Range of the clips' signal-to-noise ratio, in dB.")
@click.option("--valid-percent", default=10.0, show_default=True, help="Share of speakers in valid.")
@click.option("--test-percent", default=10.0, show_default=True, help="Share of speakers in test.")
@click.option("--seed", default=0, show_default=True, help="Same seed, same corpus.")
@click.option("--force", is_flag=True, help="Replace OUT if it exists.")
def main(out, speakers, unknown_per_speaker, noise_seconds, snr, valid_percent, test_percent, seed, force):
    out = Path(os.path.abspath(out))
    if out.exists() and not force:
        raise BadInput(f"{out} exists (--force replaces it)")
    chosen = draw_speakers(speakers, seed, valid_percent, test_percent)
    noise_seconds = noise_seconds or max(10, math.ceil(speakers / len(NOISES)))
    tmp = None
    try:
        with writing(str(out), str(out.parent)):  # a full disk: one line, and the half-built corpus removed
            out.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
            clips = build(tmp, chosen, seed, unknown_per_speaker, noise_seconds, snr)
            os.chmod(tmp, 0o755)
            if out.exists():
                old = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.old."))
                os.replace(out, old / "corpus")
                os.replace(tmp, out)
                shutil.rmtree(old)
            else:
                os.replace(tmp, out)
    finally:
        if tmp and tmp.exists():
            shutil.rmtree(tmp)
    counts = {split: sum(1 for s in chosen if s[2] == split) for split in ("train", "valid", "test")}
    log(f"wrote {clips} clips of {speakers} speakers ({counts['train']} train, {counts['valid']} valid, "
        f"{counts['test']} test) and {len(NOISES)} x {noise_seconds} s of noise to {out}")
