"""Multi-period discriminator (HiFi-GAN lineage).

Each period ``p`` folds the waveform into a ``[T/p, p]`` plane so that a column holds every p-th
sample, then runs ``(k, 1)`` convs down the columns: each sub-discriminator sees one periodic
structure of the signal. Defaults follow the published model (periods 2, 3, 5, 7, 11; filters
32-128-512-1024-1024, kernel 5, stride 3).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from einops import rearrange
from torch import nn
from torch.nn import functional as F

from codec.discriminators.base import DiscriminatorOutput, MultiDiscriminator, check_audio, normed


@dataclass
class MPDConfig:
    """Sizes of the multi-period discriminator. Every conv in ``filters`` but the last strides."""

    periods: tuple[int, ...] = (2, 3, 5, 7, 11)
    filters: tuple[int, ...] = (32, 128, 512, 1024, 1024)
    kernel_size: int = 5
    stride: int = 3
    post_kernel_size: int = 3
    negative_slope: float = 0.1
    norm: str = "weight"

    def __post_init__(self) -> None:
        if not self.periods or not self.filters:
            raise ValueError("MPDConfig needs at least one period and one filter size")
        if self.kernel_size % 2 == 0 or self.post_kernel_size % 2 == 0:
            raise ValueError(f"MPDConfig kernel sizes must be odd, got {self.kernel_size}, {self.post_kernel_size}")


class PeriodDiscriminator(nn.Module):
    """One period: audio ``[B, C, T]`` -> plane ``[B, C, ceil(T/p), p]`` -> logits ``[B, 1, H, p]``."""

    def __init__(self, cfg: MPDConfig, period: int, channels: int = 1):
        super().__init__()
        if period < 1:
            raise ValueError(f"period must be positive, got {period}")
        self.period = period
        self.channels = channels
        self.negative_slope = cfg.negative_slope
        k, pad = cfg.kernel_size, cfg.kernel_size // 2
        convs = []
        width = channels
        for i, out in enumerate(cfg.filters):
            stride = cfg.stride if i < len(cfg.filters) - 1 else 1
            convs.append(normed(nn.Conv2d(width, out, (k, 1), stride=(stride, 1), padding=(pad, 0)), cfg.norm))
            width = out
        self.convs = nn.ModuleList(convs)
        pk = cfg.post_kernel_size
        self.post = normed(nn.Conv2d(width, 1, (pk, 1), padding=(pk // 2, 0)), cfg.norm)

    def forward(self, wav: torch.Tensor) -> DiscriminatorOutput:
        check_audio(wav, self.channels, type(self).__name__)
        t = wav.shape[-1]
        extra = (-t) % self.period
        if extra:
            # Reflect needs more samples than it pads; very short inputs fall back to zeros.
            mode = "reflect" if extra < t else "constant"
            wav = F.pad(wav, (0, extra), mode=mode)
        x = rearrange(wav, "b c (n p) -> b c n p", p=self.period)
        features = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), self.negative_slope)
            features.append(x)
        return DiscriminatorOutput(logits=[self.post(x)], features=[features])


class MultiPeriodDiscriminator(MultiDiscriminator):
    """One :class:`PeriodDiscriminator` per period; members are named ``"p2"``, ``"p3"``, ..."""

    def __init__(self, cfg: MPDConfig | None = None, channels: int = 1):
        cfg = cfg or MPDConfig()
        if len(set(cfg.periods)) != len(cfg.periods):
            raise ValueError(f"MPDConfig.periods has duplicates: {cfg.periods}")
        super().__init__({f"p{p}": PeriodDiscriminator(cfg, p, channels) for p in cfg.periods})
        self.channels = channels

    def forward(self, wav: torch.Tensor) -> DiscriminatorOutput:
        check_audio(wav, self.channels, type(self).__name__)
        return super().forward(wav)
