"""The project's codec: a SEANet encoder, a residual vector quantizer and a SEANet decoder,
passed in as parts and held together behind the :class:`~codec.tokenizer.AudioTokenizer`
interface. Losses, optimizers and discriminators live outside (``codec/lightning_module.py``).
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, Iterator

import torch
from torch import nn

from codec.model import SEANetConfig, SEANetDecoder, SEANetEncoder
from codec.model.fourier import FourierConfig, FourierDecoder, FourierEncoder
from codec.quantize import QuantizerResult, ResidualVectorQuantizer, RVQConfig
from codec.stream import CodecStream
from codec.tokenizer import codec_id


DECODERS = ("seanet", "fourier")  # the kinds of encoder and of decoder


@dataclass
class CodecConfig:
    """sample_rate: Hz of the audio the codec reads and writes. seanet: encoder/decoder shape
    (``seanet.dimension`` is the latent width the quantizer sees). quantizer: the RVQ; its
    ``dimension`` is set from ``seanet.dimension``. encoder: ``seanet`` (strided convolutions from
    the waveform) or ``fourier`` (ConvNeXt blocks at the frame rate over a log-mel spectrogram).
    decoder: ``seanet`` (the mirror of the SEANet encoder, transposed convolutions up to the sample
    rate) or ``fourier`` (ConvNeXt blocks at the frame rate and an inverse STFT). The ``fourier``
    parts are shaped by ``fourier`` (``codec/model/fourier.py``); the hop is always
    ``prod(seanet.ratios)`` and the latent width ``seanet.dimension``."""

    sample_rate: int = 16000
    seanet: SEANetConfig = field(default_factory=SEANetConfig)
    quantizer: RVQConfig | None = None
    encoder: str = "seanet"
    decoder: str = "seanet"
    fourier: FourierConfig = field(default_factory=FourierConfig)

    def __post_init__(self) -> None:
        if isinstance(self.seanet, dict):
            self.seanet = SEANetConfig(**self.seanet)
        if isinstance(self.fourier, dict):
            self.fourier = FourierConfig(**self.fourier)
        for name in ("encoder", "decoder"):
            if getattr(self, name) not in DECODERS:
                raise ValueError(f"CodecConfig.{name} must be one of {DECODERS}, got {getattr(self, name)!r}")
        if "fourier" in (self.encoder, self.decoder):
            self.fourier.fft_size(self.seanet.hop_length)  # the hop and FFT size agree, or a clear error now
        q = self.quantizer
        if q is None:
            q = RVQConfig(dimension=self.seanet.dimension, n_q=8, bins=1024)
        elif isinstance(q, dict):
            q = RVQConfig(**{**q, "dimension": self.seanet.dimension})
        elif q.dimension != self.seanet.dimension:
            q = RVQConfig(**{**asdict(q), "dimension": self.seanet.dimension})
        self.quantizer = q

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["seanet"]["ratios"] = list(self.seanet.ratios)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "CodecConfig":
        return cls(sample_rate=d["sample_rate"], seanet=dict(d["seanet"]), quantizer=dict(d["quantizer"]),
                   encoder=d.get("encoder", "seanet"), decoder=d.get("decoder", "seanet"), fourier=dict(d.get("fourier") or {}))


@dataclass
class CodecOutput:
    """audio: ``[B, C, T]`` reconstruction (same length as the input); latent: ``[B, D, T']``
    encoder output; quantizer: the RVQ's result (codes ``[B, n_q, T']``, losses, usage)."""

    audio: torch.Tensor
    latent: torch.Tensor
    quantizer: QuantizerResult


class Codec(nn.Module):
    """Encoder + quantizer + decoder. ``encode`` / ``decode`` work on codes; ``forward`` trains."""

    def __init__(self, cfg: CodecConfig, encoder: nn.Module, quantizer: ResidualVectorQuantizer, decoder: nn.Module):
        super().__init__()
        self.cfg = cfg
        self.encoder, self.quantizer, self.decoder = encoder, quantizer, decoder
        self.sample_rate = cfg.sample_rate
        self.channels = cfg.seanet.channels
        self.hop_length = math.prod(cfg.seanet.ratios)
        self.frame_rate = cfg.sample_rate / self.hop_length
        self.num_codebooks = cfg.quantizer.n_q
        self.cardinality = cfg.quantizer.bins
        self._codec_id: str | None = None

    @property
    def codec_id(self) -> str:
        """Hash of weights and config; computed once per loaded model (call
        :meth:`refresh_codec_id` after changing weights)."""
        if self._codec_id is None:
            self._codec_id = codec_id(self.state_dict(), self.cfg.to_dict())
        return self._codec_id

    def refresh_codec_id(self) -> None:
        self._codec_id = None

    def bandwidth(self, num_codebooks: int) -> float:
        """kbps at ``num_codebooks`` levels."""
        return num_codebooks * math.log2(self.cardinality) * self.frame_rate / 1000

    def codebooks_for_bandwidth(self, kbps: float) -> int:
        per = math.log2(self.cardinality) * self.frame_rate / 1000
        k = int(round(kbps / per))
        if not 1 <= k <= self.num_codebooks:
            top = self.bandwidth(self.num_codebooks)
            raise ValueError(f"{kbps} kbps is outside this codec's range ({per:g} to {top:g} kbps in steps of {per:g})")
        return k

    def _check_audio(self, wav: torch.Tensor) -> None:
        if wav.dim() != 3 or wav.shape[1] != self.channels:
            raise ValueError(f"expected audio [B, {self.channels}, T], got {tuple(wav.shape)}")

    def forward(self, wav: torch.Tensor, n_q: int | None = None) -> CodecOutput:
        self._check_audio(wav)
        t = wav.shape[-1]
        latent = self.encoder(wav)  # [B, D, ceil(T / hop)]
        q = self.quantizer(latent, n_q)
        audio = self.decoder(q.quantized)[..., :t]  # [B, C, T]
        return CodecOutput(audio=audio, latent=latent, quantizer=q)

    @torch.no_grad()
    def encode(self, wav: torch.Tensor, num_codebooks: int | None = None) -> torch.Tensor:
        """``[B, C, T]`` -> codes ``[B, K, ceil(T / hop)]`` (``K = num_codebooks`` or all)."""
        self._check_audio(wav)
        k = num_codebooks or self.num_codebooks
        if not 1 <= k <= self.num_codebooks:
            raise ValueError(f"num_codebooks must be in 1..{self.num_codebooks}, got {k}")
        return self.quantizer.encode(self.encoder(wav), k)

    @torch.no_grad()
    def dequantize(self, codes: torch.Tensor) -> torch.Tensor:
        """codes ``[B, K, T']`` (any ``K <= num_codebooks``) -> the latent ``[B, D, T']`` the decoder
        reads: the sum of the first ``K`` levels' code vectors."""
        if codes.dim() != 3 or not 1 <= codes.shape[1] <= self.num_codebooks:
            raise ValueError(f"expected codes [B, 1..{self.num_codebooks}, T], got {tuple(codes.shape)}")
        if codes.min() < 0 or codes.max() >= self.cardinality:
            raise ValueError(f"codes must lie in [0, {self.cardinality})")
        return self.quantizer.decode(codes)

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """codes ``[B, K, T']`` (any ``K <= num_codebooks``) -> audio ``[B, C, T' * hop]``."""
        return self.decoder(self.dequantize(codes))

    # ---------------------------------------------------------------- streaming (codec/stream.py)
    def stream(self, batch_size: int = 1, num_codebooks: int | None = None) -> CodecStream:
        """A new stream through this codec, with its own state (any number may be open at once)."""
        return CodecStream(self, batch_size, num_codebooks)

    @contextmanager
    def streaming(self, batch_size: int = 1, num_codebooks: int | None = None) -> Iterator[CodecStream]:
        """Within the block, ``encode_step`` / ``flush`` / ``decode_step`` / ``reset_streaming`` of
        the codec run one stream (also yielded); a non-causal codec refuses with one line."""
        if getattr(self, "_default_stream", None) is not None:
            raise RuntimeError("this codec is already streaming: open a second stream with codec.stream()")
        self._default_stream = self.stream(batch_size, num_codebooks)
        try:
            yield self._default_stream
        finally:
            self._default_stream = None

    def _current_stream(self) -> CodecStream:
        s = getattr(self, "_default_stream", None)
        if s is None:
            raise RuntimeError("not streaming: use `with codec.streaming(batch_size):` (or codec.stream())")
        return s

    def encode_step(self, wav: torch.Tensor) -> torch.Tensor:
        """Inside ``streaming()``: a chunk of any length -> codes of the frames it completes."""
        return self._current_stream().encode_step(wav)

    def flush(self) -> torch.Tensor:
        """Inside ``streaming()``: the codes of the last, partial frame; ends the input."""
        return self._current_stream().flush()

    def decode_step(self, codes: torch.Tensor) -> torch.Tensor:
        """Inside ``streaming()``: codes of the next frames -> the audio they add."""
        return self._current_stream().decode_step(codes)

    def reset_streaming(self) -> None:
        self._current_stream().reset()


def build_codec(cfg: CodecConfig) -> Codec:
    s = cfg.seanet
    # the decoder is built first: a seed gives the same weights as it always has
    decoder: nn.Module = (FourierDecoder(cfg.fourier, s.dimension, s.channels, s.hop_length) if cfg.decoder == "fourier"
                          else SEANetDecoder(s))
    encoder: nn.Module = (FourierEncoder(cfg.fourier, s.dimension, s.channels, s.hop_length, cfg.sample_rate)
                          if cfg.encoder == "fourier" else SEANetEncoder(s))
    return Codec(cfg, encoder, ResidualVectorQuantizer(cfg.quantizer), decoder)
