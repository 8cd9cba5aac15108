"""Multi-resolution magnitude spectrogram discriminator (UnivNet lineage).

Each resolution computes a linear magnitude spectrogram ``[B, C, bins, frames]`` and runs 2-D
convs that stride along time. Defaults follow the published model (resolutions
(1024, 120, 600), (2048, 240, 1200), (512, 50, 240) as n_fft, hop, window; 32 filters).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
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
class MRSDConfig:
    """Sizes of the multi-resolution spectrogram discriminator; ``n_ffts``, ``hop_lengths``, ``win_lengths`` align."""

    n_ffts: tuple[int, ...] = (1024, 2048, 512)
    hop_lengths: tuple[int, ...] = (120, 240, 50)
    win_lengths: tuple[int, ...] = (600, 1200, 240)
    filters: int = 32
    strided_layers: int = 3
    kernel_size: tuple[int, int] = (3, 9)
    stride: tuple[int, int] = (1, 2)
    negative_slope: float = 0.2
    norm: str = "weight"

    def __post_init__(self) -> None:
        if not (len(self.n_ffts) == len(self.hop_lengths) == len(self.win_lengths)):
            raise ValueError(
                f"MRSDConfig: n_ffts {self.n_ffts}, hop_lengths {self.hop_lengths} and "
                f"win_lengths {self.win_lengths} must have the same length"
            )


class SpectrogramDiscriminator(nn.Module):
    """One resolution: magnitude ``[B, C, bins, frames]`` -> conv stack -> logits ``[B, 1, bins, frames']``."""

    def __init__(self, cfg: MRSDConfig, n_fft: int, hop_length: int, win_length: int, channels: int = 1):
        super().__init__()
        if win_length > n_fft:
            raise ValueError(f"STFT window {win_length} is longer than n_fft {n_fft}")
        self.channels = channels
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.negative_slope = cfg.negative_slope
        self.register_buffer("window", torch.hann_window(win_length), persistent=False)

        k = tuple(cfg.kernel_size)
        pad = same_padding(k)
        convs = [normed(nn.Conv2d(channels, cfg.filters, k, padding=pad), cfg.norm)]
        for _ in range(cfg.strided_layers):
            convs.append(normed(nn.Conv2d(cfg.filters, cfg.filters, k, stride=tuple(cfg.stride), padding=pad), cfg.norm))
        square = (k[0], k[0])
        convs.append(normed(nn.Conv2d(cfg.filters, cfg.filters, square, padding=same_padding(square)), cfg.norm))
        self.convs = nn.ModuleList(convs)
        self.post = normed(nn.Conv2d(cfg.filters, 1, square, padding=same_padding(square)), cfg.norm)

    def forward(self, wav: torch.Tensor) -> DiscriminatorOutput:
        check_audio(wav, self.channels, type(self).__name__)
        # Pad so that frames cover the signal the way a centered STFT would, with no extra frame.
        side = (self.n_fft - self.hop_length) // 2
        mode = "reflect" if side < wav.shape[-1] else "constant"
        padded = F.pad(wav.float(), (side, side), mode=mode)
        x = float32_stft(padded, self.n_fft, self.hop_length, self.window).abs()  # [B, C, F, N]
        features = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), self.negative_slope)
            features.append(x)
        return DiscriminatorOutput(logits=[self.post(x)], features=[features])


class MultiResolutionSpectrogramDiscriminator(MultiDiscriminator):
    """One :class:`SpectrogramDiscriminator` per (n_fft, hop, window) triple; members named ``"0"``, ``"1"``, ..."""

    def __init__(self, cfg: MRSDConfig | None = None, channels: int = 1):
        cfg = cfg or MRSDConfig()
        scales = zip(cfg.n_ffts, cfg.hop_lengths, cfg.win_lengths)
        super().__init__([SpectrogramDiscriminator(cfg, n, h, w, channels) for n, h, w in scales])
        self.channels = channels

    def forward(self, wav: torch.Tensor) -> DiscriminatorOutput:
        check_audio(wav, self.channels, type(self).__name__)
        return super().forward(wav)
