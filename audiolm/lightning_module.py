"""One LightningModule for every language-model stage: the stage model is passed in.

A stage model is an ``nn.Module`` with ``loss(batch: TokenBatch) -> LMOutput``; this module adds
the optimizer and its schedule, and logs the loss with per-codebook loss and accuracy. A step
whose loss or gradients are not finite on any rank is skipped on all of them
(:mod:`data.numerics`).
A stage model with ``length_stats`` (the VALL-E AR stage) has each training batch's frames per
text token added to them, summed over every rank first (so all ranks hold the same numbers); they
also travel at the checkpoint's top level, so a resumed run (FSDP included, whose model state
leaves extra state out) continues them.
Precision (bf16 on GPU) and parallelism come from the Trainer, compilation from ``compile``; under
``ModelParallelStrategy`` the model is sharded with FSDP (:mod:`audiolm.parallelize`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import lightning as L
import torch
from torch import nn

from audiolm.output import LMOutput
from data.batch import TokenBatch
from data.numerics import NonFiniteGuard


@dataclass
class LMOptimConfig:
    """AdamW with linear warm-up and cosine decay to ``min_lr_ratio * lr`` at ``decay_steps``."""

    lr: float = 3e-4
    betas: tuple[float, float] = (0.9, 0.95)
    weight_decay: float = 0.1
    warmup_steps: int = 100
    decay_steps: int | None = None
    min_lr_ratio: float = 0.1


class LMModule(L.LightningModule):
    """Args:
        model: the stage model (``audiolm.models.*``), built from its own config.
        optim: optimizer settings (:class:`LMOptimConfig`).
        max_nonfinite_steps: stop (with a debug checkpoint) after this many skipped non-finite
            steps in a row.
    """

    def __init__(self, model: nn.Module, optim: LMOptimConfig | None = None, max_nonfinite_steps: int = 5,
                 compile: bool = False) -> None:
        """compile: ``torch.compile`` every transformer core of the stage model in place (the part
        that compiles without graph breaks; the stage's token bookkeeping stays eager), once the
        model is on its device and, under FSDP, sharded. Checkpoints are unchanged by it."""
        super().__init__()
        self.compile_core = compile
        if not callable(getattr(model, "loss", None)):
            raise ValueError(f"{type(model).__name__} has no loss(batch) method: it is not a stage model")
        self.model = model
        self.optim_cfg = optim or LMOptimConfig()
        self.nonfinite = NonFiniteGuard(max_nonfinite_steps)
        self._step_losses: list[torch.Tensor] = []  # the losses behind the next optimizer step

    def configure_model(self) -> None:
        """Under ``ModelParallelStrategy``: shard the stage model with FSDP (:mod:`audiolm.parallelize`).
        With ``compile``: compile the transformer cores."""
        if getattr(self, "_device_mesh", None) is not None and not getattr(self, "_sharded", False):
            from audiolm.parallelize import flat_mesh, shard_model

            shard_model(self.model, flat_mesh(self.device.type))
            self._sharded = True
        if self.compile_core and not getattr(self, "_compiled", False):
            from audiolm.nn import Transformer

            cores = [m for m in self.model.modules() if isinstance(m, Transformer)]
            for core in cores:
                core.compile()  # in place: parameter names (and checkpoints) stay as they are
            self._compiled = bool(cores)

    def _log_output(self, out: LMOutput, stage: str, batch_size: int) -> None:
        sync = stage != "train"
        self.log(f"{stage}/loss", out.loss.detach(), prog_bar=True, batch_size=batch_size, sync_dist=sync)
        for k, (loss, acc) in enumerate(zip(out.codebook_loss.tolist(), out.codebook_accuracy.tolist())):
            if not math.isnan(loss):
                self.log(f"{stage}/loss_k{k}", loss, batch_size=batch_size, sync_dist=sync)
                self.log(f"{stage}/acc_k{k}", acc, batch_size=batch_size, sync_dist=sync)

    def training_step(self, batch: TokenBatch, batch_idx: int) -> torch.Tensor:
        out = self.model.loss(batch)
        self._observe_lengths(batch)
        self._log_output(out, "train", len(batch))
        self._step_losses.append(out.loss.detach())
        return out.loss

    def _observe_lengths(self, batch: TokenBatch) -> None:
        stats = getattr(self.model, "length_stats", None)
        if stats is None:
            return
        sums = stats.batch_sums(batch)
        if self.trainer.world_size > 1:
            sums = self.trainer.strategy.reduce(sums, reduce_op="sum")
        stats.add(sums, batch.frame_rate)

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        params = [p for group in optimizer.param_groups for p in group["params"]]
        losses, self._step_losses = self._step_losses, []
        ok = self.nonfinite.finite(self, torch.stack(losses) if losses else None, params)
        if not ok:
            self.nonfinite.drop_gradients(params)
        self.nonfinite.record(self, ok)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["nonfinite"] = self.nonfinite.state_dict()
        stats = getattr(self.model, "length_stats", None)
        if stats is not None:
            checkpoint["length_stats"] = stats.state_dict()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if "nonfinite" in checkpoint:
            self.nonfinite.load_state_dict(checkpoint["nonfinite"])
        stats = getattr(self.model, "length_stats", None)
        if stats is not None and "length_stats" in checkpoint:
            stats.load_state_dict(checkpoint["length_stats"])

    def validation_step(self, batch: TokenBatch, batch_idx: int) -> None:
        self._log_output(self.model.loss(batch), "val", len(batch))

    def configure_optimizers(self) -> dict[str, Any]:
        cfg = self.optim_cfg
        decay, no_decay = [], []
        for p in self.model.parameters():
            if p.requires_grad:
                (decay if p.dim() >= 2 else no_decay).append(p)
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                                 {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=tuple(cfg.betas))

        def schedule(step: int) -> float:
            if cfg.warmup_steps and step < cfg.warmup_steps:
                return (step + 1) / cfg.warmup_steps
            if not cfg.decay_steps:
                return 1.0
            t = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.decay_steps - cfg.warmup_steps))
            return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
