"""An encoder and a decoder that work at the frame rate on short-time spectra (the Vocos layout).

:class:`FourierEncoder`: ``[B, C, T] -> [B, D, ceil(T / hop)]``. The log-mel spectrogram (``mels``
bands, hop ``hop / upsample``, the frames of :class:`ISTFTHead`) is lifted by a 1-D conv to
``width`` channels, mixed by ConvNeXt blocks, brought to the frame rate by a strided conv and
projected to ``D`` channels. Measured on the quickstart corpus (2 CPU cores, 1,000 batches, no
quantizer), a SEANet encoder with 8 filters left the same decoder at STOI 0.63 on unseen voices,
while log-mels gave it 0.86: a narrow convolutional encoder learns the spectral envelope far
more slowly than it is given by a filterbank.

:class:`FourierDecoder`:
``[B, D, T'] -> [B, C, T' * hop]``. A 1-D conv lifts the latent to ``width`` channels, ConvNeXt
blocks (depthwise conv, LayerNorm, pointwise MLP, layer scale) mix it at the frame rate, an
optional transposed conv raises the frame rate ``upsample`` times, and a linear head predicts, per
STFT frame, a log-magnitude and a phase for each of ``n_fft // 2 + 1`` bins. The waveform is their
inverse STFT (Hann window, hop ``hop / upsample``): STFT frame ``j`` is centred on the middle of
its hop, as latent frame ``i`` is on the middle of the ``hop`` samples it encodes.

Every layer but the last runs at the frame rate, where the work is a few dense matrix products,
so this decoder costs a fraction of a SEANet decoder's transposed convolutions at the sample rate,
and its output has no upsampling artefacts (tones at multiples of the frame rate).

:class:`ISTFTHead` is exact: given ``log |X|`` and ``angle X`` of a centred STFT ``X`` of a signal
(:meth:`ISTFTHead.stft`), it returns that signal.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

MAX_LOG_MAGNITUDE = 6.0  # exp(6) ~ 400: a cap on each bin's magnitude that keeps early training finite


@dataclass
class FourierConfig:
    """width: channels of the ConvNeXt blocks; layers: how many; mlp_ratio: hidden width of their
    pointwise MLP over ``width``; kernel_size: their depthwise conv. upsample: frame-rate
    multiplier before the head (1 keeps one STFT frame per latent frame). n_fft: FFT size of the
    head and of the encoder's spectrogram (default ``4 * hop / upsample``). mels: mel bands the
    encoder reads; encoder_layers: its ConvNeXt blocks."""

    width: int = 256
    layers: int = 8
    mlp_ratio: int = 3
    kernel_size: int = 7
    upsample: int = 1
    n_fft: int | None = None
    mels: int = 80
    encoder_layers: int = 4

    def __post_init__(self) -> None:
        for name in ("width", "layers", "mlp_ratio", "kernel_size", "upsample", "mels", "encoder_layers"):
            if getattr(self, name) < 1:
                raise ValueError(f"FourierConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.kernel_size % 2 == 0:
            raise ValueError(f"FourierConfig.kernel_size must be odd (centred), got {self.kernel_size}")

    def stft_hop(self, hop: int) -> int:
        if hop % self.upsample:
            raise ValueError(f"the codec's hop {hop} is not a multiple of FourierConfig.upsample {self.upsample}")
        return hop // self.upsample

    def fft_size(self, hop: int) -> int:
        n_fft = self.n_fft or 4 * self.stft_hop(hop)
        if n_fft < 2 * self.stft_hop(hop) or n_fft % 2:
            raise ValueError(f"FourierConfig.n_fft must be even and >= twice the STFT hop "
                             f"({self.stft_hop(hop)}), got {n_fft}")
        return n_fft


class AdaLayerNorm(nn.Module):
    """LayerNorm over the last dim whose scale and shift are looked up per condition (an index
    ``[B]``): one network serves several settings (e.g. how many codebooks it decodes). Scales
    start at 1 and shifts at 0, as a plain LayerNorm's affine parameters do."""

    def __init__(self, conditions: int, width: int) -> None:
        super().__init__()
        self.width = width
        self.scale = nn.Embedding(conditions, width)
        self.shift = nn.Embedding(conditions, width)
        nn.init.ones_(self.scale.weight)
        nn.init.zeros_(self.shift.weight)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:  # x [B, T, C], c [B]
        h = F.layer_norm(x, (self.width,))
        return h * self.scale(c)[:, None] + self.shift(c)[:, None]


def norm(layer: nn.Module, x: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
    """``layer(x)`` for a LayerNorm, ``layer(x, c)`` for an :class:`AdaLayerNorm`."""
    if isinstance(layer, AdaLayerNorm):
        if c is None:
            raise ValueError("this network is conditioned: pass the condition index c [B]")
        return layer(x, c)
    return layer(x)


def layer_norm(width: int, conditions: int) -> nn.Module:
    return AdaLayerNorm(conditions, width) if conditions else nn.LayerNorm(width)


class ConvNeXtBlock(nn.Module):
    """``x + scale * mlp(norm(dwconv(x)))`` on ``[B, C, T]`` (channels first), length kept.
    ``conditions > 0``: the norm is an :class:`AdaLayerNorm` over that many condition indices."""

    def __init__(self, width: int, mlp_ratio: int, kernel_size: int, layer_scale: float, conditions: int = 0) -> None:
        super().__init__()
        self.dwconv = nn.Conv1d(width, width, kernel_size, padding=kernel_size // 2, groups=width)
        self.norm = layer_norm(width, conditions)
        self.up = nn.Linear(width, width * mlp_ratio)
        self.down = nn.Linear(width * mlp_ratio, width)
        self.scale = nn.Parameter(torch.full((width,), layer_scale))

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        h = rearrange(self.dwconv(x), "b c t -> b t c")
        h = self.down(F.gelu(self.up(norm(self.norm, h, c))))  # [B, T, C]
        return x + rearrange(self.scale * h, "b t c -> b c t")


class ISTFTHead(nn.Module):
    """Per-frame log-magnitudes and phases ``[B, F, N]`` (``F = n_fft // 2 + 1``) -> waveform
    ``[B, N * hop]``: the inverse of :meth:`stft`, by windowed overlap-add.

    Frames are "same"-padded: frame ``j`` covers samples ``[j * hop - p, j * hop - p + n_fft)``
    with ``p = (n_fft - hop) / 2``, so it is centred on the middle of hop ``j`` and ``N`` frames
    make exactly ``N * hop`` samples (no frame hangs over the ends half empty, as with torch's
    centred STFT, whose inverse also needs a window sum that never vanishes at the ends).
    """

    def __init__(self, n_fft: int, hop: int) -> None:
        super().__init__()
        if (n_fft - hop) % 2:
            raise ValueError(f"n_fft - hop must be even, got n_fft {n_fft} and hop {hop}")
        self.n_fft, self.hop, self.pad = n_fft, hop, (n_fft - hop) // 2
        self.register_buffer("window", torch.hann_window(n_fft, periodic=True), persistent=False)
        self._envelopes: dict[int, torch.Tensor] = {}  # frames -> overlap-added squared window

    def stft(self, wav: torch.Tensor) -> torch.Tensor:
        """``[B, N * hop]`` -> the complex STFT ``[B, F, N]`` this head inverts."""
        padded = F.pad(wav[:, None], (self.pad, self.pad))[:, 0]
        return torch.stft(padded, self.n_fft, self.hop, window=self.window, center=False, return_complex=True)

    def forward(self, log_magnitude: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
        n = log_magnitude.shape[-1]
        with torch.autocast(log_magnitude.device.type, enabled=False):
            mag = torch.exp(log_magnitude.float().clamp(max=MAX_LOG_MAGNITUDE))
            phase = phase.float()  # torch.complex of the parts: ~2.5x faster than torch.polar on CPU
            spec = torch.complex(mag * torch.cos(phase), mag * torch.sin(phase))
            frames = torch.fft.irfft(spec, n=self.n_fft, dim=1)  # [B, n_fft, N]
            wav = overlap_add(frames * self.window[:, None], self.hop)  # [B, (n - 1) * hop + n_fft]
            keep = slice(self.pad, self.pad + n * self.hop)
            return wav[:, keep] / self._envelope(n)[keep].clamp_min(1e-8)

    def _envelope(self, n: int) -> torch.Tensor:
        """The overlap-added squared window of ``n`` frames, kept per length (a few lengths recur:
        training crops, whole clips); ~1.5 % of a small decoder's time when recomputed."""
        cached = self._envelopes.get(n)
        if cached is None or cached.device != self.window.device:
            if len(self._envelopes) >= 16:
                self._envelopes.clear()
            cached = self._envelopes[n] = overlap_add(self.window.square()[None, :, None].expand(1, -1, n), self.hop)[0]
        return cached


def overlap_add(frames: torch.Tensor, hop: int) -> torch.Tensor:
    """``[B, L, N]`` frames of length ``L``, ``hop`` apart -> their sum ``[B, (N - 1) * hop + L]``.

    When ``hop`` divides ``L`` each frame is ``L / hop`` blocks of one hop, and block ``i`` of frame
    ``j`` lands on output block ``i + j``: ``L / hop`` shifted additions, much cheaper than the
    general :func:`torch.nn.functional.fold` (used otherwise)."""
    b, length, n = frames.shape
    if length % hop:
        size = (n - 1) * hop + length
        return F.fold(frames, output_size=(1, size), kernel_size=(1, length), stride=(1, hop))[:, 0, 0]
    r = length // hop
    blocks = rearrange(frames, "b (r h) n -> b r n h", h=hop)
    out = frames.new_zeros(b, n + r - 1, hop)
    for i in range(r):
        out[:, i: i + n] += blocks[:, i]
    return rearrange(out, "b m h -> b (m h)")


def mix(h: torch.Tensor, norm_in: nn.Module, blocks: nn.ModuleList, norm_out: nn.Module,
        c: torch.Tensor | None = None) -> torch.Tensor:
    """``[B, W, N] -> [B, W, N]``: LayerNorm over channels, the ConvNeXt blocks, LayerNorm again
    (each norm conditioned on ``c`` where it is an :class:`AdaLayerNorm`)."""
    h = rearrange(norm(norm_in, rearrange(h, "b c t -> b t c"), c), "b t c -> b c t")
    for block in blocks:
        h = block(h, c)
    return rearrange(norm(norm_out, rearrange(h, "b c t -> b t c"), c), "b t c -> b c t")


class FourierDecoder(nn.Module):
    """Latent ``[B, D, T']`` -> audio ``[B, C, T' * hop]`` (see the module doc). With
    ``conditions > 0`` every norm is an :class:`AdaLayerNorm` and ``forward`` takes the condition
    index ``c`` ``[B]`` (a second decoder's number of codebooks, :mod:`codec.decoder`)."""

    def __init__(self, cfg: FourierConfig, dimension: int, channels: int, hop: int, conditions: int = 0) -> None:
        super().__init__()
        self.cfg, self.dimension, self.channels, self.hop = cfg, dimension, channels, hop
        stft_hop, n_fft = cfg.stft_hop(hop), cfg.fft_size(hop)
        self.bins = n_fft // 2 + 1
        self.embed = nn.Conv1d(dimension, cfg.width, cfg.kernel_size, padding=cfg.kernel_size // 2)
        self.norm_in = layer_norm(cfg.width, conditions)
        self.blocks = nn.ModuleList([ConvNeXtBlock(cfg.width, cfg.mlp_ratio, cfg.kernel_size, 1.0 / cfg.layers, conditions)
                                     for _ in range(cfg.layers)])
        self.norm_out = layer_norm(cfg.width, conditions)
        u = cfg.upsample
        self.up = nn.ConvTranspose1d(cfg.width, cfg.width, 2 * u, stride=u, padding=u // 2) if u > 1 else None
        self.proj = nn.Linear(cfg.width, channels * 2 * self.bins)
        self.head = ISTFTHead(n_fft, stft_hop)

    @property
    def hop_length(self) -> int:
        return self.hop

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        if z.dim() != 3 or z.shape[1] != self.dimension:
            raise ValueError(f"FourierDecoder expects [B, {self.dimension}, T], got {tuple(z.shape)}")
        b, _, t = z.shape
        h = self.embed(z)
        h = mix(h, self.norm_in, self.blocks, self.norm_out, c)
        if self.up is not None:
            h = self.up(h)[..., : t * self.cfg.upsample]  # [B, width, T' * upsample]
        out = self.proj(rearrange(h, "b c n -> b n c"))  # [B, N, C * 2F]
        out = rearrange(out, "b n (c two f) -> two (b c) f n", c=self.channels, two=2)
        wav = self.head(out[0], out[1])  # [B * C, T' * hop]
        return rearrange(wav, "(b c) s -> b c s", b=b)



class FourierEncoder(nn.Module):
    """Audio ``[B, C, T]`` -> latent ``[B, D, ceil(T / hop)]`` (see the module doc). The input is
    zero-padded at the end to whole frames; latent frame ``i`` is centred on the middle of the
    ``hop`` samples from ``i * hop``, as the decoder's frame ``i`` is."""

    def __init__(self, cfg: FourierConfig, dimension: int, channels: int, hop: int, sample_rate: int) -> None:
        super().__init__()
        import torchaudio.functional as AF

        self.cfg, self.dimension, self.channels, self.hop = cfg, dimension, channels, hop
        stft_hop, n_fft = cfg.stft_hop(hop), cfg.fft_size(hop)
        self.frames = ISTFTHead(n_fft, stft_hop)  # its stft() frames the audio as the decoder's head does
        fb = AF.melscale_fbanks(n_fft // 2 + 1, 0.0, sample_rate / 2, cfg.mels, sample_rate, norm="slaney", mel_scale="slaney")
        self.register_buffer("filterbank", fb, persistent=False)  # [F, mels]
        self.embed = nn.Conv1d(channels * cfg.mels, cfg.width, cfg.kernel_size, padding=cfg.kernel_size // 2)
        self.norm_in = nn.LayerNorm(cfg.width)
        self.blocks = nn.ModuleList([ConvNeXtBlock(cfg.width, cfg.mlp_ratio, cfg.kernel_size, 1.0 / cfg.encoder_layers)
                                     for _ in range(cfg.encoder_layers)])
        self.norm_out = nn.LayerNorm(cfg.width)
        u = cfg.upsample
        self.down = nn.Conv1d(cfg.width, cfg.width, 2 * u, stride=u, padding=u // 2) if u > 1 else None
        self.proj = nn.Conv1d(cfg.width, dimension, 1)

    @property
    def hop_length(self) -> int:
        return self.hop

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        if wav.dim() != 3 or wav.shape[1] != self.channels:
            raise ValueError(f"FourierEncoder expects [B, {self.channels}, T], got {tuple(wav.shape)}")
        b, _, t = wav.shape
        frames = -(-t // self.hop)
        wav = F.pad(wav, (0, frames * self.hop - t))
        with torch.autocast(wav.device.type, enabled=False):
            mag = self.frames.stft(rearrange(wav.float(), "b c t -> (b c) t")).abs()  # [B * C, F, N]
            mel = torch.einsum("bfn,fm->bmn", mag, self.filterbank).clamp_min(1e-5).log()
        h = self.embed(rearrange(mel, "(b c) m n -> b (c m) n", b=b))
        h = mix(h, self.norm_in, self.blocks, self.norm_out)
        if self.down is not None:
            h = self.down(h)[..., :frames]  # [B, width, T']
        return self.proj(h)
