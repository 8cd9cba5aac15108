"""Reconstruction losses and validation metrics over waveforms and spectrograms (pure functions).

Inputs are audio ``[B, C, T]``: ``x`` the reconstruction, ``y`` the reference. Every transform
runs in float32 outside autocast, so the functions are safe inside a bf16 autocast region.
Losses return a scalar; metrics return one value per batch item ``[B]`` (mean over channels).
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass

import torch
import torchaudio.functional as AF
from einops import rearrange


@dataclass(frozen=True)
class MelLossConfig:
    """Multi-scale log-mel settings: one scale per ``n_fft`` (window ``n_fft``, hop ``n_fft * hop_ratio``).

    Defaults follow EnCodec: windows 2^5..2^11, 64 mel bins, L1 + L2 on the log mel.
    """

    n_ffts: tuple[int, ...] = (32, 64, 128, 256, 512, 1024, 2048)
    n_mels: int = 64
    hop_ratio: float = 0.25
    f_min: float = 0.0
    f_max: float | None = None
    l1_weight: float = 1.0
    l2_weight: float = 1.0
    eps: float = 1e-5


@dataclass(frozen=True)
class STFTLossConfig:
    """Multi-resolution STFT settings (Parallel WaveGAN defaults); the three tuples align."""

    n_ffts: tuple[int, ...] = (1024, 2048, 512)
    hop_lengths: tuple[int, ...] = (120, 240, 50)
    win_lengths: tuple[int, ...] = (600, 1200, 240)
    eps: float = 1e-7


def _check_pair(x: torch.Tensor, y: torch.Tensor, who: str) -> None:
    if x.dim() != 3 or x.shape != y.shape:
        raise ValueError(f"{who} expects two audio tensors [B, C, T] of one shape, got {tuple(x.shape)} and {tuple(y.shape)}")


@functools.lru_cache(maxsize=64)
def hann_window(length: int, device: torch.device) -> torch.Tensor:
    """A periodic Hann window in float32, cached per length and device."""
    return torch.hann_window(length, device=device)


@functools.lru_cache(maxsize=64)
def mel_filterbank(
    n_fft: int, n_mels: int, sample_rate: int, f_min: float, f_max: float | None, device: torch.device
) -> torch.Tensor:
    """Triangular HTK-scale mel filters ``[n_fft // 2 + 1, n_mels]`` (peak 1), cached per device."""
    with warnings.catch_warnings():
        # Small windows leave some low mel bands without an FFT bin; those bands are constant
        # (the log floor) for every signal and add nothing to a distance, so the warning is noise.
        warnings.filterwarnings("ignore", message=".*mel filterbank has all zero values.*")
        fb = AF.melscale_fbanks(
            n_freqs=n_fft // 2 + 1,
            f_min=f_min,
            f_max=f_max if f_max is not None else sample_rate / 2,
            n_mels=n_mels,
            sample_rate=sample_rate,
            norm=None,
            mel_scale="htk",
        )
    return fb.to(device)


def stft_magnitude(wav: torch.Tensor, n_fft: int, hop_length: int, win_length: int) -> torch.Tensor:
    """Centered STFT magnitude of ``[B, C, T]`` audio as ``[B, C, F, N]`` float32."""
    b, c, t = wav.shape
    # Reflect padding needs more samples than half a window; shorter clips are zero padded.
    pad_mode = "reflect" if t > n_fft // 2 else "constant"
    with torch.autocast(device_type=wav.device.type, enabled=False):
        spec = torch.stft(
            rearrange(wav.float(), "b c t -> (b c) t"),
            n_fft=n_fft,
            hop_length=hop_length,
            win_length=win_length,
            window=hann_window(win_length, wav.device),
            center=True,
            pad_mode=pad_mode,
            return_complex=True,
        )
    return rearrange(spec.abs(), "(b c) f n -> b c f n", b=b, c=c)


def log_mel(wav: torch.Tensor, sample_rate: int, n_fft: int, hop_length: int, cfg: MelLossConfig) -> torch.Tensor:
    """Natural-log mel magnitude spectrogram ``[B, C, n_mels, N]`` (floored at ``cfg.eps``)."""
    mag = stft_magnitude(wav, n_fft, hop_length, n_fft)
    fb = mel_filterbank(n_fft, cfg.n_mels, sample_rate, cfg.f_min, cfg.f_max, wav.device)
    with torch.autocast(device_type=wav.device.type, enabled=False):
        mel = torch.einsum("bcfn,fm->bcmn", mag, fb)
    return mel.clamp_min(cfg.eps).log()


def _hop(n_fft: int, cfg: MelLossConfig) -> int:
    return max(1, int(n_fft * cfg.hop_ratio))


# ----------------------------------------------------------------------------------- losses


def l1_waveform_loss(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean absolute sample difference."""
    _check_pair(x, y, "l1_waveform_loss")
    return (x.float() - y.float()).abs().mean()


def multiscale_mel_loss(x: torch.Tensor, y: torch.Tensor, sample_rate: int, cfg: MelLossConfig = MelLossConfig()) -> torch.Tensor:
    """Mean over scales of ``l1_weight * L1 + l2_weight * L2`` between log mels of ``x`` and ``y``."""
    _check_pair(x, y, "multiscale_mel_loss")
    total = x.new_zeros((), dtype=torch.float32)
    for n_fft in cfg.n_ffts:
        hop = _hop(n_fft, cfg)
        diff = log_mel(x, sample_rate, n_fft, hop, cfg) - log_mel(y, sample_rate, n_fft, hop, cfg)
        total = total + cfg.l1_weight * diff.abs().mean() + cfg.l2_weight * diff.pow(2).mean()
    return total / len(cfg.n_ffts)


def multiresolution_stft_loss(x: torch.Tensor, y: torch.Tensor, cfg: STFTLossConfig = STFTLossConfig()) -> torch.Tensor:
    """Mean over resolutions of spectral convergence plus log-magnitude L1; ``y`` is the reference."""
    _check_pair(x, y, "multiresolution_stft_loss")
    total = x.new_zeros((), dtype=torch.float32)
    for n_fft, hop, win in zip(cfg.n_ffts, cfg.hop_lengths, cfg.win_lengths):
        mx, my = stft_magnitude(x, n_fft, hop, win), stft_magnitude(y, n_fft, hop, win)
        convergence = torch.linalg.vector_norm(my - mx) / torch.linalg.vector_norm(my).clamp_min(cfg.eps)
        log_mag = (mx.clamp_min(cfg.eps).log() - my.clamp_min(cfg.eps).log()).abs().mean()
        total = total + convergence + log_mag
    return total / len(cfg.n_ffts)


# ---------------------------------------------------------------------------------- metrics


@torch.no_grad()
def mel_distance(x: torch.Tensor, y: torch.Tensor, sample_rate: int, cfg: MelLossConfig = MelLossConfig()) -> torch.Tensor:
    """Per-item mean absolute log-mel difference over the scales of ``cfg``: ``[B]``, symmetric."""
    _check_pair(x, y, "mel_distance")
    total = torch.zeros(x.shape[0], device=x.device)
    for n_fft in cfg.n_ffts:
        hop = _hop(n_fft, cfg)
        diff = log_mel(x, sample_rate, n_fft, hop, cfg) - log_mel(y, sample_rate, n_fft, hop, cfg)
        total += diff.abs().mean(dim=(1, 2, 3))
    return total / len(cfg.n_ffts)


@torch.no_grad()
def stft_distance(x: torch.Tensor, y: torch.Tensor, cfg: STFTLossConfig = STFTLossConfig()) -> torch.Tensor:
    """Per-item mean absolute log-magnitude difference over the resolutions of ``cfg``: ``[B]``, symmetric."""
    _check_pair(x, y, "stft_distance")
    total = torch.zeros(x.shape[0], device=x.device)
    for n_fft, hop, win in zip(cfg.n_ffts, cfg.hop_lengths, cfg.win_lengths):
        lx = stft_magnitude(x, n_fft, hop, win).clamp_min(cfg.eps).log()
        ly = stft_magnitude(y, n_fft, hop, win).clamp_min(cfg.eps).log()
        total += (lx - ly).abs().mean(dim=(1, 2, 3))
    return total / len(cfg.n_ffts)


@torch.no_grad()
def si_sdr(estimate: torch.Tensor, reference: torch.Tensor, floor: float = 1e-8) -> torch.Tensor:
    """Scale-invariant signal-to-distortion ratio in dB, per item ``[B]`` (mean over channels).

    Both signals are made zero-mean; the reference scaled to best fit the estimate is the target
    and the remainder is distortion. Distortion energy is floored at ``floor`` times the target
    energy, so a perfect estimate scores ``-10 log10(floor)`` dB (80 dB) at any scale.
    """
    _check_pair(estimate, reference, "si_sdr")
    with torch.autocast(device_type=estimate.device.type, enabled=False):
        est = estimate.double() - estimate.double().mean(dim=-1, keepdim=True)
        ref = reference.double() - reference.double().mean(dim=-1, keepdim=True)
        tiny = torch.finfo(torch.float64).tiny
        alpha = (est * ref).sum(-1, keepdim=True) / (ref.pow(2).sum(-1, keepdim=True) + tiny)
        target = alpha * ref
        target_energy = target.pow(2).sum(-1)
        noise_energy = (est - target).pow(2).sum(-1)
        ratio = (target_energy + tiny) / (noise_energy + floor * target_energy + tiny)
        return (10 * torch.log10(ratio)).mean(dim=1).float()
