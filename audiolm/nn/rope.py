"""Rotary position embeddings (RoPE) with explicit positions.

``rope_angles(positions, head_dim, theta) -> RopeAngles`` turns integer positions ``[S]`` or
``[B, S]`` into cosines and sines ``[B or 1, 1, S, head_dim / 2]``; ``apply_rope(x, angles)``
rotates queries or keys ``[B, H, S, head_dim]`` by them.

Positions are passed in, never inferred from the sequence length, so cached decoding rotates a
new token by its absolute position (the cache offset) and left-padded batches can give each row
its own positions. Angles are computed on the fly in float32 (no buffer to go stale under
``.to(dtype)``, no maximum length): the cost is one outer product per forward, shared by layers.

Layout: the "half split" convention (as in GPT-NeoX / Llama): channel ``i`` pairs with channel
``i + head_dim / 2``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from einops import rearrange


@dataclass
class RopeAngles:
    """cos, sin: ``[B or 1, 1, S, head_dim / 2]`` float32, broadcast over heads."""

    cos: torch.Tensor
    sin: torch.Tensor


def rope_angles(positions: torch.Tensor, head_dim: int, theta: float = 10000.0) -> RopeAngles:
    """Angles for ``positions`` ``[S]`` or ``[B, S]`` (integers, or fractional positions); ``head_dim`` must be even."""
    if head_dim % 2:
        raise ValueError(f"RoPE needs an even head_dim, got {head_dim}")
    if positions.dim() == 1:
        positions = positions[None]
    if positions.dim() != 2:
        raise ValueError(f"positions must be [S] or [B, S], got shape {tuple(positions.shape)}")
    exponents = torch.arange(0, head_dim, 2, device=positions.device, dtype=torch.float32) / head_dim
    inv_freq = theta ** -exponents  # [head_dim / 2]
    angles = positions.to(torch.float32)[..., None] * inv_freq  # [B, S, head_dim / 2]
    angles = rearrange(angles, "b s f -> b 1 s f")
    return RopeAngles(cos=angles.cos(), sin=angles.sin())


def apply_rope(x: torch.Tensor, angles: RopeAngles) -> torch.Tensor:
    """Rotate ``x [B, H, S, head_dim]``; computed in float32, returned in ``x.dtype``."""
    x1, x2 = x.float().chunk(2, dim=-1)
    cos, sin = angles.cos, angles.sin
    rotated = torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)
    return rotated.to(x.dtype)
