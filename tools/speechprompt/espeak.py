"""A minimal ctypes binding of libespeak-ng, as shipped by the `espeakng_loader` wheel.

    voice = Voice("en-us", "m3", rate=160, pitch=40)
    samples = synthesize("yes", voice)        # int16 numpy array at SAMPLE_RATE

Only the synchronous API is used: espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS),
a synth callback that collects the int16 samples, espeak_SetVoiceByName with
espeak's `language+variant` names, espeak_SetParameter for rate and pitch,
and espeak_Synth.  libespeak-ng holds global state, so one process uses one
engine; `synthesize` initialises it on first use.

Determinism: libespeak-ng carries state from one call to the next (its pitch
flutter runs on; espeak_Initialize does not reset it), so the same text and
voice give slightly different samples on each call; and its noise source
(breathy variants such as f2) is random unless seeded.  A fresh process that
makes the same sequence of seeded calls gets the same samples, so callers that
need reproducible audio seed each call and synthesise in a fixed order.
"""
from __future__ import annotations

import ctypes
import dataclasses

import numpy as np

AUDIO_OUTPUT_SYNCHRONOUS = 2
POS_CHARACTER = 1
CHARS_UTF8 = 1
RATE, VOLUME, PITCH, RANGE = 1, 2, 3, 4  # espeak_PARAMETER
EE_OK = 0

CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


@dataclasses.dataclass(frozen=True)
class Voice:
    language: str  # an espeak-ng voice name: en-us, en-gb-scotland, en-029, ...
    variant: str = ""  # a voice variant from espeak-ng-data/voices/!v: m3, f2, klatt, ...
    rate: int = 175  # words per minute (80..450)
    pitch: int = 50  # base pitch, 0..100

    @property
    def name(self) -> str:
        return f"{self.language}+{self.variant}" if self.variant else self.language


class _Engine:
    def __init__(self):
        import espeakng_loader

        self.lib = ctypes.CDLL(espeakng_loader.get_library_path())
        self.lib.espeak_Initialize.restype = ctypes.c_int
        self.lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        self.lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        self.lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        self.lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                          ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        self.lib.espeak_SetSynthCallback.argtypes = [CALLBACK]
        self.lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        self.rate = self.lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0,
                                               espeakng_loader.get_data_path().encode(), 0)
        if self.rate <= 0:
            raise RuntimeError("espeak_Initialize failed")
        self.chunks: list[np.ndarray] = []
        self.callback = CALLBACK(self._collect)  # keep a reference: ctypes must not free it
        self.lib.espeak_SetSynthCallback(self.callback)
        self.voice: Voice | None = None

    def _collect(self, wav, count, events):
        if count > 0 and wav:
            self.chunks.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
        return 0  # 0 = go on

    def set_voice(self, voice: Voice) -> None:
        if voice == self.voice:
            return
        if self.lib.espeak_SetVoiceByName(voice.name.encode()) != EE_OK:
            raise ValueError(f"espeak-ng has no voice {voice.name!r}")
        for parameter, value in ((RATE, voice.rate), (PITCH, voice.pitch)):
            if self.lib.espeak_SetParameter(parameter, value, 0) != EE_OK:
                raise ValueError(f"espeak-ng rejected parameter {parameter}={value}")
        self.voice = voice

    def synthesize(self, text: str, voice: Voice, seed: int = 0) -> np.ndarray:
        self.set_voice(voice)
        self.lib.espeak_ng_SetRandSeed(seed)  # breathy variants (f2, f3, ...) add random noise
        self.chunks = []
        data = text.encode() + b"\0"
        if self.lib.espeak_Synth(data, len(data), 0, POS_CHARACTER, 0, CHARS_UTF8, None, None) != EE_OK:
            raise RuntimeError(f"espeak_Synth failed on {text!r}")
        return np.concatenate(self.chunks) if self.chunks else np.zeros(0, np.int16)


_engine: _Engine | None = None


def engine() -> _Engine:
    global _engine
    if _engine is None:
        _engine = _Engine()
    return _engine


def sample_rate() -> int:
    """The engine's output rate in Hz (22050 for espeak-ng)."""
    return engine().rate


def synthesize(text: str, voice: Voice, seed: int = 0) -> np.ndarray:
    """`text` spoken by `voice`, as int16 samples at `sample_rate()` Hz; `seed` seeds espeak's noise."""
    return engine().synthesize(text, voice, seed)
