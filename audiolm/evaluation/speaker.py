"""Speaker similarity: cosine between ``resemblyzer`` d-vectors (its weights ship in the wheel).

Every signal is brought to 16 kHz mono before embedding, so a clone and its prompt are compared at
the same rate (similarity depends strongly on bandwidth). :func:`load_speaker_encoder` returns
``(None, reason)`` when the package is missing.
"""

from __future__ import annotations

import numpy as np

SPEAKER_RATE = 16000


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if na == 0 or nb == 0:
        raise ValueError("cosine of a zero vector")
    return float(np.dot(a, b) / (na * nb))


class SpeakerEncoder:
    def __init__(self) -> None:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pkg_resources deprecation, librosa's numba notices
            from resemblyzer import VoiceEncoder, preprocess_wav

        self._preprocess = preprocess_wav
        self.encoder = VoiceEncoder("cpu", verbose=False)

    def embed(self, wav: np.ndarray) -> np.ndarray | None:
        """The unit-norm d-vector of mono ``wav [T]`` at 16 kHz, or None when no speech is left
        after resemblyzer's silence trimming."""
        if wav.size < SPEAKER_RATE // 10:
            return None
        clean = self._preprocess(np.asarray(wav, dtype=np.float32), source_sr=SPEAKER_RATE)
        if clean.size < SPEAKER_RATE // 10:
            return None
        return np.asarray(self.encoder.embed_utterance(clean), dtype=np.float64)


def load_speaker_encoder() -> tuple[SpeakerEncoder | None, str]:
    try:
        return SpeakerEncoder(), ""
    except Exception as e:  # noqa: BLE001 - a missing or broken optional package is n/a
        return None, f"resemblyzer unavailable ({type(e).__name__}: {str(e).strip()[:120]})"
