"""Activations for the convolutional codec, chosen by name: elu, snake, gelu, silu."""

from __future__ import annotations

import torch
from torch import nn

ACTIVATIONS = ("elu", "snake", "gelu", "silu")


class Snake(nn.Module):
    """``x + sin^2(alpha * x) / alpha`` with one learnable ``alpha`` per channel.

    ``[B, C, T] -> [B, C, T]``, same dtype as the input (computed in float32). A periodic
    activation suited to waveforms: it keeps a linear trend and adds a learnable oscillation.
    """

    def __init__(self, channels: int, alpha: float = 1.0, eps: float = 1e-9) -> None:
        super().__init__()
        self.channels = channels
        self.eps = eps
        self.alpha = nn.Parameter(torch.full((channels,), float(alpha)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3 or x.shape[1] != self.channels:
            raise ValueError(f"Snake expects [B, {self.channels}, T], got {tuple(x.shape)}")
        alpha = self.alpha.float()[None, :, None]  # [1, C, 1]
        xf = x.float()
        y = xf + torch.sin(alpha * xf).pow(2) / (alpha + self.eps)
        return y.to(x.dtype)

    def extra_repr(self) -> str:
        return f"channels={self.channels}"


def make_activation(name: str, channels: int) -> nn.Module:
    """The activation called ``name`` for a ``[B, channels, T]`` input.

    ``channels`` is used by ``snake`` only (one ``alpha`` per channel).
    """
    if name == "elu":
        return nn.ELU(alpha=1.0)
    if name == "snake":
        return Snake(channels)
    if name == "gelu":
        return nn.GELU()
    if name == "silu":
        return nn.SiLU()
    raise ValueError(f"activation must be one of {ACTIVATIONS}, got {name!r}")
