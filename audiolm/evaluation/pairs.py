"""Evaluation items built from utterances with speaker ids and texts, and generation failure checks.

Voice cloning follows VALL-E's cross-utterance protocol: the prompt is the first ``prompt_seconds``
of one utterance of a speaker, the target text comes from another utterance of the same speaker
(whose real recording is the ground truth). Pairs are taken round-robin over speakers, in the
order the utterances come, so a run is repeatable. Each pair also names a prompt of another
speaker, for the different-speaker similarity of real recordings.

Continuation: the first ``prompt_seconds`` of an utterance are the prompt, the rest is the real
continuation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np

from data.clips import Clip

MIN_TARGET_SECONDS = 0.5


def mono(clip: Clip) -> np.ndarray:
    return clip.wav.mean(axis=0).astype(np.float32)


@dataclass
class ClonePair:
    prompt: Clip  # the utterance the prompt is cut from
    target: Clip  # same speaker, another utterance: its text is spoken, its audio is the ground truth
    other: Clip | None  # an utterance of another speaker (its prompt cut the same way)
    prompt_seconds: float

    def prompt_wav(self, clip: Clip | None = None) -> np.ndarray:
        """Mono ``[T]`` at the clip's rate: its first ``prompt_seconds``."""
        clip = clip or self.prompt
        return mono(clip)[: int(self.prompt_seconds * clip.sample_rate)]

    @property
    def prompt_text(self) -> str | None:
        """The prompt utterance's text when the prompt holds all of it (else its words are unknown)."""
        whole = self.prompt.wav.shape[-1] <= int(self.prompt_seconds * self.prompt.sample_rate)
        return self.prompt.text if whole and self.prompt.text else None


def by_speaker(clips: Iterable[Clip]) -> dict[str, list[Clip]]:
    groups: dict[str, list[Clip]] = {}
    for c in clips:
        if c.speaker:
            groups.setdefault(c.speaker, []).append(c)
    return groups


def clone_pairs(clips: Iterable[Clip], max_pairs: int, prompt_seconds: float = 3.0) -> list[ClonePair]:
    """Up to ``max_pairs`` (prompt, target) pairs of one speaker each (see the module doc)."""
    groups = {s: [c for c in cs] for s, cs in by_speaker(clips).items()}
    speakers = [s for s, cs in groups.items() if len(cs) >= 2 and any(c.text for c in cs)]
    if not speakers:
        raise ValueError("no speaker has two utterances with text: give shards whose samples carry "
                         "'speaker' and 'text' (e.g. `codeclm data speech`)")
    pairs: list[ClonePair] = []
    rounds = max(len(groups[s]) for s in speakers)
    for r in range(rounds):
        for i, s in enumerate(speakers):
            utts = groups[s]
            if r >= len(utts) or len(pairs) >= max_pairs:
                continue
            target = utts[(r + 1) % len(utts)]
            if not target.text or target.seconds < MIN_TARGET_SECONDS:
                continue
            others = [o for o in speakers if o != s]
            other = groups[others[i % len(others)]][r % len(groups[others[i % len(others)]])] if others else None
            pairs.append(ClonePair(utts[r], target, other, prompt_seconds))
    return pairs


@dataclass
class ContinuationItem:
    clip: Clip
    other: Clip | None  # an utterance of another speaker, for the different-speaker similarity
    prompt_seconds: float

    @property
    def split(self) -> int:
        return int(self.prompt_seconds * self.clip.sample_rate)

    def prompt_wav(self, clip: Clip | None = None) -> np.ndarray:
        clip = clip or self.clip
        return mono(clip)[: int(self.prompt_seconds * clip.sample_rate)]

    def rest_wav(self) -> np.ndarray:
        return mono(self.clip)[self.split:]


def continuation_items(clips: Iterable[Clip], max_items: int, prompt_seconds: float = 3.0) -> list[ContinuationItem]:
    """Utterances long enough to hold a prompt and at least 0.5 s more, one speaker after another."""
    long_enough = [c for c in clips if c.seconds >= prompt_seconds + MIN_TARGET_SECONDS]
    if not long_enough:
        raise ValueError(f"no utterance is longer than {prompt_seconds + MIN_TARGET_SECONDS:g} s: lower "
                         "--prompt-seconds or give longer recordings")
    groups = by_speaker(long_enough)
    order = groups if groups else {"": long_enough}
    queues = [list(v) for v in order.values()]
    items: list[ContinuationItem] = []
    r = 0
    while len(items) < max_items and any(r < len(q) for q in queues):
        for i, q in enumerate(queues):
            if r < len(q) and len(items) < max_items:
                other_q = queues[(i + 1) % len(queues)] if len(queues) > 1 else []
                items.append(ContinuationItem(q[r], other_q[r % len(other_q)] if other_q else None, prompt_seconds))
        r += 1
    return items


def active_seconds(wav: np.ndarray, sr: int, threshold_db: float = -40.0, frame_seconds: float = 0.02) -> float:
    """Seconds of ``wav [T]`` in frames whose RMS is above ``threshold_db`` dBFS."""
    hop = max(1, int(frame_seconds * sr))
    n = wav.size // hop
    if n == 0:
        return 0.0
    rms = np.sqrt(np.mean(np.square(wav[: n * hop].astype(np.float64).reshape(n, hop)), axis=1) + 1e-20)
    return float((20 * np.log10(rms) > threshold_db).sum() * hop / sr)


def is_silent(wav: np.ndarray, sr: int, min_active: float = 0.1) -> bool:
    """True when less than ``min_active`` seconds of ``wav`` rise above -40 dBFS."""
    return active_seconds(wav, sr) < min_active
