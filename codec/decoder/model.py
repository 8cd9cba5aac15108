"""A decoder of a frozen codec's tokens: dequantized latent of ``k`` codebooks -> audio.

:class:`TokenDecoder` reads the latent ``[B, D, T']`` the codec's quantizer gives for the first
``k`` codebooks (``Codec.dequantize`` / ``EncodecTokenizer.dequantize``) and ``k`` itself, and
returns ``[B, C, T' * hop]``. Its ``istft`` head is a :class:`~codec.model.fourier.FourierDecoder`
(a 1-D conv, ConvNeXt blocks at the frame rate, a linear head to log-magnitudes and phases, an
exact inverse STFT); its ``flow`` head the same backbone drawing the STFT from noise in a few
steps (:class:`~codec.decoder.flow.FlowDecoder`). In both every LayerNorm takes its scale and
shift from an embedding of ``k`` (:class:`~codec.model.fourier.AdaLayerNorm`): the latent of one
codebook is far coarser than that of eight, and the network is told which it reads.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from codec.decoder.flow import FlowConfig, FlowDecoder
from codec.model.fourier import FourierConfig, FourierDecoder

HEADS = ("istft", "flow")


@dataclass
class DecoderConfig:
    """head: ``istft`` (one GAN-trained step, magnitude and phase per STFT bin) or ``flow`` (a
    few Euler steps of a flow-matching model of the STFT, :mod:`codec.decoder.flow`). fourier: the
    ConvNeXt stack and STFT of either head (:class:`~codec.model.fourier.FourierConfig`; its
    encoder fields are unused). flow: the flow head's settings (:class:`FlowConfig`)."""

    head: str = "istft"
    fourier: FourierConfig = field(default_factory=FourierConfig)
    flow: FlowConfig = field(default_factory=FlowConfig)

    def __post_init__(self) -> None:
        if isinstance(self.fourier, dict):
            self.fourier = FourierConfig(**self.fourier)
        if isinstance(self.flow, dict):
            self.flow = FlowConfig(**self.flow)
        if self.head not in HEADS:
            raise ValueError(f"DecoderConfig.head must be one of {HEADS}, got {self.head!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "DecoderConfig":
        return cls(head=d.get("head", "istft"), fourier=dict(d.get("fourier") or {}), flow=dict(d.get("flow") or {}))


@dataclass(frozen=True)
class CodecShape:
    """What a decoder must know of the codec whose tokens it reads."""

    sample_rate: int
    channels: int
    hop_length: int
    dimension: int
    num_codebooks: int
    cardinality: int

    @classmethod
    def of(cls, tokenizer: Any) -> "CodecShape":
        """The shape of a project codec (``Codec``) or an ``EncodecTokenizer``."""
        codec = getattr(tokenizer, "codec", tokenizer)  # a CodebookLimit holds a Codec
        if hasattr(codec, "quantizer") and hasattr(codec, "cfg"):
            dimension, hop = codec.cfg.seanet.dimension, codec.hop_length
        elif hasattr(codec, "model") and hasattr(codec.model, "quantizer"):
            dimension, hop = int(codec.model.quantizer.dimension), int(codec.hop_length)
        else:
            raise ValueError(f"{type(codec).__name__} exposes no dequantized latent: a second decoder reads the "
                             "tokens of a codeclm codec or of encodec24k")
        return cls(int(codec.sample_rate), int(codec.channels), int(hop), int(dimension),
                   int(codec.num_codebooks), int(codec.cardinality))


class TokenDecoder(nn.Module):
    """``forward(latent [B, D, T'], k)`` -> audio ``[B, C, T' * hop]`` (``k``: an int or ``[B]``
    ints in ``1..num_codebooks``, how many codebooks made the latent)."""

    def __init__(self, cfg: DecoderConfig, shape: CodecShape) -> None:
        super().__init__()
        self.cfg, self.shape = cfg, shape
        self.sample_rate, self.channels, self.hop_length = shape.sample_rate, shape.channels, shape.hop_length
        self.num_codebooks = shape.num_codebooks
        if cfg.head == "flow":
            self.net: nn.Module = FlowDecoder(cfg.fourier, cfg.flow, shape.dimension, shape.channels,
                                              shape.hop_length, conditions=shape.num_codebooks)
        else:
            self.net = FourierDecoder(cfg.fourier, shape.dimension, shape.channels, shape.hop_length,
                                      conditions=shape.num_codebooks)

    def conditions(self, latent: torch.Tensor, k: int | torch.Tensor) -> torch.Tensor:
        """``k`` as condition indices ``[B]`` (``k - 1``), checked."""
        b = latent.shape[0]
        k = torch.as_tensor(k, device=latent.device, dtype=torch.long).reshape(-1).expand(b) if not (
            isinstance(k, torch.Tensor) and k.dim() == 1) else k.to(latent.device, torch.long)
        if k.shape[0] != b:
            raise ValueError(f"k gives {k.shape[0]} codebook counts for a batch of {b}")
        if int(k.min()) < 1 or int(k.max()) > self.num_codebooks:
            raise ValueError(f"k must lie in 1..{self.num_codebooks} (the codebooks this decoder was trained for), "
                             f"got {sorted(set(k.tolist()))}")
        return k - 1

    def forward(self, latent: torch.Tensor, k: int | torch.Tensor, wav: torch.Tensor | None = None,
                sample_steps: int = 0, noise: torch.Tensor | None = None):
        """Audio from the latent. A ``flow`` head given the target ``wav`` returns what trains it,
        from one forward as DDP wants: ``(flow-matching loss, clean-signal estimate, audio of
        sample_steps Euler steps from noise, or None when 0)``."""
        c = self.conditions(latent, k)
        if wav is None:
            return self.net(latent, c)
        if self.cfg.head != "flow":
            raise ValueError("only a flow decoder takes the target audio")
        loss, clean = self.net.loss(latent, c, wav)
        fake = self.net.sample(latent, c, sample_steps, noise) if sample_steps else None
        return loss, clean, fake

    @torch.no_grad()
    def init_from(self, source: nn.Module) -> None:
        """Start from a codec's own :class:`FourierDecoder` of the same shape: every weight copied,
        each norm's scale and shift copied for every ``k``, so training starts from the codec's
        decoder's output at every bitrate, and only has to improve on it."""
        if self.cfg.head != "istft":
            raise ValueError(f"a {self.cfg.head} decoder cannot start from the codec's decoder: set init_from_codec: false")
        if not isinstance(source, FourierDecoder):
            raise ValueError(f"the codec's decoder is a {type(source).__name__}: a decoder can start from a codec's "
                             "decoder only when it is a FourierDecoder (decoder: fourier)")
        theirs = source.state_dict()
        mine = self.net.state_dict()
        plain = [k for k in mine if not k.endswith((".scale.weight", ".shift.weight"))]
        norms = sorted({k.rsplit(".", 2)[0] for k in mine if k.endswith(".scale.weight")})
        want = set(plain) | {f"{n}.{p}" for n in norms for p in ("weight", "bias")}
        if want != set(theirs) or any(tuple(theirs[k].shape) != tuple(mine[k].shape) for k in plain):
            raise ValueError("the codec's decoder has another shape than this decoder's config "
                             f"(codec: {source.cfg}, decoder: {self.cfg.fourier}): make decoder.fourier match it, "
                             "or start from scratch (init_from_codec: false)")
        for k in plain:
            mine[k].copy_(theirs[k])
        for n in norms:
            mine[f"{n}.scale.weight"].copy_(theirs[f"{n}.weight"].expand_as(mine[f"{n}.scale.weight"]))
            mine[f"{n}.shift.weight"].copy_(theirs[f"{n}.bias"].expand_as(mine[f"{n}.shift.weight"]))
