"""Adversarial and feature-matching losses over discriminator outputs (pure functions).

Logits are one tensor per sub-discriminator (any shape); each loss is the mean over
sub-discriminators of a mean over that tensor's elements, so adding a discriminator does not
change the scale. Everything is computed in float32, also inside a bf16 autocast region.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch.nn import functional as F


def _check_lists(real: Sequence, fake: Sequence, who: str) -> None:
    if len(real) != len(fake) or not real:
        raise ValueError(f"{who}: needs one real and one fake entry per sub-discriminator, got {len(real)} and {len(fake)}")


def hinge_discriminator_loss(real_logits: Sequence[torch.Tensor], fake_logits: Sequence[torch.Tensor]) -> torch.Tensor:
    """``mean_k [ mean relu(1 - D_k(y)) + mean relu(1 + D_k(x)) ]``: zero once real >= 1 and fake <= -1."""
    _check_lists(real_logits, fake_logits, "hinge_discriminator_loss")
    terms = [F.relu(1 - r.float()).mean() + F.relu(1 + f.float()).mean() for r, f in zip(real_logits, fake_logits)]
    return torch.stack(terms).mean()


def ls_discriminator_loss(real_logits: Sequence[torch.Tensor], fake_logits: Sequence[torch.Tensor]) -> torch.Tensor:
    """Least squares: ``mean_k [ mean (1 - D_k(y))^2 + mean D_k(x)^2 ]``."""
    _check_lists(real_logits, fake_logits, "ls_discriminator_loss")
    terms = [(1 - r.float()).pow(2).mean() + f.float().pow(2).mean() for r, f in zip(real_logits, fake_logits)]
    return torch.stack(terms).mean()


def hinge_generator_loss(fake_logits: Sequence[torch.Tensor]) -> torch.Tensor:
    """``mean_k mean relu(1 - D_k(x))`` (the EnCodec form of the hinge generator loss)."""
    if not fake_logits:
        raise ValueError("hinge_generator_loss: no logits")
    return torch.stack([F.relu(1 - f.float()).mean() for f in fake_logits]).mean()


def ls_generator_loss(fake_logits: Sequence[torch.Tensor]) -> torch.Tensor:
    """Least squares: ``mean_k mean (1 - D_k(x))^2``."""
    if not fake_logits:
        raise ValueError("ls_generator_loss: no logits")
    return torch.stack([(1 - f.float()).pow(2).mean() for f in fake_logits]).mean()


def discriminator_loss(kind: str, real_logits: Sequence[torch.Tensor], fake_logits: Sequence[torch.Tensor]) -> torch.Tensor:
    """The discriminator loss of ``kind`` (``"hinge"`` or ``"ls"``)."""
    losses = {"hinge": hinge_discriminator_loss, "ls": ls_discriminator_loss}
    if kind not in losses:
        raise ValueError(f"unknown adversarial loss {kind!r}: choose one of {sorted(losses)}")
    return losses[kind](real_logits, fake_logits)


def generator_loss(kind: str, fake_logits: Sequence[torch.Tensor]) -> torch.Tensor:
    """The generator loss of ``kind`` (``"hinge"`` or ``"ls"``)."""
    losses = {"hinge": hinge_generator_loss, "ls": ls_generator_loss}
    if kind not in losses:
        raise ValueError(f"unknown adversarial loss {kind!r}: choose one of {sorted(losses)}")
    return losses[kind](fake_logits)


def feature_matching_loss(
    real_features: Sequence[Sequence[torch.Tensor]],
    fake_features: Sequence[Sequence[torch.Tensor]],
    eps: float = 1e-8,
) -> torch.Tensor:
    """Relative L1 between hidden activations, averaged over all layers of all sub-discriminators.

    Each layer contributes ``mean |D(y) - D(x)| / mean |D(y)|`` (EnCodec), so every layer weighs
    the same whatever its magnitude, and scaling real and fake features together changes nothing.
    Real features are targets: no gradient flows into them.
    """
    _check_lists(real_features, fake_features, "feature_matching_loss")
    terms = []
    for k, (real_layers, fake_layers) in enumerate(zip(real_features, fake_features)):
        if len(real_layers) != len(fake_layers):
            raise ValueError(
                f"feature_matching_loss: sub-discriminator {k} has {len(real_layers)} real and {len(fake_layers)} fake layers"
            )
        for real, fake in zip(real_layers, fake_layers):
            real = real.detach().float()
            terms.append((real - fake.float()).abs().mean() / (real.abs().mean() + eps))
    if not terms:
        raise ValueError("feature_matching_loss: no feature layers")
    return torch.stack(terms).mean()
