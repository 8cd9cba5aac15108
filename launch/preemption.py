"""Stopping cleanly when the cluster asks: SIGTERM and SLURM's warning signal.

:class:`PreemptionCallback` (every training command has it) replaces the Trainer's handlers for
``SIGTERM`` and the warning signal (``SIGUSR1`` unless ``CODECLM_REQUEUE_SIGNAL`` names another;
the sbatch templates ask SLURM for it with ``--signal=USR1@120``) once training starts. A
handler only notes the signal. At the end of every training batch the ranks agree on whether any
of them got one (one all-reduce of two flags), so a signal delivered to a single rank stops them
all after the same step. Then:

1. the step that was running has finished; every rank saves one checkpoint together
   (``last.ckpt`` in the run's checkpoint folder, written atomically by
   :class:`~launch.checkpoints.SafeCheckpointIO`);
2. the Trainer stops, the loggers are flushed and the process exits with status 0;
3. after the warning signal under SLURM, rank 0 requeues the job (``scontrol requeue
   $SLURM_JOB_ID``); the requeued job runs the same command, whose ``--ckpt_path auto`` resumes
   from that checkpoint. A plain SIGTERM (``scancel``, a preemption that SLURM requeues itself, a
   Ctrl-C'd torchrun) saves and stops without requeueing.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import threading
from pathlib import Path

import lightning as L
import torch

log = logging.getLogger("codeclm.train")

REQUEUE_SIGNAL_ENV = "CODECLM_REQUEUE_SIGNAL"


_LAST_STOP: str | None = None  # why the last training run of this process stopped on a signal


def stopped_by_signal() -> str | None:
    """One line saying that the last training run of this process stopped early on a signal (after
    saving its checkpoint), or None when it ran to its end. A command that chains trainings (the
    quickstart) checks it before treating a run as finished."""
    return _LAST_STOP


def requeue_signal() -> signal.Signals:
    name = os.environ.get(REQUEUE_SIGNAL_ENV, "SIGUSR1").upper()
    name = name if name.startswith("SIG") else f"SIG{name}"
    try:
        return signal.Signals[name]
    except KeyError:
        raise ValueError(f"{REQUEUE_SIGNAL_ENV}={name!r} is not a signal name (e.g. SIGUSR1)") from None


def slurm_job_id(environ=os.environ) -> str | None:
    """The id ``scontrol requeue`` takes (``ARRAYJOB_TASK`` for array jobs), or None outside SLURM."""
    array_job, task = environ.get("SLURM_ARRAY_JOB_ID"), environ.get("SLURM_ARRAY_TASK_ID")
    job = f"{array_job}_{task}" if array_job and task else environ.get("SLURM_JOB_ID")
    if job is None:
        return None
    if not re.fullmatch(r"[0-9]+(_[0-9]+)?", job):
        raise ValueError(f"unexpected SLURM job id {job!r}")
    return job


def requeue_job(job: str) -> bool:
    """``scontrol requeue JOB``; True when it succeeded."""
    try:
        done = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        log.error("could not requeue SLURM job %s: %s", job, e)
        return False
    if done.returncode != 0:
        log.error("`scontrol requeue %s` failed (%d): %s", job, done.returncode, done.stderr.strip()[-300:])
        return False
    log.warning("requeued SLURM job %s: it resumes from the checkpoint just saved", job)
    return True


def checkpoint_folder(trainer: L.Trainer) -> Path:
    cb = trainer.checkpoint_callback
    folder = getattr(cb, "dirpath", None) if cb is not None else None
    return Path(folder) if folder else Path(trainer.default_root_dir) / "checkpoints"


class PreemptionCallback(L.Callback):
    """Save, stop and (after the warning signal under SLURM) requeue; see the module docstring."""

    def __init__(self, requeue: bool = True) -> None:
        self.requeue = requeue
        self._got: set[int] = set()
        self._previous: dict[int, object] = {}
        self.stopped_at: int | None = None
        self.requeued = False
        self.checkpoint: Path | None = None

    # -- signals ---------------------------------------------------------------------------------
    def _note(self, signum, frame) -> None:  # a signal handler: no I/O, no collectives
        self._got.add(int(signum))

    def _signals(self) -> list[signal.Signals]:
        return [signal.SIGTERM, requeue_signal()]

    def on_train_start(self, trainer, pl_module) -> None:
        global _LAST_STOP
        _LAST_STOP = None
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in self._signals():  # after the Trainer's own handlers, which these replace while training
            self._previous[int(sig)] = signal.getsignal(sig)
            signal.signal(sig, self._note)

    def _restore(self) -> None:
        for sig, handler in self._previous.items():
            if handler is not None:
                signal.signal(sig, handler)
        self._previous = {}

    def on_train_end(self, trainer, pl_module) -> None:
        self._restore()
        if self.stopped_at is None:
            return
        warned = int(requeue_signal()) in self._agreed
        if warned and self.requeue and trainer.is_global_zero:
            job = slurm_job_id()
            if job is None:
                log.warning("got %s outside SLURM: saved and stopped; nothing to requeue", requeue_signal().name)
            else:
                self.requeued = requeue_job(job)

    def on_exception(self, trainer, pl_module, exception) -> None:
        self._restore()

    # -- the decision, taken by all ranks together ----------------------------------------------
    def _agree(self, trainer, device: torch.device) -> set[int]:
        sigs = [int(s) for s in self._signals()]
        flags = torch.tensor([float(s in self._got) for s in sigs], device=device)
        if trainer.world_size > 1 and torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(flags, op=torch.distributed.ReduceOp.MAX)
        return {s for s, f in zip(sigs, flags.tolist()) if f > 0}

    @staticmethod
    def _save(trainer) -> Path:
        """One checkpoint, written by all ranks together: the run's ``last`` checkpoint when a
        ModelCheckpoint keeps one (so it is not written a second time when training ends), else
        ``last.ckpt`` in the checkpoint folder."""
        cb = trainer.checkpoint_callback
        if cb is not None and getattr(cb, "save_last", False) and hasattr(cb, "_save_last_checkpoint"):
            cb._save_last_checkpoint(trainer, cb._monitor_candidates(trainer))
            return Path(cb.last_model_path)
        path = checkpoint_folder(trainer) / "last.ckpt"
        trainer.save_checkpoint(path)
        return path

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.stopped_at is not None:
            return
        agreed = self._agree(trainer, pl_module.device)
        if not agreed:
            return
        self._agreed = agreed
        names = ", ".join(signal.Signals(s).name for s in sorted(agreed))
        self.stopped_at = int(trainer.global_step)
        self.checkpoint = self._save(trainer)
        global _LAST_STOP
        _LAST_STOP = f"{names} received: training saved {self.checkpoint} after step {self.stopped_at} and stopped"
        if trainer.is_global_zero:
            log.warning("%s received: saved %s after step %d; stopping", names, self.checkpoint, self.stopped_at)
        trainer.should_stop = True
        # nothing else runs before the loop ends: no end-of-epoch validation on a deadline
        trainer.limit_val_batches = 0
