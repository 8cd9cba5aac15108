"""SEANet convolutional encoder and decoder (the EnCodec / SoundStream layout).

Encoder ``[B, C, T] -> [B, D, ceil(T / hop)]``; decoder ``[B, D, T'] -> [B, C, T' * hop]``,
with ``hop = prod(ratios)``. ``ratios`` are given in decoder (upsampling) order; the encoder
downsamples by them in reverse order. Each stage holds ``n_residual_layers`` residual units
with dilations ``dilation_base ** j``; channels double at each downsampling (halve at each
upsampling) from ``n_filters`` at the waveform end to ``n_filters * 2 ** len(ratios)`` at the
bottleneck, where an optional LSTM or transformer runs. The decoder's output is linear (no
final activation), so its range is not bounded to [-1, 1].

With ``causal=True`` both models stream (``with model.streaming(): model(chunk)``), see
``codec.model.conv``: feeding the encoder chunks whose lengths are multiples of ``hop_length``
(and the decoder any number of frames per chunk) gives outputs equal to one full pass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from codec.model.activations import ACTIVATIONS, make_activation
from codec.model.bottleneck import LSTMBottleneck, TransformerBottleneck
from codec.model.conv import (
    NORMS,
    PAD_MODES,
    StreamableConv1d,
    StreamableConvTranspose1d,
    StreamingModule,
)

BOTTLENECKS = ("lstm", "transformer", "none")


@dataclass
class SEANetConfig:
    """Shape of a SEANet encoder/decoder pair.

    channels: audio channels C. dimension: latent channels D. n_filters: channels of the first
    (and last) conv. ratios: up/downsampling strides in decoder order. compress: residual units
    narrow their hidden channels by this factor. true_skip: identity shortcut in residual units
    (else a 1x1 conv). norm: ``weight_norm`` or ``none``. pad_mode: padding filler of a full pass
    (``constant`` zeros, needed for streaming; ``reflect``; ``replicate``). bottleneck:
    ``lstm``, ``transformer`` or ``none``, with ``bottleneck_layers`` layers; the transformer
    uses ``bottleneck_heads`` heads and, when causal, ``bottleneck_context`` frames of context
    (``None``: unlimited).
    """

    channels: int = 1
    dimension: int = 128
    n_filters: int = 32
    ratios: tuple[int, ...] = (8, 5, 4, 2)
    n_residual_layers: int = 1
    dilation_base: int = 2
    kernel_size: int = 7
    residual_kernel_size: int = 3
    last_kernel_size: int = 7
    activation: str = "elu"
    causal: bool = False
    norm: str = "weight_norm"
    pad_mode: str = "constant"
    bottleneck: str = "lstm"
    bottleneck_layers: int = 2
    bottleneck_heads: int = 4
    bottleneck_context: int | None = None
    compress: int = 2
    true_skip: bool = True

    def __post_init__(self) -> None:
        self.ratios = tuple(int(r) for r in self.ratios)
        choices = {
            "activation": ACTIVATIONS,
            "norm": NORMS,
            "pad_mode": PAD_MODES,
            "bottleneck": BOTTLENECKS,
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(
                    f"SEANetConfig.{name} must be one of {allowed}, got {getattr(self, name)!r}"
                )
        if not self.ratios or any(r < 1 for r in self.ratios):
            raise ValueError(f"SEANetConfig.ratios must be positive integers, got {self.ratios}")
        for name in ("channels", "dimension", "n_filters", "compress", "dilation_base"):
            if getattr(self, name) < 1:
                raise ValueError(f"SEANetConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.n_filters < self.compress:
            raise ValueError("SEANetConfig.n_filters must be >= compress")

    @property
    def hop_length(self) -> int:
        return math.prod(self.ratios)

    @property
    def bottleneck_channels(self) -> int:
        """Channels at the narrowest point, where the bottleneck runs."""
        return self.n_filters * 2 ** len(self.ratios)


class SEANetResidualUnit(StreamingModule):
    """``x + conv1x1(act(conv_k,dilated(act(x))))`` at ``dim`` channels: ``[B, dim, T]`` kept.

    The inner conv narrows to ``dim // compress`` channels.
    """

    def __init__(self, cfg: SEANetConfig, dim: int, dilation: int) -> None:
        super().__init__()
        hidden = dim // cfg.compress
        conv = dict(causal=cfg.causal, norm=cfg.norm, pad_mode=cfg.pad_mode)
        self.block = nn.Sequential(
            make_activation(cfg.activation, dim),
            StreamableConv1d(dim, hidden, cfg.residual_kernel_size, dilation=dilation, **conv),
            make_activation(cfg.activation, hidden),
            StreamableConv1d(hidden, dim, 1, **conv),
        )
        self.shortcut = nn.Identity() if cfg.true_skip else StreamableConv1d(dim, dim, 1, **conv)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.block(x)


def _stage_units(cfg: SEANetConfig, dim: int) -> list[nn.Module]:
    return [
        SEANetResidualUnit(cfg, dim, cfg.dilation_base**j) for j in range(cfg.n_residual_layers)
    ]


def make_bottleneck(cfg: SEANetConfig, dim: int) -> nn.Module:
    """The sequence model named by ``cfg.bottleneck`` at ``dim`` channels (identity for none)."""
    if cfg.bottleneck == "lstm":
        return LSTMBottleneck(dim, cfg.bottleneck_layers, skip=True)
    if cfg.bottleneck == "transformer":
        return TransformerBottleneck(
            dim, cfg.bottleneck_layers, cfg.bottleneck_heads, cfg.causal, cfg.bottleneck_context
        )
    return nn.Identity()


class SEANetEncoder(StreamingModule):
    """Waveform to latent frames: ``[B, C, T] -> [B, D, ceil(T / hop_length)]``.

    conv(C -> n_filters), then per ratio (reversed): residual units, activation, strided conv
    (kernel ``2 * ratio``) doubling the channels; then the bottleneck, activation, and
    conv(-> D). When causal, frame ``i`` depends only on samples ``< (i + 1) * hop``.
    """

    def __init__(self, cfg: SEANetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        conv = dict(causal=cfg.causal, norm=cfg.norm, pad_mode=cfg.pad_mode)
        layers: list[nn.Module] = [
            StreamableConv1d(cfg.channels, cfg.n_filters, cfg.kernel_size, **conv)
        ]
        dim = cfg.n_filters
        for ratio in reversed(cfg.ratios):
            layers += _stage_units(cfg, dim)
            layers += [
                make_activation(cfg.activation, dim),
                StreamableConv1d(dim, 2 * dim, 2 * ratio, stride=ratio, **conv),
            ]
            dim *= 2
        layers += [
            make_bottleneck(cfg, dim),
            make_activation(cfg.activation, dim),
            StreamableConv1d(dim, cfg.dimension, cfg.last_kernel_size, **conv),
        ]
        self.model = nn.Sequential(*layers)

    @property
    def hop_length(self) -> int:
        return self.cfg.hop_length

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C, T] -> [B, D, ceil(T / hop_length)]``; streaming: that chunk's frames."""
        if x.dim() != 3 or x.shape[1] != self.cfg.channels:
            raise ValueError(
                f"SEANetEncoder expects audio [B, {self.cfg.channels}, T], got {tuple(x.shape)}"
            )
        return self.model(x)


class SEANetDecoder(StreamingModule):
    """Latent frames to waveform: ``[B, D, T'] -> [B, C, T' * hop_length]``.

    conv(D -> n_filters * 2**len(ratios)), the bottleneck, then per ratio: activation,
    transposed conv (kernel ``2 * ratio``) halving the channels, residual units; then
    activation and conv(-> C). The output is linear: no final activation.
    """

    def __init__(self, cfg: SEANetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        conv = dict(causal=cfg.causal, norm=cfg.norm, pad_mode=cfg.pad_mode)
        dim = cfg.bottleneck_channels
        layers: list[nn.Module] = [
            StreamableConv1d(cfg.dimension, dim, cfg.kernel_size, **conv),
            make_bottleneck(cfg, dim),
        ]
        for ratio in cfg.ratios:
            layers += [
                make_activation(cfg.activation, dim),
                StreamableConvTranspose1d(
                    dim, dim // 2, 2 * ratio, stride=ratio, causal=cfg.causal, norm=cfg.norm
                ),
            ]
            dim //= 2
            layers += _stage_units(cfg, dim)
        layers += [
            make_activation(cfg.activation, dim),
            StreamableConv1d(dim, cfg.channels, cfg.last_kernel_size, **conv),
        ]
        self.model = nn.Sequential(*layers)

    @property
    def hop_length(self) -> int:
        return self.cfg.hop_length

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """``[B, D, T'] -> [B, C, T' * hop_length]`` (also per chunk when streaming)."""
        if z.dim() != 3 or z.shape[1] != self.cfg.dimension:
            raise ValueError(
                f"SEANetDecoder expects latents [B, {self.cfg.dimension}, T'], got {tuple(z.shape)}"
            )
        return self.model(z)
