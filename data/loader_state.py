"""Where a training loader stands in its epoch, and how a resumed loader gets back there.

A training epoch of :class:`data.webdataset.ShardDataset` is a pure function of (seed, epoch,
rank, worker, workers). Each (rank, worker) slot reads a stream of raw samples (shard picks and
a shuffle buffer over undecoded samples), decodes them in order and batches the good ones. The
position of a rank is therefore

- the epoch and the number of batches the training loop has taken from the loader, and
- per worker slot, how many raw samples it had pulled when it made the last batch taken
  (its *cursor*: decoded or skipped as bad, every raw sample counts).

On resume, each slot replays its raw stream up to its cursor without decoding anything, then
goes on decoding: the batches that follow are the ones an uninterrupted run would have made.

A DataLoader with ``N`` workers takes batch ``i`` of an epoch from worker ``i % N``. After ``c``
batches the next one belongs to slot ``c % N``, but a new DataLoader iterator starts at its
worker 0; so DataLoader worker ``j`` plays slot ``(j + c) % N`` (``ResumePlan.offset``), and the
round robin goes on exactly where it stopped.

States are plain ints and lists (they load with ``torch.load(weights_only=True)``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import torch.distributed as dist

log = logging.getLogger("codeclm.data")

STATE_VERSION = 1


@dataclass
class ResumePlan:
    """What each worker slot skips when an epoch resumes: ``cursors[w]`` raw samples and
    ``batches[w]`` batches of slot ``w``; DataLoader worker ``j`` plays slot ``(j + offset) % N``."""

    offset: int
    cursors: list[int]
    batches: list[int]

    def slot(self, worker: int, workers: int) -> int:
        return (worker + self.offset) % workers


@dataclass
class LoaderPosition:
    """The position of one rank in one epoch, kept by the main process as batches arrive."""

    epoch: int
    workers: int
    batches: int = 0
    cursors: list[int] = field(default_factory=list)
    worker_batches: list[int] = field(default_factory=list)

    @classmethod
    def start(cls, epoch: int, workers: int, plan: ResumePlan | None) -> "LoaderPosition":
        if plan is None:
            return cls(epoch, workers, 0, [0] * workers, [0] * workers)
        return cls(epoch, workers, sum(plan.batches), list(plan.cursors), list(plan.batches))

    def advance(self, slot: int, cursor: int) -> None:
        if slot != self.batches % self.workers:
            log.warning("batch %d of epoch %d came from worker slot %d, not %d: the DataLoader did not take "
                        "batches round robin (in_order=False?), so a resume will not be exact",
                        self.batches, self.epoch, slot, self.batches % self.workers)
        self.cursors[slot] = cursor
        self.worker_batches[slot] += 1
        self.batches += 1

    def own_state(self) -> dict[str, Any]:
        return {"cursors": list(self.cursors), "worker_batches": list(self.worker_batches)}


def worker_share(n: int, worker: int, workers: int) -> int:
    """How many of ``n`` round-robin items fall to ``worker`` of ``workers``."""
    return n // workers + (1 if worker < n % workers else 0)


def gather_ranks(own: dict[str, Any], rank: int, world: int) -> list[dict[str, Any] | None]:
    """Every rank's ``own`` (a collective under torch.distributed: all ranks must call it, as they
    all do when Lightning saves a checkpoint); without a process group only this rank's entry is
    known and the others are None."""
    if world > 1 and dist.is_available() and dist.is_initialized() and dist.get_world_size() == world:
        out: list[Any] = [None] * world
        dist.all_gather_object(out, own)
        return out
    ranks: list[dict[str, Any] | None] = [None] * world
    ranks[rank] = own
    return ranks


def loader_state(pos: LoaderPosition, rank: int, world: int, batch_size: int, seed: int) -> dict[str, Any]:
    return {
        "version": STATE_VERSION, "epoch": pos.epoch, "batches": pos.batches, "workers": pos.workers,
        "world_size": world, "batch_size": batch_size, "seed": seed,
        "ranks": gather_ranks(pos.own_state(), rank, world),
    }


def plan_from_state(state: dict[str, Any], rank: int, world: int, workers: int, batch_size: int, seed: int,
                    batches_per_rank: int) -> tuple[int, ResumePlan | None]:
    """``(epoch to run next, plan or None)`` from a saved :func:`loader_state`. A finished epoch
    resumes at the start of the next one. When the run's shape changed (ranks, workers, batch
    size, seed) the position cannot be replayed exactly: the epoch goes on with its remaining
    batches, each slot skipping about its share of the samples, and a warning says so."""
    if state.get("version") != STATE_VERSION:
        raise ValueError(f"loader state version {state.get('version')!r} is not {STATE_VERSION}: "
                         "this checkpoint was written by another codeclm version")
    epoch, done = int(state["epoch"]), int(state["batches"])
    if done >= batches_per_rank:
        return epoch + 1, None
    ranks = state.get("ranks") or []
    own = ranks[rank] if rank < len(ranks) else None
    same = (int(state["world_size"]), int(state["workers"]), int(state["batch_size"]), int(state["seed"])) == (
        world, workers, batch_size, seed)
    if same and own is not None:
        return epoch, ResumePlan(done % workers, [int(c) for c in own["cursors"]],
                                 [int(b) for b in own["worker_batches"]])
    log.warning("the data position cannot be restored exactly (saved with %s ranks x %s workers, batch %s, seed %s; "
                "now %d x %d, batch %d, seed %d): epoch %d goes on with its remaining %d batches in a new order",
                state["world_size"], state["workers"], state["batch_size"], state["seed"], world, workers,
                batch_size, seed, epoch, batches_per_rank - done)
    shares = [worker_share(done, w, workers) for w in range(workers)]
    return epoch, ResumePlan(done % workers, [s * batch_size for s in shares], shares)
