"""Skipping optimizer steps whose loss or gradients are not finite, alike on every rank.

It sits at the bottom of the package layers (beside the batch contracts) because both model
families train with it; it depends on torch alone.

:class:`NonFiniteGuard` is shared by the training modules (``LMModule``: automatic optimization,
checked in ``on_before_optimizer_step``; ``CodecModule``: manual optimization, checked before
each of its two optimizer steps). A check is one all-reduce of a flag, so every rank takes the
same decision even when only one of them saw a NaN. A skipped step drops the gradients (set to
None: the optimizer then leaves every parameter and its own state alone), counts the skip and
logs it. After ``max_in_a_row`` skipped steps in a row the run saves a debug checkpoint
(``nonfinite-step=N.ckpt`` beside the run's checkpoints, holding the state from before the bad
steps) and stops with :class:`NonFiniteError`.

Under fp16 mixed precision the gradient scaler owns overflowing gradients (it skips those steps
and lowers its scale), so only the loss is checked there.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Iterable

import torch

log = logging.getLogger("codeclm.train")


class NonFiniteError(RuntimeError):
    """Too many optimizer steps in a row had a non-finite loss or gradients."""


class NonFiniteGuard:
    """Counts and decides skips of non-finite steps; ``state_dict`` goes into checkpoints."""

    def __init__(self, max_in_a_row: int = 5) -> None:
        if max_in_a_row < 1:
            raise ValueError(f"max_nonfinite_steps must be at least 1, got {max_in_a_row}")
        self.max_in_a_row = max_in_a_row
        self.skipped = 0
        self.in_a_row = 0

    # -- the decision ----------------------------------------------------------------------------
    def finite(self, module, loss: torch.Tensor | None, params: Iterable[torch.nn.Parameter]) -> bool:
        """True when ``loss`` and the gradients of ``params`` are finite on every rank."""
        trainer = module.trainer
        bad = torch.zeros((), device=module.device)
        if loss is not None:
            bad = bad + (~torch.isfinite(loss.detach().float())).any().float()
        if getattr(trainer.precision_plugin, "scaler", None) is None:
            grads = [p.grad for p in params if p.grad is not None]
            if grads:
                norm = torch.nn.utils.get_total_norm(grads, error_if_nonfinite=False)
                if hasattr(norm, "full_tensor"):  # FSDP's sharded gradients: the norm over every shard
                    norm = norm.full_tensor()
                bad = bad + (~torch.isfinite(norm)).float().to(bad.device)
        bad = trainer.strategy.reduce(bad, reduce_op="sum")
        return bool(bad.item() == 0)

    @staticmethod
    def drop_gradients(params: Iterable[torch.nn.Parameter]) -> None:
        for p in params:
            p.grad = None

    # -- counting, logging, stopping -------------------------------------------------------------
    def record(self, module, ok: bool, what: str = "loss or gradients") -> None:
        """Count one step's outcome; log the totals; stop after too many skips in a row."""
        if ok:
            self.in_a_row = 0
        else:
            self.skipped += 1
            self.in_a_row += 1
            if module.global_rank == 0:
                log.warning("step %d: non-finite %s; the update was skipped on every rank (%d skipped in all, "
                            "%d in a row)", module.global_step, what, self.skipped, self.in_a_row)
        module.log("train/nonfinite_skipped", float(self.skipped), batch_size=1)
        if self.in_a_row >= self.max_in_a_row:
            self._stop(module, what)

    def _stop(self, module, what: str) -> None:
        trainer = module.trainer
        folder = getattr(trainer.checkpoint_callback, "dirpath", None) or Path(trainer.default_root_dir) / "checkpoints"
        path = Path(folder) / f"nonfinite-step={module.global_step}.ckpt"
        trainer.save_checkpoint(path)
        msg = (f"{self.in_a_row} optimizer steps in a row had a non-finite {what} (the last at step "
               f"{module.global_step}); training stopped. The state before them is saved in {path}: lower the "
               f"learning rate, check the data, or allow more with model.max_nonfinite_steps")
        if module.global_rank == 0:
            log.error(msg)
        raise NonFiniteError(msg)

    # -- checkpoints ----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, int]:
        return {"skipped": self.skipped, "in_a_row": self.in_a_row}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.skipped, self.in_a_row = int(state.get("skipped", 0)), int(state.get("in_a_row", 0))


def snapshot_tensors(obj: Any) -> dict[str, Any]:
    """A copy of an object's attributes, cloning tensors and dicts of tensors (for state that a
    skipped step must leave as it was, e.g. the gradient balancer's running norms)."""
    def copy(v: Any) -> Any:
        if isinstance(v, torch.Tensor):
            return v.detach().clone()
        if isinstance(v, dict):
            return {k: copy(x) for k, x in v.items()}
        return v

    return {k: copy(v) for k, v in vars(obj).items()}


def restore_tensors(obj: Any, snapshot: dict[str, Any]) -> None:
    vars(obj).update(snapshot)
