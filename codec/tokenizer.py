"""The tokenizer interface every codec implements and every language model relies on.

``audiolm/`` imports only this module from ``codec/``.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Mapping, Protocol, runtime_checkable

import torch


@runtime_checkable
class AudioTokenizer(Protocol):
    """Turns audio ``[B, C, T]`` into codes ``[B, K, T']`` and back.

    ``frame_rate`` is codes per second (``sample_rate / hop``); ``cardinality`` the size of each
    codebook; ``num_codebooks`` the largest ``K`` that ``encode`` returns.
    ``codec_id`` identifies the weights and config, so codes from different codecs never mix.
    """

    sample_rate: int
    channels: int
    frame_rate: float
    num_codebooks: int
    cardinality: int
    codec_id: str

    def encode(self, wav: torch.Tensor, num_codebooks: int | None = None) -> torch.Tensor: ...

    def decode(self, codes: torch.Tensor) -> torch.Tensor: ...


def codec_id(state_dict: Mapping[str, torch.Tensor], config: Mapping[str, Any]) -> str:
    """A short, stable hash of a codec's weights and config (16 hex digits)."""
    h = hashlib.sha256()
    h.update(json.dumps(config, sort_keys=True, default=str).encode())
    for name in sorted(state_dict):
        t = state_dict[name].detach().cpu().contiguous()
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(str(t.dtype).encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:16]
