"""EnCodec as an :class:`~codec.tokenizer.AudioTokenizer`: an adapter over the ``encodec`` package.

The package's own ``EncodecModel`` does the work, so the codes equal its ``encode`` output bit for
bit (its frames concatenated along time). ``encodec24k``: 24 kHz mono, 75 codes/s, 1.5/3/6/12/24
kbps = 2/4/8/16/32 codebooks. ``encodec48k``: 48 kHz stereo, 150 codes/s, 3/6/12/24 kbps = 2/4/8/16.

The 48 kHz model and its scales
-------------------------------
It encodes 1 s segments that overlap by 1 % (one every 0.99 s) and normalizes each to unit
loudness first, so every segment has a *scale* (its RMS level) that the codes do not carry.

- :meth:`EncodecTokenizer.encode` concatenates the segments' codes along time (``[B, K, T']``, a
  little over 150 codes per second because of the overlap) and drops the scales;
- :meth:`EncodecTokenizer.encode_with_scales` returns an :class:`EncodecEncoding`: the same codes
  and the scales ``[B, S]``, one column per segment;
- :meth:`EncodecTokenizer.decode` takes the scales as an optional argument: with them it equals the
  package's ``decode`` bit for bit; without them each segment is decoded at unit scale, i.e.
  loudness-normalized audio (what codes from a language model give).

Where each segment's codes start is a function of ``T'`` alone (:func:`segment_layout`), so decoding
needs no state kept from encoding. The 24 kHz model has one segment and no scales.

Weights (:mod:`codec.encodec_weights`) come from the package's pretrained loader (a download) or
from a local file, e.g. ``EncodecTokenizer.from_spec("encodec24k:/path/encodec_24khz-d7cc33bc.th")``,
read with ``torch.load(..., weights_only=True)`` or as ``.safetensors``: never by unpickling
arbitrary objects.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
from encodec import EncodecModel

from codec.encodec_weights import VARIANTS, load_pretrained, load_weights_file
from codec.tokenizer import codec_id as _codec_id


@dataclass(frozen=True)
class EncodecEncoding:
    """Codes ``[B, K, T']`` (int64) and, for the 48 kHz model, per-segment scales ``[B, S]``."""

    codes: torch.Tensor
    scales: torch.Tensor | None


def segment_layout(num_frames: int, segment_length: int | None, stride: int | None, hop: int) -> tuple[int, ...]:
    """How many of ``num_frames`` codes each encoded segment holds, in order.

    The package cuts ``T`` samples into segments starting at ``0, stride, 2 * stride, ...`` (while
    ``< T``), each ``segment_length`` samples or what is left; ``n`` samples give ``ceil(n / hop)``
    codes. The total grows with ``T`` and each total comes from one layout only, so the smallest
    ``T`` that reaches ``num_frames`` codes gives the layout.
    """
    if num_frames < 1:
        raise ValueError(f"need at least one code frame, got {num_frames}")
    if segment_length is None or stride is None:
        return (num_frames,)

    def layout(length: int) -> tuple[int, ...]:
        return tuple(math.ceil(min(segment_length, length - start) / hop) for start in range(0, length, stride))

    lo, hi = 1, num_frames * hop  # layout(hi) holds at least ceil(hi / hop) = num_frames codes
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if sum(layout(mid)) >= num_frames else (mid + 1, hi)
    found = layout(lo)
    if sum(found) != num_frames:
        raise ValueError(f"no audio length encodes to exactly {num_frames} code frames")
    return found


class EncodecTokenizer:
    """The ``encodec`` package's ``EncodecModel`` behind the :class:`AudioTokenizer` interface.

    ``bandwidth`` (kbps, default: the highest) sets how many codebooks ``encode`` returns;
    ``encode(..., num_codebooks=K)`` picks the bandwidth giving ``K`` for one call. Inputs move to the
    tokenizer's device (:meth:`to`) and results stay there. The weights are treated as frozen.
    ``frame_rate`` counts codes per second within a segment (the 48 kHz overlap adds ~1 per second).
    """

    def __init__(self, model: EncodecModel, bandwidth: float | None = None) -> None:
        self.model = model.eval()
        self.sample_rate = int(model.sample_rate)
        self.channels = int(model.channels)
        self.frame_rate = float(model.frame_rate)
        self.hop_length = int(model.encoder.hop_length)
        self.cardinality = int(model.quantizer.bins)
        self.bandwidths = tuple(float(b) for b in model.target_bandwidths)
        per_q = model.quantizer.get_num_quantizers_for_bandwidth
        self.codebooks_per_bandwidth = {b: per_q(model.frame_rate, b) for b in self.bandwidths}
        self.num_codebooks = max(self.codebooks_per_bandwidth.values())
        self._id: str | None = None
        self._bandwidth = max(self.bandwidths)
        if bandwidth is not None:
            self.set_bandwidth(bandwidth)

    @classmethod
    def from_spec(
        cls, spec: str, bandwidth: float | None = None, device: str | torch.device = "cpu"
    ) -> EncodecTokenizer:
        """``"encodec24k"`` / ``"encodec48k"`` (pretrained download) or ``"NAME:/path/weights.th"``."""
        name, sep, path = spec.partition(":")
        variant = VARIANTS.get(name.strip().lower())
        if variant is None:
            raise ValueError(f"unknown EnCodec spec {spec!r}: use 'encodec24k' or 'encodec48k', "
                             "optionally followed by ':/path/to/weights.th'")
        if sep and not path.strip():
            raise ValueError(f"EnCodec spec {spec!r} names no weights file: "
                             f"write '{variant.spec}:/path/to/{variant.checkpoint}'")
        model = load_weights_file(variant, Path(path.strip())) if sep else load_pretrained(variant)
        return cls(model, bandwidth).to(device)

    def to(self, device: str | torch.device) -> EncodecTokenizer:
        self.model.to(device)
        return self

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def bandwidth(self) -> float:
        return self._bandwidth

    def set_bandwidth(self, kbps: float) -> None:
        if float(kbps) not in self.bandwidths:
            raise ValueError(f"{self.model.name} has no {kbps} kbps bandwidth: choose one of {list(self.bandwidths)}")
        self._bandwidth = float(kbps)

    @property
    def codec_id(self) -> str:
        """Hash of the weights and ``{"codec", "model", "sample_rate", "channels"}``. Like the
        project's codec, the id does not name a bandwidth: codes at a lower bandwidth are the first
        codebooks of those at a higher one, so any number of codebooks shares the id."""
        if self._id is None:
            config = {"codec": "encodec", "model": self.model.name, "sample_rate": self.sample_rate,
                      "channels": self.channels}
            self._id = _codec_id(self.model.state_dict(), config)
        return self._id

    def encode(self, wav: torch.Tensor, num_codebooks: int | None = None) -> torch.Tensor:
        """Audio ``[B, C, T]`` -> codes ``[B, K, T']``: the package's frames concatenated along time."""
        return self.encode_with_scales(wav, num_codebooks).codes

    def encode_with_scales(self, wav: torch.Tensor, num_codebooks: int | None = None) -> EncodecEncoding:
        """The codes :meth:`encode` gives, with the 48 kHz model's per-segment scales ``[B, S]``."""
        bandwidth = self._bandwidth_for(num_codebooks)
        x = self._check_wav(wav)
        with torch.no_grad():
            self.model.set_target_bandwidth(bandwidth)  # the package reads it from the model
            frames = self.model.encode(x)
        codes = torch.cat([c for c, _ in frames], dim=-1)
        scales = None if frames[0][1] is None else torch.cat([s for _, s in frames], dim=1)
        return EncodecEncoding(codes=codes, scales=scales)

    def decode(self, codes: torch.Tensor, scales: torch.Tensor | None = None) -> torch.Tensor:
        """Codes ``[B, K, T']`` (any ``K`` up to ``num_codebooks``) -> audio ``[B, C, T]``.

        ``T`` is ``T' * hop_length`` for one segment, else the overlap-added length. For the 48 kHz
        model, ``scales`` ``[B, S]`` from :meth:`encode_with_scales` restore each segment's level.
        """
        codes = self._check_codes(codes)
        batch, _, num_frames = codes.shape
        model = self.model
        layout = segment_layout(num_frames, model.segment_length, model.segment_stride, self.hop_length)
        if scales is not None:
            if not model.normalize:
                raise ValueError(f"{model.name} has no per-segment scales: call decode(codes) without scales")
            if tuple(scales.shape) != (batch, len(layout)):
                raise ValueError(f"scales must be [B, S] = [{batch}, {len(layout)}] for {num_frames} code frames, "
                                 f"got {tuple(scales.shape)}: pass the scales encode_with_scales gave with the codes")
            scales = scales.to(self.device, torch.float32)
        pieces = torch.split(codes, list(layout), dim=-1)
        frames = [(piece, None if scales is None else scales[:, i : i + 1]) for i, piece in enumerate(pieces)]
        with torch.no_grad():
            return model.decode(frames)

    def dequantize(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes ``[B, K, T']`` -> the latent ``[B, D, T']`` the model's decoder reads (the sum of the
        first ``K`` codebooks' vectors). Only for models that code audio in one segment (24 kHz): the
        48 kHz model's segments are scaled one by one, which a latent cannot carry."""
        codes = self._check_codes(codes)
        if self.model.segment_length is not None:
            raise ValueError(f"{self.model.name} codes audio in scaled segments: a second decoder reads the "
                             "latent of a one-segment model (encodec24k)")
        with torch.no_grad():
            return self.model.quantizer.decode(codes.transpose(0, 1))

    def _bandwidth_for(self, num_codebooks: int | None) -> float:
        if num_codebooks is None:
            return self._bandwidth
        for bandwidth, k in self.codebooks_per_bandwidth.items():
            if k == num_codebooks:
                return bandwidth
        options = ", ".join(f"{k} ({b:g} kbps)" for b, k in self.codebooks_per_bandwidth.items())
        raise ValueError(f"{self.model.name} encodes {options} codebooks, not {num_codebooks}")

    def _check_wav(self, wav: torch.Tensor) -> torch.Tensor:
        name = self.model.name
        if not isinstance(wav, torch.Tensor) or wav.dim() != 3 or wav.shape[1] != self.channels:
            shape = tuple(wav.shape) if isinstance(wav, torch.Tensor) else type(wav).__name__
            raise ValueError(f"{name} encodes audio [B, {self.channels}, T], got {shape}")
        if wav.shape[0] == 0 or wav.shape[-1] == 0:
            raise ValueError(f"{name} got empty audio of shape {tuple(wav.shape)}")
        if not wav.is_floating_point() or not torch.isfinite(wav).all():
            raise ValueError(f"{name} encodes finite floating-point audio, got {wav.dtype} (or NaN/Inf values)")
        return wav.to(self.device, torch.float32)

    def _check_codes(self, codes: torch.Tensor) -> torch.Tensor:
        name, k_max = self.model.name, self.num_codebooks
        if not isinstance(codes, torch.Tensor) or codes.dim() != 3 or codes.is_floating_point():
            shape = tuple(codes.shape) if isinstance(codes, torch.Tensor) else type(codes).__name__
            raise ValueError(f"{name} decodes integer codes [B, K, T], got {shape}")
        if not 1 <= codes.shape[1] <= k_max or codes.shape[0] == 0 or codes.shape[-1] == 0:
            raise ValueError(f"{name} decodes codes [B, K, T] with 1 <= K <= {k_max}, got {tuple(codes.shape)}")
        low, high = int(codes.min()), int(codes.max())
        if low < 0 or high >= self.cardinality:
            raise ValueError(f"{name} codes lie in [0, {self.cardinality}), got values in [{low}, {high}]")
        return codes.to(self.device, torch.long)
