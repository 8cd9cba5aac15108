"""Intelligibility of reconstructions: the WER of what a recognizer hears in each system's output.

The recognizer is handed in (any :class:`data.transcripts.Recognizer`: a ``name`` and a call from
mono float32 audio at 16 kHz to text), so ``codec/`` needs no speech model of its own; the CLI
passes the judge ``--asr`` names. Each clip's reference is its text when it has one and the
evaluated audio is the whole utterance; otherwise it is what the recognizer hears in the original,
so a system is then scored on saying what the original says. The original's own WER against the
texts is a reference row: the floor a perfect codec reaches with this judge.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from codec.evaluation.metrics import _resample_np
from data.transcripts import ASR_RATE, ErrorCounts, Recognizer

ORIGINAL = "original"


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0][:120] if text else ''}"


@dataclass
class Reference:
    """The words a clip's outputs are scored against; ``source`` is ``text`` or ``original transcript``."""

    text: str
    source: str
    original_heard: str


@dataclass
class Intelligibility:
    """WER bookkeeping of one evaluation; ``recognizer`` None leaves WER out (``note`` says why)."""

    recognizer: Recognizer | None
    note: str = ""
    sources: dict[str, int] = field(default_factory=dict)  # reference source -> clips

    @property
    def on(self) -> bool:
        return self.recognizer is not None

    @property
    def judge(self) -> str:
        """The recognizer's description for the reports, or ``none (why)``."""
        if self.recognizer is None:
            return f"none ({self.note})" if self.note else "none"
        return getattr(self.recognizer, "description", self.recognizer.name)

    def hear(self, wav: np.ndarray, sr: int) -> str:
        assert self.recognizer is not None
        return self.recognizer(_resample_np(np.asarray(wav, dtype=np.float32), sr, ASR_RATE))

    def reference(self, text: str, whole: bool, original: np.ndarray, sr: int) -> Reference:
        """The reference of a clip whose text is ``text`` ('' when none) and whose evaluated audio
        ``original`` is (``whole``) or is not the complete utterance the text describes."""
        heard = self.hear(original, sr)
        ref = Reference(text, "text", heard) if text.strip() and whole else Reference(heard, "original transcript", heard)
        self.sources[ref.source] = self.sources.get(ref.source, 0) + 1
        return ref

    def score(self, errors: ErrorCounts, clip_record: dict, failures, ref: Reference, output: np.ndarray,
              sr: int) -> str | None:
        """Hear ``output``, count its edits against ``ref`` in ``errors`` and note the transcript and
        the clip's own WER in ``clip_record``; a recognizer failure is counted in ``failures``."""
        try:
            heard = self.hear(output, sr)
        except Exception as e:  # noqa: BLE001 - one clip's failure is counted, not fatal
            failures[f"wer: {_first_line(e)}"] += 1
            clip_record.update(wer=None, transcript=None)
            return None
        clip_record.update(wer=errors.add(ref.text, heard), transcript=heard)
        return heard

    def score_original(self, errors: ErrorCounts, clip_record: dict, ref: Reference) -> None:
        """The original's own WER: only where the reference is a text (against its own transcript it
        would be 0 by construction)."""
        wer = errors.add(ref.text, ref.original_heard) if ref.source == "text" else None
        clip_record.update(wer=wer, transcript=ref.original_heard, reference=ref.source)
