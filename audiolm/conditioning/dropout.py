"""Condition dropout for classifier-free guidance: during training, each example loses its whole
condition with probability ``p``, so one model learns both p(x | c) and p(x).

``drop_mask(batch, p, generator) -> [B]`` bool (True = drop) is a pure function, deterministic
under a ``torch.Generator``; ``drop_conditions(cond, p, generator)`` applies it to a
``TextCondition``; ``ConditionDropout(p)`` is the module form, active only in training mode.
"""

from __future__ import annotations

import torch
from torch import nn

from audiolm.conditioning.text import TextCondition


def drop_mask(batch: int, p: float, generator: torch.Generator | None = None,
              device: torch.device | str | None = None) -> torch.Tensor:
    """``[batch]`` bool, each True independently with probability ``p``.

    Drawn on the CPU (so a CPU generator serves any device) and moved to ``device``.
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"condition dropout probability must be in [0, 1], got {p}")
    if p == 0.0:
        return torch.zeros(batch, dtype=torch.bool, device=device)
    if p == 1.0:
        return torch.ones(batch, dtype=torch.bool, device=device)
    return (torch.rand(batch, generator=generator) < p).to(device)


def drop_conditions(cond: TextCondition, p: float, generator: torch.Generator | None = None) -> TextCondition:
    """``cond`` with each row emptied (mask all False) with probability ``p``."""
    return cond.without(drop_mask(len(cond), p, generator, cond.mask.device))


class ConditionDropout(nn.Module):
    """``forward(cond, generator=None) -> cond``: drops rows with probability ``p`` in training mode,
    returns ``cond`` unchanged in eval mode."""

    def __init__(self, p: float) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"condition dropout probability must be in [0, 1], got {p}")
        self.p = p

    def forward(self, cond: TextCondition, generator: torch.Generator | None = None) -> TextCondition:
        if not self.training or self.p == 0.0:
            return cond
        return drop_conditions(cond, self.p, generator)

    def extra_repr(self) -> str:
        return f"p={self.p}"
