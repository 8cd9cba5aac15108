"""What every stage model returns from ``loss(batch)``: one typed result the shared
LightningModule logs, whatever the stage."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class LMOutput:
    """loss: scalar to minimize (mean cross-entropy over valid target tokens).
    codebook_loss / codebook_accuracy: ``[K]`` per-codebook cross-entropy and top-1 accuracy over
    valid targets (NaN for a codebook with no targets in the batch). tokens: number of valid
    targets, the weight of this batch when averaging."""

    loss: torch.Tensor
    codebook_loss: torch.Tensor
    codebook_accuracy: torch.Tensor
    tokens: int


def masked_codebook_stats(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> LMOutput:
    """Cross-entropy and accuracy of ``logits [B, K, T, V]`` against ``targets [B, K, T]`` where
    ``mask [B, K, T]`` is True; per codebook and overall."""
    b, k, t, v = logits.shape
    if targets.shape != (b, k, t) or mask.shape != (b, k, t):
        raise ValueError(f"logits {tuple(logits.shape)}, targets {tuple(targets.shape)}, mask {tuple(mask.shape)} disagree")
    ce = torch.nn.functional.cross_entropy(logits.float().reshape(-1, v), targets.reshape(-1).clamp_min(0),
                                           reduction="none").reshape(b, k, t)
    m = mask.float()
    per_k_n = m.sum(dim=(0, 2))
    per_k = (ce * m).sum(dim=(0, 2)) / per_k_n.clamp_min(1)
    correct = (logits.argmax(-1) == targets).float() * m
    acc = correct.sum(dim=(0, 2)) / per_k_n.clamp_min(1)
    nan = torch.full_like(per_k, float("nan"))
    n = m.sum()
    return LMOutput(
        loss=(ce * m).sum() / n.clamp_min(1),
        codebook_loss=torch.where(per_k_n > 0, per_k, nan).detach(),
        codebook_accuracy=torch.where(per_k_n > 0, acc, nan).detach(),
        tokens=int(n.item()),
    )
