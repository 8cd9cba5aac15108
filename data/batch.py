"""Batch contracts: one dataclass for audio batches, one for token batches.

Lightning moves dataclass fields that are tensors to the device; lists stay on the host.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class AudioBatch:
    """A batch of audio clips, right-padded to the longest (or the crop length).

    audio: ``[B, C, T]`` float32 in [-1, 1]; lengths: ``[B]`` valid samples per clip;
    mask: ``[B, T]`` True where the sample is real audio (False on padding).
    """

    audio: torch.Tensor
    lengths: torch.Tensor
    mask: torch.Tensor
    sample_rate: int
    keys: list[str] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    speakers: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.audio.dim() != 3:
            raise ValueError(f"AudioBatch.audio must be [B, C, T], got {tuple(self.audio.shape)}")
        b, _, t = self.audio.shape
        if tuple(self.lengths.shape) != (b,) or tuple(self.mask.shape) != (b, t):
            raise ValueError(
                f"AudioBatch shapes disagree: audio {tuple(self.audio.shape)}, "
                f"lengths {tuple(self.lengths.shape)}, mask {tuple(self.mask.shape)}"
            )

    def __len__(self) -> int:
        return self.audio.shape[0]


@dataclass
class TokenBatch:
    """A batch of codec token sequences with their conditioning, right-padded.

    codes: ``[B, K, T]`` int64; lengths: ``[B]`` valid frames; mask: ``[B, T]`` True on real
    frames. text_tokens: ``[B, L]`` int64 (sentencepiece pieces or phoneme ids, 0-padded) with
    text_lengths ``[B]``; semantic: ``[B, S]`` int64 semantic units with semantic_lengths ``[B]``
    when the shards carry them. cropped: ``[B]`` bool, True where the loader cut the utterance to
    its ``max_frames`` (its text then says more than its codes), None when unknown.
    """

    codes: torch.Tensor
    lengths: torch.Tensor
    mask: torch.Tensor
    frame_rate: float
    keys: list[str] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    speakers: list[str] = field(default_factory=list)
    text_tokens: torch.Tensor | None = None
    text_lengths: torch.Tensor | None = None
    semantic: torch.Tensor | None = None
    semantic_lengths: torch.Tensor | None = None
    cropped: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.codes.dim() != 3:
            raise ValueError(f"TokenBatch.codes must be [B, K, T], got {tuple(self.codes.shape)}")
        b, _, t = self.codes.shape
        if tuple(self.lengths.shape) != (b,) or tuple(self.mask.shape) != (b, t):
            raise ValueError(
                f"TokenBatch shapes disagree: codes {tuple(self.codes.shape)}, "
                f"lengths {tuple(self.lengths.shape)}, mask {tuple(self.mask.shape)}"
            )

    def __len__(self) -> int:
        return self.codes.shape[0]


def lengths_to_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """``[B]`` lengths to a ``[B, max_len]`` bool mask, True on valid positions."""
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


def collate_audio(items: list[dict], sample_rate: int, length: int | None = None) -> AudioBatch:
    """Pad ``[{"audio": [C, t], "length": n, "key", "text", "speaker"}]`` into an :class:`AudioBatch`."""
    if not items:
        raise ValueError("cannot collate an empty list of clips")
    t = length or max(it["audio"].shape[-1] for it in items)
    c = items[0]["audio"].shape[0]
    audio = torch.zeros(len(items), c, t)
    lengths = torch.zeros(len(items), dtype=torch.long)
    for i, it in enumerate(items):
        n = min(it["audio"].shape[-1], t)
        audio[i, :, :n] = it["audio"][:, :n]
        lengths[i] = min(int(it["length"]), n)
    return AudioBatch(
        audio=audio,
        lengths=lengths,
        mask=lengths_to_mask(lengths, t),
        sample_rate=sample_rate,
        keys=[it["key"] for it in items],
        texts=[it.get("text") or "" for it in items],
        speakers=[it.get("speaker") or "" for it in items],
    )
