"""Multi-scale complex STFT discriminator (EnCodec lineage).

Each scale looks at the real and imaginary parts of one STFT, stacked as ``2C`` input channels
over a ``[frames, bins]`` plane, through 2-D convs that stride along frequency and dilate along
time. Defaults follow the published model (32 filters, n_fft 1024/2048/512 with hop n_fft/4).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from einops import rearrange
from torch import nn
from torch.nn import functional as F

from codec.discriminators.base import (
    DiscriminatorOutput,
    MultiDiscriminator,
    check_audio,
    float32_stft,
    normed,
    same_padding,
)


@dataclass
class MSSTFTConfig:
    """Sizes of the multi-scale STFT discriminator; ``n_ffts``, ``hop_lengths``, ``win_lengths`` align."""

    filters: int = 32
    max_filters: int = 1024
    filters_scale: int = 1
    kernel_size: tuple[int, int] = (3, 9)
    dilations: tuple[int, ...] = (1, 2, 4)
    stride: tuple[int, int] = (1, 2)
    n_ffts: tuple[int, ...] = (1024, 2048, 512)
    hop_lengths: tuple[int, ...] = (256, 512, 128)
    win_lengths: tuple[int, ...] = (1024, 2048, 512)
    normalized: bool = True
    negative_slope: float = 0.2
    norm: str = "weight"

    def __post_init__(self) -> None:
        if not (len(self.n_ffts) == len(self.hop_lengths) == len(self.win_lengths)):
            raise ValueError(
                f"MSSTFTConfig: n_ffts {self.n_ffts}, hop_lengths {self.hop_lengths} and "
                f"win_lengths {self.win_lengths} must have the same length"
            )


class STFTDiscriminator(nn.Module):
    """One scale: complex STFT ``[B, 2C, frames, bins]`` -> conv stack -> logits ``[B, 1, frames, bins']``."""

    def __init__(self, cfg: MSSTFTConfig, n_fft: int, hop_length: int, win_length: int, channels: int = 1):
        super().__init__()
        if win_length > n_fft:
            raise ValueError(f"STFT window {win_length} is longer than n_fft {n_fft}")
        self.channels = channels
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.normalized = cfg.normalized
        self.negative_slope = cfg.negative_slope
        self.register_buffer("window", torch.hann_window(win_length), persistent=False)

        k = tuple(cfg.kernel_size)
        convs = [normed(nn.Conv2d(2 * channels, cfg.filters, k, padding=same_padding(k)), cfg.norm)]
        width = cfg.filters
        for i, d in enumerate(cfg.dilations):
            out = min(cfg.filters_scale ** (i + 1) * cfg.filters, cfg.max_filters)
            pad = same_padding(k, (d, 1))
            conv = nn.Conv2d(width, out, k, stride=tuple(cfg.stride), dilation=(d, 1), padding=pad)
            convs.append(normed(conv, cfg.norm))
            width = out
        square = (k[0], k[0])
        convs.append(normed(nn.Conv2d(width, width, square, padding=same_padding(square)), cfg.norm))
        self.convs = nn.ModuleList(convs)
        self.post = normed(nn.Conv2d(width, 1, k, padding=same_padding(k)), cfg.norm)

    def forward(self, wav: torch.Tensor) -> DiscriminatorOutput:
        check_audio(wav, self.channels, type(self).__name__)
        spec = float32_stft(wav, self.n_fft, self.hop_length, self.window)  # [B, C, F, N] complex
        if self.normalized:
            spec = spec / self.window.float().pow(2).sum().sqrt()
        x = rearrange(torch.view_as_real(spec), "b c f n ri -> b (c ri) n f")
        features = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), self.negative_slope)
            features.append(x)
        return DiscriminatorOutput(logits=[self.post(x)], features=[features])


class MultiScaleSTFTDiscriminator(MultiDiscriminator):
    """One :class:`STFTDiscriminator` per (n_fft, hop, window) triple; members are named ``"0"``, ``"1"``, ..."""

    def __init__(self, cfg: MSSTFTConfig | None = None, channels: int = 1):
        cfg = cfg or MSSTFTConfig()
        scales = zip(cfg.n_ffts, cfg.hop_lengths, cfg.win_lengths)
        super().__init__([STFTDiscriminator(cfg, n, h, w, channels) for n, h, w in scales])
        self.channels = channels

    def forward(self, wav: torch.Tensor) -> DiscriminatorOutput:
        check_audio(wav, self.channels, type(self).__name__)
        return super().forward(wav)
