"""Intelligibility: transcribe with pocketsphinx's shipped English model, score WER and CER.

:func:`edit_distance` and :func:`normalize` are pure; :class:`Transcriber` wraps the
``pocketsphinx`` package (the ``eval`` extra) and is constructed through :func:`load_transcriber`,
which returns ``(None, reason)`` when the package is missing, so a caller reports n/a.

Scores are corpus-level: total edits over total reference words (characters for CER, spaces
excluded), the way ASR papers report them. pocketsphinx judges most espeak voices harshly even for
the real recordings, so read a model's WER beside the ground truth's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

ASR_RATE = 16000


def normalize(text: str) -> str:
    """Lowercase words of letters, digits and inner apostrophes, single-spaced."""
    words = re.findall(r"[a-z0-9]+(?:'[a-z0-9]+)*", text.lower())
    return " ".join(words)


def edit_distance(ref: list, hyp: list) -> int:
    """Levenshtein distance (substitutions, insertions, deletions all cost 1)."""
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1]


@dataclass
class ErrorCounts:
    """Summed edits and reference lengths over utterances; ``wer``/``cer`` are their ratios."""

    word_edits: int = 0
    words: int = 0
    char_edits: int = 0
    chars: int = 0
    utterances: int = 0

    def add(self, reference: str, hypothesis: str) -> None:
        ref, hyp = normalize(reference), normalize(hypothesis)
        self.word_edits += edit_distance(ref.split(), hyp.split())
        self.words += len(ref.split())
        self.char_edits += edit_distance(list(ref.replace(" ", "")), list(hyp.replace(" ", "")))
        self.chars += len(ref.replace(" ", ""))
        self.utterances += 1

    @property
    def wer(self) -> float | None:
        return self.word_edits / self.words if self.words else None

    @property
    def cer(self) -> float | None:
        return self.char_edits / self.chars if self.chars else None


class Transcriber:
    """pocketsphinx with its default (shipped) US English acoustic model, dictionary and LM.

    Each call starts from the same feature state, so a clip's transcript does not depend on the
    clips heard before it (pocketsphinx otherwise carries its cepstral mean across utterances)."""

    def __init__(self) -> None:
        from pocketsphinx import Decoder

        self.decoder = Decoder(samprate=ASR_RATE, loglevel="FATAL")

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


def load_transcriber() -> tuple[Transcriber | None, str]:
    try:
        return Transcriber(), ""
    except Exception as e:  # noqa: BLE001 - a missing or broken optional package is n/a
        return None, f"pocketsphinx unavailable ({type(e).__name__}: {str(e).strip()[:120]})"
