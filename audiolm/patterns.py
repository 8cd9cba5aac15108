"""Codebook interleaving patterns: codes ``[B, K, T]`` to model token sequences and back.

A pattern decides where each code ``(k, t)`` sits in the sequence a language model reads and
predicts, and which sequence positions hold no code at all (they carry a ``fill`` token and are
masked out of the loss):

- ``FlattenPattern(K)``: one sequence ``[B, K*T]``, time-major (``t0k0, t0k1, ..., t1k0, ...``).
  One step predicts one code; ``codebook`` tells a model which embedding/head (or vocabulary
  offset, see ``offset_tokens``) each position uses. No fill positions.
- ``ParallelPattern(K)``: ``[B, K, T]`` unchanged; one step predicts all K codes of a frame.
- ``DelayPattern(delays)`` (MusicGen): codebook ``k`` shifted right by ``delays[k]`` steps, giving
  ``[B, K, T + max(delays)]``; the positions before and after each shifted row hold ``fill``.
  One step predicts one column: codebook 0 of frame ``s`` along with codebook 1 of frame ``s - 1``
  (for delays ``0, 1, ...``), so finer codebooks are predicted once coarser ones of the same
  frame are known.

Every pattern is a bijection between the K*T codes and the valid (unmasked) positions of its
sequence, so ``revert(build(codes, fill).tokens) == codes`` for any B, K and T (T = 0 included).

Logits follow the tokens' layout: ``revert_logits`` expects ``logits[..., s, :]`` to score the
token at sequence position ``s`` (the caller has already undone the one-step shift of next-token
prediction) and returns them at code positions, ``[B, K, T, V]``, ready for a loss against the
original codes.

Generation walks the sequence one step (one position for flatten, one column otherwise) at a
time: ``step_positions(s, T)`` lists the codes ``(k, t)`` that step ``s`` produces; over steps
``0 .. length(T) - 1`` every code is produced exactly once.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from einops import rearrange, repeat

__all__ = [
    "PatternLayout", "PatternSequence", "Pattern", "FlattenPattern", "ParallelPattern", "DelayPattern",
    "make_pattern", "offset_tokens", "strip_offsets",
]


@dataclass(frozen=True)
class PatternLayout:
    """Where each sequence position's code comes from, for T frames (no batch axis).

    Shapes are the sequence's without batch: ``[S]`` for flatten, ``[K, S]`` otherwise.
    ``codebook``: codebook index of the position (defined at fill positions too);
    ``time``: frame index of the position, -1 at fill positions; ``mask``: ``time >= 0``.
    """

    codebook: torch.Tensor
    time: torch.Tensor
    mask: torch.Tensor


@dataclass(frozen=True)
class PatternSequence:
    """A pattern applied to a batch of codes.

    ``tokens``: ``[B, S]`` (flatten) or ``[B, K, S]``; ``mask``: bool, same shape, True where the
    position holds a code (False exactly at ``fill`` positions); ``codebook`` and ``time``: the
    layout's ``[S]`` / ``[K, S]`` per-position codebook and frame (-1 at fill), shared by the batch.
    """

    tokens: torch.Tensor
    mask: torch.Tensor
    codebook: torch.Tensor
    time: torch.Tensor


class Pattern(ABC):
    """Interleaving of ``num_codebooks`` codebooks. Subclasses define the layout and the steps."""

    #: 1 for ``[B, S]`` sequences, 2 for ``[B, K, S]`` sequences.
    seq_dims: int = 2

    def __init__(self, num_codebooks: int) -> None:
        if num_codebooks < 1:
            raise ValueError(f"{type(self).__name__} needs at least one codebook, got {num_codebooks}")
        self.num_codebooks = num_codebooks

    def __repr__(self) -> str:
        return f"{type(self).__name__}(num_codebooks={self.num_codebooks})"

    # ---- what a subclass defines ---------------------------------------------------------------
    @abstractmethod
    def length(self, frames: int) -> int:
        """Sequence length S (steps) for ``frames`` frames."""

    @abstractmethod
    def frames(self, length: int) -> int:
        """Inverse of ``length``: frames T of a sequence of length S (ValueError if none)."""

    @abstractmethod
    def _positions(self, frames: int, device: torch.device | None) -> tuple[torch.Tensor, torch.Tensor]:
        """(codebook, time) per sequence position, time -1 at fill positions."""

    @abstractmethod
    def step_positions(self, step: int, frames: int) -> list[tuple[int, int]]:
        """Codes ``(k, t)`` produced at generation step ``step`` of a ``frames``-frame sequence."""

    # ---- shared machinery -----------------------------------------------------------------------
    def layout(self, frames: int, device: torch.device | str | None = None) -> PatternLayout:
        """The layout for ``frames`` frames (see ``PatternLayout``)."""
        if frames < 0:
            raise ValueError(f"frames must be >= 0, got {frames}")
        codebook, time = self._positions(frames, torch.device(device) if device is not None else None)
        return PatternLayout(codebook=codebook, time=time, mask=time >= 0)

    def _source_index(self, layout: PatternLayout, frames: int) -> torch.Tensor:
        """Per position, the index into codes flattened k-major (``k*T + t``); K*T at fill."""
        fill_index = self.num_codebooks * frames
        return torch.where(layout.mask, layout.codebook * frames + layout.time, fill_index)

    def _code_positions(self, layout: PatternLayout, frames: int) -> torch.Tensor:
        """Per code (flattened k-major, ``[K*T]``), its index into the flattened sequence."""
        source = self._source_index(layout, frames).flatten()
        valid = layout.mask.flatten()
        order = torch.arange(source.numel(), device=source.device)
        positions = torch.empty(self.num_codebooks * frames, dtype=torch.long, device=source.device)
        positions[source[valid]] = order[valid]
        return positions

    def _check_codebooks(self, k: int, what: str) -> None:
        if k != self.num_codebooks:
            raise ValueError(f"{self!r} got {what} with {k} codebooks")

    def _seq_frames(self, x: torch.Tensor, extra_dims: int, what: str) -> int:
        """Check a ``[B, (K,) S, (V)]`` tensor's sequence axes and return its frame count."""
        want = 1 + self.seq_dims + extra_dims
        if x.dim() != want:
            names = ("[B, S" if self.seq_dims == 1 else "[B, K, S") + (", V]" if extra_dims else "]")
            raise ValueError(f"{self!r} expects {what} {names}, got shape {tuple(x.shape)}")
        if self.seq_dims == 2:
            self._check_codebooks(x.shape[1], what)
        return self.frames(x.shape[self.seq_dims])

    def build(self, codes: torch.Tensor, fill: int | None = None) -> PatternSequence:
        """Lay out codes ``[B, K, T]`` as a model sequence; fill positions get ``fill``.

        ``fill`` is required when the layout has fill positions (delay); a dedicated id outside
        the code range (e.g. ``cardinality``) keeps it apart from real codes.
        """
        if codes.dim() != 3:
            raise ValueError(f"codes must be [B, K, T], got shape {tuple(codes.shape)}")
        b, k, t = codes.shape
        self._check_codebooks(k, "codes")
        layout = self.layout(t, codes.device)
        if fill is None and not bool(layout.mask.all()):
            raise ValueError(f"{self!r} has fill positions: pass fill= (e.g. the codebook cardinality)")
        flat = rearrange(codes, "b k t -> b (k t)")
        pad = torch.full((b, 1), 0 if fill is None else fill, dtype=codes.dtype, device=codes.device)
        tokens = torch.cat([flat, pad], dim=1)[:, self._source_index(layout, t)]  # [B, *seq]
        return PatternSequence(tokens=tokens, mask=layout.mask.expand_as(tokens), codebook=layout.codebook,
                               time=layout.time)

    def revert(self, tokens: torch.Tensor) -> torch.Tensor:
        """Codes ``[B, K, T]`` from a sequence laid out by ``build`` (fill positions dropped)."""
        t = self._seq_frames(tokens, 0, "tokens")
        positions = self._code_positions(self.layout(t, tokens.device), t)
        flat = tokens.flatten(1)[:, positions]  # [B, K*T]
        return rearrange(flat, "b (k t) -> b k t", k=self.num_codebooks)

    def revert_logits(self, logits: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, S, V]`` (flatten) or ``[B, K, S, V]`` to code positions ``[B, K, T, V]``.

        ``logits[..., s, :]`` must score the token at sequence position ``s``; the result's
        ``[:, k, t]`` then scores code ``(k, t)``. Fill positions are dropped.
        """
        t = self._seq_frames(logits, 1, "logits")
        positions = self._code_positions(self.layout(t, logits.device), t)
        flat = logits.flatten(1, -2)[:, positions]  # [B, K*T, V]
        return rearrange(flat, "b (k t) v -> b k t v", k=self.num_codebooks)


class FlattenPattern(Pattern):
    """All codes in one time-major sequence ``[B, K*T]``: step ``s`` is code ``(s % K, s // K)``."""

    seq_dims = 1

    def length(self, frames: int) -> int:
        return self.num_codebooks * frames

    def frames(self, length: int) -> int:
        if length < 0 or length % self.num_codebooks:
            raise ValueError(f"{self!r}: sequence length {length} is not a multiple of {self.num_codebooks}")
        return length // self.num_codebooks

    def _positions(self, frames, device):
        ks = torch.arange(self.num_codebooks, device=device)
        ts = torch.arange(frames, device=device)
        codebook = repeat(ks, "k -> (t k)", t=frames)
        time = repeat(ts, "t -> (t k)", k=self.num_codebooks)
        return codebook, time

    def step_positions(self, step, frames):
        _check_step(step, self.length(frames))
        return [(step % self.num_codebooks, step // self.num_codebooks)]


class ParallelPattern(Pattern):
    """Codes as they are, ``[B, K, T]``: step ``s`` produces all K codes of frame ``s``."""

    def length(self, frames: int) -> int:
        return frames

    def frames(self, length: int) -> int:
        if length < 0:
            raise ValueError(f"{self!r}: negative sequence length {length}")
        return length

    def _positions(self, frames, device):
        codebook = repeat(torch.arange(self.num_codebooks, device=device), "k -> k s", s=frames)
        time = repeat(torch.arange(frames, device=device), "s -> k s", k=self.num_codebooks)
        return codebook, time

    def step_positions(self, step, frames):
        _check_step(step, self.length(frames))
        return [(k, step) for k in range(self.num_codebooks)]


class DelayPattern(Pattern):
    """Codebook ``k`` delayed by ``delays[k]`` steps: ``[B, K, T + max(delays)]`` (MusicGen).

    Position ``(k, s)`` holds code ``(k, s - delays[k])`` when ``0 <= s - delays[k] < T`` and the
    fill token otherwise. ``DelayPattern.musicgen(K)`` uses delays ``0, 1, ..., K-1``.
    """

    def __init__(self, delays: Sequence[int]) -> None:
        delays = [int(d) for d in delays]
        if not delays:
            raise ValueError("DelayPattern needs one delay per codebook, got none")
        if min(delays) < 0:
            raise ValueError(f"DelayPattern delays must be >= 0, got {delays}")
        super().__init__(len(delays))
        self.delays = tuple(delays)
        self.max_delay = max(delays)

    @classmethod
    def musicgen(cls, num_codebooks: int) -> DelayPattern:
        """Codebook ``k`` delayed by ``k`` steps."""
        return cls(range(num_codebooks))

    def __repr__(self) -> str:
        return f"DelayPattern(delays={list(self.delays)})"

    def length(self, frames: int) -> int:
        return frames + self.max_delay

    def frames(self, length: int) -> int:
        if length < self.max_delay:
            raise ValueError(f"{self!r}: sequence length {length} is shorter than the largest delay "
                             f"{self.max_delay}")
        return length - self.max_delay

    def _positions(self, frames, device):
        steps = self.length(frames)
        delays = torch.tensor(self.delays, dtype=torch.long, device=device)
        codebook = repeat(torch.arange(self.num_codebooks, device=device), "k -> k s", s=steps)
        time = torch.arange(steps, device=device)[None, :] - delays[:, None]  # [K, S]
        time = torch.where((time >= 0) & (time < frames), time, -1)
        return codebook, time

    def step_positions(self, step, frames):
        _check_step(step, self.length(frames))
        return [(k, step - d) for k, d in enumerate(self.delays) if 0 <= step - d < frames]


def _check_step(step: int, length: int) -> None:
    if not 0 <= step < length:
        raise ValueError(f"step {step} outside the sequence's {length} steps")


def make_pattern(kind: str, num_codebooks: int, delays: Sequence[int] | None = None) -> Pattern:
    """A pattern by name: ``flatten``, ``parallel`` or ``delay`` (delays default to ``0..K-1``)."""
    if delays is not None and kind != "delay":
        raise ValueError(f"delays only apply to the delay pattern, not {kind!r}")
    if kind == "flatten":
        return FlattenPattern(num_codebooks)
    if kind == "parallel":
        return ParallelPattern(num_codebooks)
    if kind == "delay":
        if delays is None:
            return DelayPattern.musicgen(num_codebooks)
        if len(delays) != num_codebooks:
            raise ValueError(f"delay pattern: {len(delays)} delays given for {num_codebooks} codebooks")
        return DelayPattern(delays)
    raise ValueError(f"unknown pattern {kind!r}: choose flatten, parallel or delay")


def offset_tokens(codes: torch.Tensor, cardinality: int) -> torch.Tensor:
    """Globally unique ids ``k * cardinality + code`` for codes ``[..., K, T]``.

    With offsets, one embedding table / output head of ``K * cardinality`` entries serves all
    codebooks of a flattened sequence. Inverse: ``strip_offsets``.
    """
    if codes.dim() < 2:
        raise ValueError(f"codes must be [..., K, T], got shape {tuple(codes.shape)}")
    if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= cardinality):
        raise ValueError(f"codes must lie in [0, {cardinality}), got [{int(codes.min())}, {int(codes.max())}]")
    offsets = torch.arange(codes.shape[-2], device=codes.device, dtype=codes.dtype) * cardinality
    return codes + offsets[:, None]


def strip_offsets(tokens: torch.Tensor, cardinality: int) -> torch.Tensor:
    """Codes ``[..., K, T]`` from offset ids; ValueError if an id lies outside its codebook's range."""
    if tokens.dim() < 2:
        raise ValueError(f"tokens must be [..., K, T], got shape {tuple(tokens.shape)}")
    offsets = torch.arange(tokens.shape[-2], device=tokens.device, dtype=tokens.dtype) * cardinality
    codes = tokens - offsets[:, None]
    if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= cardinality):
        raise ValueError("offset ids outside their codebook's range: were they made by offset_tokens "
                         f"with cardinality {cardinality}?")
    return codes
