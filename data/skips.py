"""Counting bad samples by reason, across DataLoader worker processes.

Counters live in shared memory created in the main process, so the trainer can read totals
that every worker contributed to.
"""

from __future__ import annotations

import logging
import multiprocessing as mp

log = logging.getLogger("codeclm.data")

REASONS = (
    "open_failed", "truncated_tar", "bad_tar", "missing_audio", "bad_json", "unreadable", "empty", "nonfinite",
    "bad_header", "too_long", "truncated", "too_short", "bad_tokens", "codec_mismatch", "other",
)


class SkipCounter:
    def __init__(self) -> None:
        self._counts = mp.Array("q", len(REASONS), lock=True)

    def add(self, reason: str, url: str, key: str | None, detail: str = "") -> None:
        if reason not in REASONS:
            reason = "other"
        with self._counts.get_lock():
            self._counts[REASONS.index(reason)] += 1
        log.warning("skipped sample %s in %s (%s)%s", key or "?", url, reason, f": {detail}" if detail else "")

    def as_dict(self) -> dict[str, int]:
        with self._counts.get_lock():
            return {r: int(n) for r, n in zip(REASONS, self._counts[:]) if n}

    @property
    def total(self) -> int:
        return sum(self.as_dict().values())
