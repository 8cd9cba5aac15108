"""`codeclm lm fit` as a user runs it: a child process (so it can be killed and signalled) on the
shared real token shards, with a tiny VALL-E NAR (dropout on: random draws must resume too)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.resume_helpers import read_steps

REPO = Path(__file__).resolve().parents[2]


def lm_argv(shards: dict, root: Path, max_steps: int, *extra: str, workers: int = 0) -> list[str]:
    return ["lm", "fit", "--config", str(REPO / "configs/lm/valle-nar-tiny.yaml"),
            "--data.shards", str(shards["tokens"]), "--data.text_model", str(shards["phonemes"]),
            "--data.loader.batch_size", "2", "--data.loader.max_frames", "40", "--data.loader.longer", "crop", "--data.loader.shuffle_buffer", "4",
            "--data.loader.epoch_samples", "12", "--data.num_workers", str(workers),
            "--model.model.init_args.cfg.cardinality", "32", "--model.model.init_args.cfg.dim", "16",
            "--model.model.init_args.cfg.layers", "1", "--model.model.init_args.cfg.heads", "2",
            "--model.model.init_args.cfg.dropout", "0.2", "--model.optim.warmup_steps", "2",
            "--trainer.max_steps", str(max_steps), "--trainer.default_root_dir", str(root),
            "--trainer.logger", "false", "--trainer.enable_progress_bar", "false",
            "--trainer.callbacks+=tests.resume_helpers.RecordSteps",
            "--trainer.callbacks.path", str(root / "steps-{rank}.jsonl"), *extra]


def every_step_checkpoints(root: Path) -> list[str]:
    return ["--trainer.callbacks+=ModelCheckpoint", "--trainer.callbacks.dirpath", str(root / "ckpt"),
            "--trainer.callbacks.every_n_train_steps", "1", "--trainer.callbacks.save_top_k", "-1",
            "--trainer.callbacks.filename", "{step}"]


def child_env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "WANDB_"))}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=str(REPO), **extra)
    return env


def run_codeclm(argv: list[str], env: dict | None = None, timeout: float = 300, launcher: list[str] | None = None):
    cmd = [*(launcher or [sys.executable, "-m", "launch.cli"]), *argv]
    return subprocess.run(cmd, cwd=REPO, env=env or child_env(), capture_output=True, text=True, timeout=timeout)


def steps_of(root: Path, rank: int = 0) -> list[tuple[int, list[str], float]]:
    path = root / f"steps-{rank}.jsonl"
    return read_steps(path) if path.exists() else []
