"""Training settings of the codec GAN: loss weights and optimizer schedules (plain dataclasses,
settable from YAML or the command line)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass
class CodecLossConfig:
    """Weights of each generator loss (EnCodec's recipe by default).

    adversarial_kind: ``hinge`` or ``ls``. balancer: rescale the reconstruction and adversarial
    gradients on the decoder output so each contributes its weight's share (EnCodec's balancer);
    else a plain weighted sum. discriminator_warmup: steps of reconstruction-only training before
    the adversarial losses start. mel_n_ffts / mel_bins: the multi-scale mel loss; mel_l2: weight of
    its squared term beside the absolute one; mel_floor: the mel magnitude below which log-mels are
    clamped. Squared log differences at a low floor let near-silent bins dominate: synthetic speech
    (espeak) has digital silence between words and deep valleys between formants, where the
    reconstruction's faint noise costs more than a missing formant.
    """

    l1: float = 0.1
    mel: float = 1.0
    adversarial: float = 3.0
    feature: float = 3.0
    commitment: float = 1.0
    adversarial_kind: str = "hinge"
    balancer: bool = False
    balancer_ema: float = 0.999
    discriminator_warmup: int = 0
    mel_n_ffts: tuple[int, ...] = (32, 64, 128, 256, 512, 1024, 2048)
    mel_bins: int = 64
    mel_l2: float = 1.0
    mel_floor: float = 1e-5


@dataclass
class OptimConfig:
    """Adam for the generator and the discriminators, each with linear warm-up then cosine decay
    to ``min_lr_ratio * lr`` at ``decay_steps`` (None: constant after warm-up)."""

    lr: float = 3e-4
    lr_discriminator: float = 3e-4
    betas: tuple[float, float] = (0.5, 0.9)
    weight_decay: float = 0.0
    warmup_steps: int = 0
    decay_steps: int | None = None
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0
    grad_clip_discriminator: float = 1.0


def lr_lambda(cfg: OptimConfig):
    def f(step: int) -> float:
        if cfg.warmup_steps and step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        if not cfg.decay_steps:
            return 1.0
        t = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.decay_steps - cfg.warmup_steps))
        return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t))

    return f


def make_optimizer(params, lr: float, cfg: OptimConfig) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    opt = torch.optim.AdamW(params, lr=lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)
    return opt, torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(cfg))


@dataclass
class ValidationConfig:
    """bandwidth_codebooks: numbers of codebooks to evaluate (None: 1, half and all);
    examples: audio clips logged per validation."""

    bandwidth_codebooks: list[int] | None = None
    examples: int = 2
