"""A flow-matching decoder: the STFT of the audio, drawn from noise along a straight path,
conditioned on a frozen codec's latent.

Data space. The complex STFT ``X`` (frames of :class:`~codec.model.fourier.ISTFTHead`, which inverts
it exactly) is amplitude-compressed, ``|X|^alpha e^{i angle X}``, and divided bin by bin by
``band_scale``, the RMS of the compressed coefficients' real (and imaginary) parts in that bin,
measured on the first training batch (over all ranks) and followed by a slow running average
afterwards (a buffer: saved, resumed, exported). Every band then carries unit energy, as the
prior does: without it the few loud low bands would dominate the loss and the quiet high ones
would stay noise (the per-band normalisation of PriorGrad and of MultiBandDiffusion's EQ).
``y``: ``[B, 2F, N]`` (real and imaginary parts).

Path and loss. ``x_t = (1 - t) x_0 + t y`` with ``x_0 ~ N(0, I)``: a linear SDE with zero diffusion,
i.e. rectified flow; ``t`` is drawn uniformly per clip. The network predicts the clean ``y`` from
``(x_t, t, latent, k)``; the loss is the squared error of that prediction, and the velocity that the
sampler follows is ``(y_hat - x_t) / (1 - t)``.

Sampling. Euler steps at ``t = 0, 1/S, ..., (S-1)/S`` from noise of a fixed seed (the same codes
decode to the same audio). One step returns the network's prediction at ``t = 0``: the
conditional mean, a regression decoder; more steps restore the detail the mean averages away.

Network. A 1-D conv lifts the latent and another the noisy coefficients to ``width`` channels (their
sum), a sinusoidal embedding of ``t`` is added, and ConvNeXt blocks whose norms are conditioned on
``k`` mix it at the STFT frame rate (``FourierConfig``: the same backbone as the inverse-STFT GAN
head); a linear layer predicts the ``2F`` coefficients.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from codec.model.fourier import ConvNeXtBlock, FourierConfig, ISTFTHead, layer_norm, mix


@dataclass
class FlowConfig:
    """steps: Euler steps when decoding (1 = the regression estimate). alpha: amplitude
    compression exponent. scale_momentum: weight of the old value in the running band scale.
    seed: of the sampler's starting noise."""

    steps: int = 4
    alpha: float = 0.5
    scale_momentum: float = 0.999
    seed: int = 0

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"FlowConfig.steps must be >= 1, got {self.steps}")
        if not 0 < self.alpha <= 1:
            raise ValueError(f"FlowConfig.alpha must lie in (0, 1], got {self.alpha}")


def interpolate(x0: torch.Tensor, y: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The straight path's point ``(1 - t) x0 + t y`` (``t`` ``[B]``, broadcast over the rest)."""
    t = t.reshape(-1, *([1] * (y.dim() - 1)))
    return (1 - t) * x0 + t * y


def euler(predict, noise: torch.Tensor, steps: int) -> torch.Tensor:
    """Follow the velocity ``(y_hat - x) / (1 - t)`` from ``noise`` at ``t = 0`` in ``steps`` Euler
    steps, ``predict(x, t [B]) -> y_hat`` the clean estimate; the last step lands on it."""
    x = noise
    for i in range(steps):
        y_hat = predict(x, torch.full((x.shape[0],), i / steps, device=x.device))
        x = x + (y_hat - x) / (steps - i)  # dt / (1 - t) = (1/S) / ((S - i) / S)
    return x


def time_embedding(t: torch.Tensor, width: int) -> torch.Tensor:
    """Sinusoidal features ``[B, width]`` of ``t`` in [0, 1]."""
    half = width // 2
    freqs = torch.exp(-math.log(1000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    angles = 1000.0 * t.float()[:, None] * freqs[None]
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


class FlowDecoder(nn.Module):
    """``forward(latent [B, D, T'], c [B]) -> [B, C, T' * hop]`` by ``flow.steps`` Euler steps;
    :meth:`loss` trains it (see the module doc). ``c`` indexes the conditions (``k - 1``)."""

    def __init__(self, cfg: FourierConfig, flow: FlowConfig, dimension: int, channels: int, hop: int,
                 conditions: int) -> None:
        super().__init__()
        self.cfg, self.flow, self.dimension, self.channels, self.hop = cfg, flow, dimension, channels, hop
        if cfg.upsample != 1:
            raise ValueError("the flow decoder works at one STFT frame per latent frame (fourier.upsample: 1)")
        n_fft = cfg.fft_size(hop)
        self.bins = n_fft // 2 + 1
        self.stft = ISTFTHead(n_fft, hop)
        coeffs = channels * 2 * self.bins
        self.embed = nn.Conv1d(dimension, cfg.width, cfg.kernel_size, padding=cfg.kernel_size // 2)
        self.embed_x = nn.Conv1d(coeffs, cfg.width, 1)
        self.time = nn.Sequential(nn.Linear(cfg.width, cfg.width), nn.GELU(), nn.Linear(cfg.width, cfg.width))
        self.norm_in = layer_norm(cfg.width, conditions)
        self.blocks = nn.ModuleList([ConvNeXtBlock(cfg.width, cfg.mlp_ratio, cfg.kernel_size, 1.0 / cfg.layers, conditions)
                                     for _ in range(cfg.layers)])
        self.norm_out = layer_norm(cfg.width, conditions)
        self.proj = nn.Conv1d(cfg.width, coeffs, 1)
        self.register_buffer("band_scale", torch.ones(channels, self.bins))
        self.register_buffer("scale_ready", torch.zeros((), dtype=torch.bool))

    # -- the data space -------------------------------------------------------------------------
    def to_coefficients(self, wav: torch.Tensor) -> torch.Tensor:
        """Audio ``[B, C, N * hop]`` -> normalised compressed STFT ``[B, C * 2F, N]``."""
        b = wav.shape[0]
        with torch.autocast(wav.device.type, enabled=False):
            x = self.stft.stft(rearrange(wav.float(), "b c t -> (b c) t"))  # [B*C, F, N]
            x = x * x.abs().clamp_min(1e-8).pow(self.flow.alpha - 1)
            x = rearrange(x, "(b c) f n -> b c f n", b=b) / self.band_scale[None, :, :, None]
            return rearrange(torch.view_as_real(x), "b c f n two -> b (c two f) n")

    def to_audio(self, y: torch.Tensor) -> torch.Tensor:
        """The inverse of :meth:`to_coefficients`."""
        b = y.shape[0]
        with torch.autocast(y.device.type, enabled=False):
            y = rearrange(y.float(), "b (c two f) n -> b c f n two", c=self.channels, two=2)
            x = torch.view_as_complex(y.contiguous()) * self.band_scale[None, :, :, None]
            mag = x.abs().clamp_min(1e-8)
            log_mag = mag.log() / self.flow.alpha
            wav = self.stft(rearrange(log_mag, "b c f n -> (b c) f n"), rearrange(x.angle(), "b c f n -> (b c) f n"))
            return rearrange(wav, "(b c) t -> b c t", b=b)

    @torch.no_grad()
    def observe(self, wav: torch.Tensor) -> None:
        """Update the per-band scale from a training batch (set outright the first time)."""
        x = self.stft.stft(rearrange(wav.float(), "b c t -> (b c) t")).abs().pow(self.flow.alpha)
        # each real and imaginary part then has unit variance, as the prior's coordinates do
        power = rearrange(x, "(b c) f n -> c f (b n)", b=wav.shape[0]).square().mean(-1).div(2)
        if torch.distributed.is_available() and torch.distributed.is_initialized():  # one scale on every rank
            torch.distributed.all_reduce(power)
            power /= torch.distributed.get_world_size()
        rms = power.sqrt().clamp_min(1e-5)
        if not bool(self.scale_ready):
            self.band_scale.copy_(rms)
            self.scale_ready.fill_(True)
        else:
            m = self.flow.scale_momentum
            self.band_scale.mul_(m).add_((1 - m) * rms)

    # -- the network ----------------------------------------------------------------------------
    def predict(self, x_t: torch.Tensor, t: torch.Tensor, latent: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """The clean coefficients ``[B, 2F, N]`` from the noisy ones at times ``t`` ``[B]``."""
        h = self.embed(latent) + self.embed_x(x_t)
        h = h + self.time(time_embedding(t, self.cfg.width))[:, :, None]
        return self.proj(mix(h, self.norm_in, self.blocks, self.norm_out, c))

    def loss(self, latent: torch.Tensor, c: torch.Tensor, wav: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(flow-matching loss, audio of the clean prediction)`` for audio ``wav`` ``[B, C, T' * hop]``
        (cropped or padded to the latent's frames)."""
        n = latent.shape[-1]
        wav = F.pad(wav, (0, max(0, n * self.hop - wav.shape[-1])))[..., : n * self.hop]
        y = self.to_coefficients(wav)
        t = torch.rand(y.shape[0], device=y.device)
        y_hat = self.predict(interpolate(torch.randn_like(y), y, t), t, latent, c)
        return F.mse_loss(y_hat, y), self.to_audio(y_hat)

    def sample(self, latent: torch.Tensor, c: torch.Tensor, steps: int | None = None,
               noise: torch.Tensor | None = None) -> torch.Tensor:
        """Euler steps from noise to audio ``[B, C, T' * hop]`` (differentiable: a GAN can train the
        unrolled sampler)."""
        steps = steps or self.flow.steps
        b, _, n = latent.shape
        if noise is None:
            g = torch.Generator(device="cpu").manual_seed(self.flow.seed)
            noise = torch.randn(b, self.channels * 2 * self.bins, n, generator=g).to(latent.device)
        return self.to_audio(euler(lambda x, t: self.predict(x, t, latent, c), noise, steps))

    def forward(self, latent: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        if latent.dim() != 3 or latent.shape[1] != self.dimension:
            raise ValueError(f"FlowDecoder expects [B, {self.dimension}, T], got {tuple(latent.shape)}")
        return self.sample(latent, c)
