"""Collective helpers for the quantizers; each is a no-op in a single process.

The quantizers keep their codebooks bit-identical on every rank by construction: statistics are
summed over ranks before any update, and every random choice is either made on rank 0 and
broadcast or drawn from a generator seeded identically on all ranks. These helpers use the
default process group (the one Lightning's DDP strategy or ``torchrun`` sets up); nothing here
creates one.
"""

from __future__ import annotations

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    """True when a default process group with more than one rank is running."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over ranks, in place; returns it. Every rank gets the same bits."""
    if is_distributed():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def broadcast(tensor: torch.Tensor, src: int = 0) -> torch.Tensor:
    """Overwrite ``tensor`` on every rank with rank ``src``'s, in place; returns it."""
    if is_distributed():
        dist.broadcast(tensor, src=src)
    return tensor


def all_gather_rows(x: torch.Tensor) -> torch.Tensor:
    """Concatenate every rank's ``x [N_r, ...]`` along dim 0, in rank order.

    Ranks may hold different ``N_r`` (the rest of the shape must match): rows are padded to the
    largest count for the collective and trimmed after.
    """
    if not is_distributed():
        return x
    n = torch.tensor([x.shape[0]], device=x.device, dtype=torch.long)
    sizes = [torch.zeros_like(n) for _ in range(world_size())]
    dist.all_gather(sizes, n)
    counts = [int(s.item()) for s in sizes]
    padded = x.new_zeros((max(counts), *x.shape[1:]))
    padded[: x.shape[0]] = x
    parts = [torch.empty_like(padded) for _ in counts]
    dist.all_gather(parts, padded)
    return torch.cat([p[:c] for p, c in zip(parts, counts)], dim=0)


def sample_rows_from_rank0(
    x: torch.Tensor, n: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """``n`` rows of rank 0's ``x [N, D]`` (with replacement), the same on every rank.

    Rank 0 draws the row indices with ``generator`` (a CPU generator) and broadcasts the rows, so
    the other ranks neither draw nor need an identical ``x``. Every rank must call this together.
    """
    if x.dim() != 2 or x.shape[0] == 0:
        raise ValueError(f"sample_rows_from_rank0 expects a non-empty [N, D] tensor, got {tuple(x.shape)}")
    out = x.new_empty((n, x.shape[1]))
    if rank() == 0:
        idx = torch.randint(x.shape[0], (n,), generator=generator)
        out.copy_(x[idx.to(x.device)])
    return broadcast(out)
