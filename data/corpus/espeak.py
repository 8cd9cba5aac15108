"""espeak-ng through ctypes, from the ``espeakng-loader`` wheel (no system package needed).

One :class:`Espeak` per process: libespeak-ng keeps global state. It synthesizes 16-bit mono at
the library's native rate (22050 Hz) and converts text to IPA phonemes with the same voice.
"""

from __future__ import annotations

import ctypes
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_CHARS_UTF8 = 1
_POS_CHARACTER = 1
_PHONEMES_IPA = 0x02
_PARAM = {"rate": 1, "volume": 2, "pitch": 3, "range": 4, "wordgap": 7}

_SYNTH_CB = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


@dataclass(frozen=True)
class VoiceParams:
    """An espeak-ng voice: base voice (language/accent), variant, and prosody parameters.

    pitch and range are espeak's 0-100 scales (50 is the voice's default); rate is words per minute.
    """

    voice: str = "en-us"
    variant: str = ""
    pitch: int = 50
    range: int = 50
    rate: int = 175
    wordgap: int = 0

    @property
    def name(self) -> str:
        return f"{self.voice}+{self.variant}" if self.variant else self.voice


class EspeakError(RuntimeError):
    pass


_lock = threading.Lock()
_instance: "Espeak | None" = None


class Espeak:
    """The process-wide espeak-ng engine. Use :func:`get_espeak` rather than constructing it."""

    def __init__(self) -> None:
        try:
            import espeakng_loader
        except ImportError:  # pragma: no cover - a dependency of the package
            raise EspeakError("espeak-ng is missing: pip install espeakng-loader") from None
        self.lib = ctypes.CDLL(espeakng_loader.get_library_path())
        data_parent = str(Path(espeakng_loader.get_data_path()).parent)
        lib = self.lib
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
            ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
        ]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_char_p), ctypes.c_int, ctypes.c_int]
        lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
        self.sample_rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data_parent.encode(), 0)
        if self.sample_rate <= 0:
            raise EspeakError(f"espeak-ng failed to initialize with data at {data_parent}")
        self._chunks: list[np.ndarray] = []
        self._cb = _SYNTH_CB(self._on_audio)  # keep a reference: the library calls it later
        lib.espeak_SetSynthCallback(self._cb)
        self._voice: VoiceParams | None = None

    def _on_audio(self, wav, n, events) -> int:
        if wav and n > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        return 0

    def set_voice(self, params: VoiceParams) -> None:
        if params == self._voice:
            return
        if self.lib.espeak_SetVoiceByName(params.name.encode()) != 0:
            raise EspeakError(f"espeak-ng has no voice {params.name!r}; list them with `codeclm data voices`")
        for key in ("rate", "pitch", "range", "wordgap"):
            self.lib.espeak_SetParameter(_PARAM[key], int(getattr(params, key)), 0)
        self._voice = params

    def synthesize(self, text: str, params: VoiceParams) -> np.ndarray:
        """Speak ``text``; returns float32 mono samples at :attr:`sample_rate`."""
        with _lock:
            self.set_voice(params)
            self._chunks = []
            data = text.encode("utf-8") + b"\0"
            err = self.lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
            if err != 0:
                raise EspeakError(f"espeak-ng could not synthesize {text[:40]!r} (error {err})")
            chunks, self._chunks = self._chunks, []
        if not chunks:
            return np.zeros(0, dtype=np.float32)
        return (np.concatenate(chunks).astype(np.float32) / 32768.0)

    def phonemes(self, text: str, params: VoiceParams) -> str:
        """IPA phonemes of ``text`` as spoken by ``params``' voice, clauses joined by spaces."""
        with _lock:
            self.set_voice(params)
            buf = ctypes.c_char_p(text.encode("utf-8"))
            ptr = ctypes.pointer(buf)
            out = []
            while buf.value:
                res = self.lib.espeak_TextToPhonemes(ptr, _CHARS_UTF8, _PHONEMES_IPA)
                if res:
                    out.append(res.decode("utf-8", errors="replace").strip())
            return " ".join(p for p in out if p)


def get_espeak() -> Espeak:
    global _instance
    if _instance is None:
        _instance = Espeak()
    return _instance


def available_voices() -> tuple[list[str], list[str]]:
    """(base voice names usable in ``VoiceParams.voice``, variant names) from the shipped data."""
    import espeakng_loader

    data = Path(espeakng_loader.get_data_path())
    langs = sorted({p.name.lower() for p in (data / "lang").rglob("*") if p.is_file()})
    variants = sorted(p.name for p in (data / "voices" / "!v").iterdir() if p.is_file() and " " not in p.name)
    return langs, variants
