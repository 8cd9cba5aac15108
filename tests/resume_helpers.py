"""Callbacks for the resume tests: record each training step (step, batch keys, loss) to a list
or a JSON-lines file, and kill the process (SIGKILL) once a given checkpoint is on disk. Usable
from the CLI (``--trainer.callbacks+=tests.resume_helpers.RecordSteps``)."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import lightning as L
import torch


def _loss(module: L.LightningModule, outputs) -> float:
    if isinstance(outputs, dict) and "loss" in outputs:
        return float(outputs["loss"])
    logged = module.trainer.callback_metrics.get("train/mel")  # the codec logs its mel loss each step
    return float(logged) if logged is not None else float("nan")


class RecordSteps(L.Callback):
    """``steps``: ``(global_step, batch keys, loss)`` per training batch; also appended to
    ``path`` (JSON lines) when given, so a killed process leaves its record behind. A ``{rank}``
    in ``path`` gives every rank its own file; without it only rank 0 writes."""

    def __init__(self, path: str | None = None) -> None:
        self.path = path
        self.steps: list[tuple[int, list[str], float]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        row = (int(trainer.global_step), list(batch.keys), _loss(pl_module, outputs))
        self.steps.append(row)
        if self.path and ("{rank}" in self.path or trainer.global_rank == 0):
            with open(self.path.replace("{rank}", str(trainer.global_rank)), "a") as f:
                f.write(json.dumps(row) + "\n")


def read_steps(path: str | Path) -> list[tuple[int, list[str], float]]:
    return [tuple(json.loads(line)) for line in Path(path).read_text().splitlines()]


class KillAfterCheckpoint(L.Callback):
    """SIGKILL this process at the start of the first batch after global step ``step`` (its
    checkpoint, saved at the end of the step, is then complete on disk)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step >= self.step:
            os.kill(os.getpid(), signal.SIGKILL)


class SignalAtStep(L.Callback):
    """Send ``signal`` (a name: SIGTERM, SIGUSR1) to this process when global step ``step`` ends,
    on rank ``rank`` only: what a cluster does to one task."""

    def __init__(self, step: int, signal: str = "SIGTERM", rank: int = 0) -> None:
        self.step, self.signal, self.rank = step, signal, rank

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.step and trainer.global_rank == self.rank:
            os.kill(os.getpid(), getattr(signal, self.signal))


def params_of(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items() if isinstance(v, torch.Tensor)}
