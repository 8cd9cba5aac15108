"""Random number generator states in checkpoints, per rank, for exact resumption.

:class:`RNGStateCallback` writes into every checkpoint the states of each rank's generators:
torch (CPU and the rank's CUDA device), numpy's and Python's global ones, and any
``torch.Generator`` held as an attribute by a submodule of the LightningModule. The ranks' states
differ, so they are gathered (a collective inside the checkpoint dump, which every rank runs)
and each rank restores its own when training resumes, right before its first batch. Dropout,
condition dropout, VALL-E's random stage and prompt draws all use these generators; the
loader's crops and the quantizer's dropout draw from their own seeded generators, whose
positions are in the checkpoint already.

Validation does not disturb the training stream: the states are saved when validation starts and
put back when it ends, so a resumed run, which may validate at other moments, draws the same
numbers in training as an uninterrupted one.

States are stored as tensors and plain values: checkpoints load with ``weights_only=True``.
"""

from __future__ import annotations

import logging
import random
from typing import Any

import lightning as L
import numpy as np
import torch

from data.loader_state import gather_ranks

log = logging.getLogger("codeclm.train")

CHECKPOINT_KEY = "rng_states"


def module_generators(module: torch.nn.Module) -> dict[str, torch.Generator]:
    """``torch.Generator`` attributes of ``module`` and its submodules, by dotted name."""
    found = {}
    for prefix, sub in module.named_modules():
        for attr, value in vars(sub).items():
            if isinstance(value, torch.Generator):
                found[f"{prefix}.{attr}" if prefix else attr] = value
    return found


def capture(module: torch.nn.Module | None = None) -> dict[str, Any]:
    """This process' generator states as tensors and plain values."""
    _, keys, pos, has_gauss, gauss = np.random.get_state()
    version, py_state, py_gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos), "has_gauss": int(has_gauss),
                  "gauss": float(gauss)},
        "python": {"version": int(version), "state": torch.tensor(py_state, dtype=torch.int64), "gauss": py_gauss},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    if module is not None:
        state["generators"] = {name: g.get_state() for name, g in module_generators(module).items()}
    return state


def restore(state: dict[str, Any], module: torch.nn.Module | None = None) -> None:
    """Put back what :func:`capture` saved."""
    torch.set_rng_state(state["torch"])
    npy = state["numpy"]
    np.random.set_state(("MT19937", npy["keys"].numpy().astype(np.uint32), npy["pos"], npy["has_gauss"], npy["gauss"]))
    py = state["python"]
    random.setstate((py["version"], tuple(int(v) for v in py["state"].tolist()), py["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])
    if module is not None:
        gens = module_generators(module)
        for name, saved in state.get("generators", {}).items():
            if name in gens:
                gens[name].set_state(saved)


class RNGStateCallback(L.Callback):
    """Saves every rank's generator states in checkpoints and restores its own on resume."""

    def __init__(self) -> None:
        self._pending: dict[str, Any] | None = None
        self._outside_validation: dict[str, Any] | None = None

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        ranks = gather_ranks(capture(pl_module), trainer.global_rank, trainer.world_size)
        checkpoint[CHECKPOINT_KEY] = {"world_size": trainer.world_size, "ranks": ranks}

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        saved = checkpoint.get(CHECKPOINT_KEY)
        if saved is None:
            return
        ranks = saved.get("ranks") or []
        rank = trainer.global_rank
        self._pending = ranks[rank] if rank < len(ranks) else None
        if self._pending is None or saved.get("world_size") != trainer.world_size:
            log.warning("the checkpoint holds random states of %s ranks, this run has %d: ranks without a saved "
                        "state keep their seeded generators, so the run will not repeat an uninterrupted one exactly",
                        saved.get("world_size"), trainer.world_size)

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int) -> None:
        if self._pending is not None:
            restore(self._pending, pl_module)
            self._pending = None

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._outside_validation = capture(pl_module)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._outside_validation is not None:
            restore(self._outside_validation, pl_module)
            self._outside_validation = None
