"""How long a VALL-E clone may be: frames per text token, measured in training, and the bounds
they give a generation.

``LengthStats`` sums, over the training utterances the AR stage saw, the ratio of codec frames
to text tokens (``r = frames / text tokens``, one value an utterance): the count, the sum and the
sum of squares of ``r``, and the total frames and tokens. Sums add across ranks (``LMModule``
reduces each batch's sums over every rank before adding them, so all ranks hold the same numbers)
and across a resumed run. Utterances the loader cropped (their text says more than their codes)
and utterances without text are left out. The AR model keeps its ``LengthStats`` in its
``_extra_state`` next to its config, so a checkpoint alone knows them.

``length_bounds(stats, text_tokens, cfg)`` turns them into the bounds of one generation: the
expected frames are ``text_tokens x mean r`` (the target text only, not the prompt's), the minimum
``cfg.min_ratio`` and the maximum ``cfg.max_ratio`` times that (rounded down and up). A model
trained before the statistics existed has none: the bounds then use
``DEFAULT_FRAMES_PER_TOKEN`` frames a token at ``DEFAULT_FRAME_RATE`` Hz, scaled to the codec's
frame rate when it is known, and say so (``measured`` is False).

``DEFAULT_FRAMES_PER_TOKEN`` was measured on the built-in espeak-ng corpus (``data/corpus``, 559
utterances of 48 speakers, its phoneme vocabulary: one token an IPA code point, stress and length
marks and word breaks included): 2.67 frames a token at 50 Hz (std 0.43; 5th and 95th percentiles
2.06 and 3.43; every utterance between 0.67x and 1.78x the mean), so the default window of 0.5x to
2x holds all of them. Sentencepiece pieces are longer than phoneme tokens: a sentencepiece model
without statistics gets a tight maximum (retrain a few steps, or raise ``max_ratio``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch

from data.batch import TokenBatch

DEFAULT_FRAMES_PER_TOKEN = 2.67
DEFAULT_FRAME_RATE = 50.0


@dataclass
class LengthStats:
    """Sums over training utterances of ``r = frames / text tokens``; see the module doc."""

    utterances: int = 0
    ratio_sum: float = 0.0
    ratio_sq_sum: float = 0.0
    frames: int = 0
    tokens: int = 0
    frame_rate: float = 0.0  # of the codec whose frames were counted (0: unknown)

    @property
    def measured(self) -> bool:
        return self.utterances > 0

    @property
    def mean(self) -> float:
        """Mean frames per text token (nan before any utterance)."""
        return self.ratio_sum / self.utterances if self.utterances else math.nan

    @property
    def std(self) -> float:
        if not self.utterances:
            return math.nan
        return math.sqrt(max(0.0, self.ratio_sq_sum / self.utterances - self.mean ** 2))

    @staticmethod
    def batch_sums(batch: TokenBatch) -> torch.Tensor:
        """``[5]`` float64 sums of ``batch`` (utterances, sum r, sum r^2, frames, tokens), on the
        batch's device, ready to be summed over ranks and passed to :meth:`add`."""
        dev = batch.lengths.device
        if batch.text_lengths is None:
            return torch.zeros(5, dtype=torch.float64, device=dev)
        frames = batch.lengths.to(torch.float64)
        tokens = batch.text_lengths.to(device=dev, dtype=torch.float64)
        keep = (tokens > 0) & (frames > 0)
        if batch.cropped is not None:
            keep &= ~batch.cropped.to(dev)
        ratio = torch.where(keep, frames / tokens.clamp(min=1), 0.0)
        keep = keep.to(torch.float64)
        return torch.stack([keep.sum(), ratio.sum(), (ratio ** 2).sum(), (frames * keep).sum(), (tokens * keep).sum()])

    def add(self, sums: torch.Tensor, frame_rate: float = 0.0) -> None:
        """Add :meth:`batch_sums` (of one batch, or of one batch on every rank)."""
        n, rs, rq, f, t = sums.tolist()
        self.utterances += int(round(n))
        self.ratio_sum += rs
        self.ratio_sq_sum += rq
        self.frames += int(round(f))
        self.tokens += int(round(t))
        if frame_rate and n:
            self.frame_rate = float(frame_rate)

    def observe(self, batch: TokenBatch) -> None:
        """Add one batch (a single process; under DDP, ``LMModule`` sums over ranks first)."""
        self.add(self.batch_sums(batch), batch.frame_rate)

    def state_dict(self) -> dict[str, Any]:
        return asdict(self)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        names = {f.name for f in fields(self)}
        if not isinstance(state, dict) or set(state) != names:
            raise ValueError(f"length statistics need the fields {sorted(names)}, got {state!r}")
        for name in names:
            setattr(self, name, type(getattr(self, name))(state[name]))

    def describe(self) -> str:
        if not self.measured:
            return "no length statistics"
        return (f"{self.mean:.2f} +- {self.std:.2f} frames a text token over {self.utterances} training utterances"
                + (f" at {self.frame_rate:g} Hz" if self.frame_rate else ""))


@dataclass
class LengthConfig:
    """Bounds of a generation as fractions of its expected length: EOS is suppressed until
    ``min_ratio`` x expected frames, generation stops at ``max_ratio`` x expected frames."""

    min_ratio: float = 0.5
    max_ratio: float = 2.0

    def __post_init__(self) -> None:
        if not 0 <= self.min_ratio <= self.max_ratio or self.max_ratio <= 0:
            raise ValueError(f"length ratios need 0 <= min ({self.min_ratio}) <= max ({self.max_ratio}) and max > 0")


@dataclass
class LengthBounds:
    """The frames a generation may make: EOS allowed from ``min_frames`` on, at most
    ``max_frames``; ``expected_frames`` = text tokens x ``frames_per_token``; ``measured``: the
    ratio came from the model's training data (False: the documented default)."""

    min_frames: int
    max_frames: int
    expected_frames: float
    frames_per_token: float
    measured: bool


def length_bounds(stats: LengthStats | None, text_tokens: int, cfg: LengthConfig | None = None,
                  frame_rate: float | None = None, cap: int | None = None) -> LengthBounds:
    """Bounds for speaking ``text_tokens`` target text tokens (see the module doc); ``frame_rate``
    scales the default ratio when ``stats`` has none; ``cap`` (frames) lowers both bounds."""
    cfg = cfg or LengthConfig()
    if stats is not None and stats.measured:
        per_token, measured = stats.mean, True
    else:
        per_token, measured = DEFAULT_FRAMES_PER_TOKEN * (frame_rate or DEFAULT_FRAME_RATE) / DEFAULT_FRAME_RATE, False
    expected = max(0, text_tokens) * per_token
    hi = max(1, math.ceil(cfg.max_ratio * expected))
    lo = min(hi, math.floor(cfg.min_ratio * expected))
    if cap is not None:
        hi, lo = max(1, min(hi, cap)), min(lo, max(1, cap))
    return LengthBounds(lo, hi, expected, per_token, measured)
