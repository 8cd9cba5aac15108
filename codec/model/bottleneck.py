"""Sequence models placed at the narrowest point of the SEANet encoder and decoder.

Both map ``[B, D, T] -> [B, D, T]`` (channels first, like the convolutions around them).

- ``LSTMBottleneck``: a unidirectional LSTM, so causal; in streaming mode it carries its
  ``(h, c)`` state from chunk to chunk.
- ``TransformerBottleneck``: pre-norm transformer layers with rotary positions. When causal it
  streams with a key/value cache; ``context`` limits how many past frames (the current one
  included) each frame attends to, which also bounds the cache. A non-causal one cannot stream.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from codec.model.conv import StreamingModule


def _check_input(x: torch.Tensor, dim: int, name: str) -> None:
    if x.dim() != 3 or x.shape[1] != dim:
        raise ValueError(f"{name} expects [B, {dim}, T], got {tuple(x.shape)}")


class LSTMBottleneck(StreamingModule):
    """Unidirectional ``num_layers``-layer LSTM over time; ``skip`` adds the input back.

    ``[B, D, T] -> [B, D, T]``.
    """

    def __init__(self, dim: int, num_layers: int = 2, skip: bool = True) -> None:
        super().__init__()
        self.dim, self.skip = dim, skip
        self.lstm = nn.LSTM(dim, dim, num_layers, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(x, self.dim, type(self).__name__)
        if x.shape[-1] == 0:
            return x
        seq = rearrange(x, "b d t -> b t d")
        state = self._stream_state if self._is_streaming else None
        y, new_state = self.lstm(seq, state)
        if self._is_streaming:
            self._stream_state = new_state
        if self.skip:
            y = y + seq
        return rearrange(y, "b t d -> b d t")


def rotary(x: torch.Tensor, positions: torch.Tensor, base: float = 10000.0) -> torch.Tensor:
    """Rotate feature pairs ``(i, i + E/2)`` of ``x [B, H, T, E]`` by angles ``pos * base^(-2i/E)``.

    ``positions``: ``[T]`` absolute frame indices.
    """
    half = x.shape[-1] // 2
    freqs = base ** (-torch.arange(half, device=x.device, dtype=torch.float32) / half)
    angles = positions.to(torch.float32)[:, None] * freqs[None, :]  # [T, E/2]
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


class _Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(
        self,
        x: torch.Tensor,
        positions: torch.Tensor,
        mask: torch.Tensor | None,
        past: tuple[torch.Tensor, torch.Tensor] | None,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """``x [B, T, D] -> [B, T, D]``, plus the keys/values ``[B, H, T_past + T, E]``."""
        q, k, v = rearrange(
            self.qkv(x), "b t (three h e) -> three b h t e", three=3, h=self.num_heads
        )
        q, k = rotary(q, positions), rotary(k, positions)
        if past is not None:
            k = torch.cat([past[0].to(k.dtype), k], dim=2)
            v = torch.cat([past[1].to(v.dtype), v], dim=2)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.out(rearrange(y, "b h t e -> b t (h e)")), (k, v)


class _Layer(nn.Module):
    def __init__(self, dim: int, num_heads: int, mlp_ratio: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = _Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(
            nn.Linear(dim, mlp_ratio * dim), nn.GELU(), nn.Linear(mlp_ratio * dim, dim)
        )

    def forward(self, x, positions, mask, past):
        h, kv = self.attn(self.norm1(x), positions, mask, past)
        x = x + h
        return x + self.mlp(self.norm2(x)), kv


class TransformerBottleneck(StreamingModule):
    """A small pre-norm transformer over time with rotary positions.

    ``[B, D, T] -> [B, D, T]``. ``causal``: each frame attends only to itself and the past
    (required for streaming). ``context``: with ``causal``, each frame attends to at most the
    last ``context`` frames, itself included (``None``: all of the past).
    """

    def __init__(
        self,
        dim: int,
        num_layers: int = 2,
        num_heads: int = 4,
        causal: bool = True,
        context: int | None = None,
        mlp_ratio: int = 4,
    ) -> None:
        super().__init__()
        if dim % num_heads or (dim // num_heads) % 2:
            raise ValueError(
                f"dim {dim} must split into {num_heads} heads of an even size (rotary positions)"
            )
        if context is not None and (not causal or context < 1):
            raise ValueError("context needs causal=True and must be >= 1")
        self.dim, self.causal, self.context = dim, causal, context
        self.layers = nn.ModuleList(_Layer(dim, num_heads, mlp_ratio) for _ in range(num_layers))

    def check_streamable(self) -> None:
        if not self.causal:
            raise ValueError("a non-causal TransformerBottleneck cannot stream: use causal=True")

    def _mask(self, q_pos: torch.Tensor, k_pos: torch.Tensor) -> torch.Tensor | None:
        """Boolean ``[T_q, T_k]``, True where a query may attend to a key."""
        if not self.causal:
            return None
        delta = q_pos[:, None] - k_pos[None, :]
        allowed = delta >= 0
        if self.context is not None:
            allowed &= delta < self.context
        return allowed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(x, self.dim, type(self).__name__)
        frames = x.shape[-1]
        if frames == 0:
            return x
        h = rearrange(x, "b d t -> b t d")
        state = self._stream_state if self._is_streaming else None
        offset = 0 if state is None else state["offset"]
        caches = [None] * len(self.layers) if state is None else state["kv"]
        past_len = 0 if state is None else caches[0][0].shape[2]
        q_pos = torch.arange(offset, offset + frames, device=x.device)
        k_pos = torch.arange(offset - past_len, offset + frames, device=x.device)
        mask = self._mask(q_pos, k_pos)
        new_caches = []
        for layer, past in zip(self.layers, caches):
            h, (k, v) = layer(h, q_pos, mask, past)
            if self.context is not None:  # the next frame sees at most context - 1 past ones
                start = max(0, k.shape[2] - (self.context - 1))
                k, v = k[:, :, start:], v[:, :, start:]
            new_caches.append((k, v))
        if self._is_streaming:
            self._stream_state = {"offset": offset + frames, "kv": new_caches}
        return rearrange(h, "b t d -> b d t")
