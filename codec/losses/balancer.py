"""Gradient balancer (EnCodec lineage): each loss gets a fixed share of the gradient on a shared output.

Several losses (mel, feature matching, adversarial, ...) depend on the model through one tensor,
the decoded audio. The balancer takes the gradient of each loss with respect to that tensor,
divides it by a running (EMA) estimate of its norm and multiplies by ``total_norm * w_k / sum(w)``,
so that loss ``k`` contributes a gradient of norm about ``total_norm * w_k / sum(w)`` whatever
its raw scale. The combined gradient is backpropagated once through the model.

Under DDP every rank must scale identically, or the all-reduced parameter gradients mix
differently weighted losses: the norms are averaged across ranks (one ``all_reduce``) before
the EMA update, so scales agree on every rank. All ranks must pass the same loss names.
With ``balance=False`` the balancer is a plain weighted sum, for comparison.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import torch
import torch.distributed as dist


@dataclass
class BalancerConfig:
    """weights: relative share per loss name; total_norm: norm of the combined gradient;
    ema_decay: EMA decay of the norm estimates (0 uses the current norms); per_batch_item:
    norm per item then mean over the batch (else one norm over the whole tensor); balance:
    False for a plain weighted sum."""

    weights: dict[str, float] = field(default_factory=dict)
    balance: bool = True
    total_norm: float = 1.0
    ema_decay: float = 0.999
    per_batch_item: bool = True
    eps: float = 1e-12

    def __post_init__(self) -> None:
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"BalancerConfig.ema_decay must be in [0, 1), got {self.ema_decay}")
        negative = {k: w for k, w in self.weights.items() if w < 0}
        if negative:
            raise ValueError(f"BalancerConfig.weights must be non-negative, got {negative}")


@dataclass
class BalancerResult:
    """loss: ``sum_k scale_k * loss_k`` (detached; its gradient is ``grad``); grad: the combined
    gradient on the output; scales: the factor applied to each loss's gradient; grad_norms: the
    norm estimates (EMA, averaged across ranks) the scales came from."""

    loss: torch.Tensor
    grad: torch.Tensor
    scales: dict[str, torch.Tensor]
    grad_norms: dict[str, torch.Tensor]


class Balancer:
    """Combines the gradients of named losses on one shared output tensor (see the module doc)."""

    def __init__(self, cfg: BalancerConfig, process_group: Any = None):
        self.cfg = cfg
        self.process_group = process_group
        self._ema_sum: dict[str, torch.Tensor] = {}
        self._ema_count: dict[str, torch.Tensor] = {}

    def combine(self, losses: Mapping[str, torch.Tensor], output: torch.Tensor) -> BalancerResult:
        """Computes the combined gradient on ``output`` without backpropagating it."""
        names = sorted(losses)  # the same order on every rank
        if not names:
            raise ValueError("Balancer needs at least one loss")
        missing = [n for n in names if n not in self.cfg.weights]
        if missing:
            raise ValueError(f"Balancer has no weight for loss(es) {missing}: add them to BalancerConfig.weights")
        grads = {}
        for name in names:
            loss = losses[name]
            if loss.dim() != 0:
                raise ValueError(f"Balancer: loss {name!r} must be a scalar, got shape {tuple(loss.shape)}")
            (grad,) = torch.autograd.grad(loss, [output], retain_graph=True, allow_unused=True)
            if grad is None:
                raise ValueError(f"Balancer: loss {name!r} does not depend on the output tensor; backpropagate it separately")
            grads[name] = grad.float()

        norms = self._update_norms({n: self._norm(g) for n, g in grads.items()}, output.shape[0])
        total_weight = sum(self.cfg.weights[n] for n in names)
        scales = {}
        for name in names:
            w = self.cfg.weights[name]
            if self.cfg.balance:
                share = w / total_weight if total_weight > 0 else 0.0
                scales[name] = self.cfg.total_norm * share / (norms[name] + self.cfg.eps)
            else:
                scales[name] = torch.tensor(float(w), device=output.device)
        combined = torch.zeros_like(output, dtype=torch.float32)
        effective = torch.zeros((), device=output.device)
        for name in names:
            combined += scales[name] * grads[name]
            effective = effective + scales[name] * losses[name].detach().float()
        return BalancerResult(loss=effective, grad=combined.to(output.dtype), scales=scales, grad_norms=norms)

    def backward(self, losses: Mapping[str, torch.Tensor], output: torch.Tensor) -> BalancerResult:
        """Combines the gradients on ``output`` and backpropagates them through the model once."""
        result = self.combine(losses, output)
        output.backward(result.grad)
        return result

    def _norm(self, grad: torch.Tensor) -> torch.Tensor:
        if self.cfg.per_batch_item:
            return torch.linalg.vector_norm(grad.flatten(1), dim=1).mean()
        return torch.linalg.vector_norm(grad)

    def _update_norms(self, norms: dict[str, torch.Tensor], batch: int) -> dict[str, torch.Tensor]:
        """Averages the norms across ranks (weighted by batch size) and folds them into the EMA."""
        names = list(norms)
        stacked = torch.stack([norms[n] for n in names])
        if dist.is_available() and dist.is_initialized():
            count = float(batch) if self.cfg.per_batch_item else 1.0
            packed = torch.cat([stacked * count, stacked.new_tensor([count])])
            dist.all_reduce(packed, op=dist.ReduceOp.SUM, group=self.process_group)
            stacked = packed[:-1] / packed[-1]
        out = {}
        decay = self.cfg.ema_decay
        for i, name in enumerate(names):
            value = stacked[i].detach()
            # Bias-corrected EMA: the first estimate is the first value, not a fraction of it.
            prev_sum = self._ema_sum.get(name, torch.zeros_like(value)).to(value.device)
            prev_count = self._ema_count.get(name, torch.zeros_like(value)).to(value.device)
            self._ema_sum[name] = decay * prev_sum + value
            self._ema_count[name] = decay * prev_count + 1.0
            out[name] = self._ema_sum[name] / self._ema_count[name]
        return out

    def state_dict(self) -> dict[str, dict[str, float]]:
        """The EMA state as plain floats (for a checkpoint)."""
        return {
            "ema_sum": {k: float(v) for k, v in self._ema_sum.items()},
            "ema_count": {k: float(v) for k, v in self._ema_count.items()},
        }

    def load_state_dict(self, state: Mapping[str, Mapping[str, float]]) -> None:
        self._ema_sum = {k: torch.tensor(v) for k, v in state["ema_sum"].items()}
        self._ema_count = {k: torch.tensor(v) for k, v in state["ema_count"].items()}
