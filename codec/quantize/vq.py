"""One codebook level: the EMA Euclidean codebook, and what every codebook level shares.

Shared by the levels (``EMACodebook`` here, ``FactorizedCodebook`` in ``factorized.py``):

- ``CodebookOutput``: the typed result of a level's ``forward``.
- ``straight_through(x, q)``: the straight-through estimator.
- ``synced_kmeans`` / ``step_generator``: k-means init and random draws that agree across ranks.

Distributed contract: in training, ``forward`` is a collective (every rank must call it, in the
same order, as DDP already requires): statistics are summed over ranks before any update, and
k-means init and dead-code replacement are decided identically on every rank, so the codebooks
stay bit-identical without relying on DDP's buffer broadcast. In eval mode, ``forward``,
``encode`` and ``decode`` never communicate (safe on one rank only, e.g. for logging samples).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable, TypeVar

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from codec.quantize import distributed as qdist
from data.kmeans import kmeans, nearest


@dataclass
class CodebookOutput:
    """What one codebook level returns for an input ``x [B, D, T]``.

    quantized: ``[B, D, T]``, the straight-through output: the value of ``decode(codes)``
        exactly; its gradient reaches ``x`` (unchanged for the EMA codebook, through the
        projections for the factorized one).
    lookup: ``[B, D, T]``, the same value, without gradient.
    codes: ``[B, T]`` int64.
    commit_loss: scalar, ``mean ||x - sg(q)||^2`` (unweighted).
    codebook_loss: scalar, the loss that trains a learned codebook (zero for the EMA codebook).
    counts: ``[bins]`` int64, how often each code was used (summed over ranks in training).
    """

    quantized: torch.Tensor
    lookup: torch.Tensor
    codes: torch.Tensor
    commit_loss: torch.Tensor
    codebook_loss: torch.Tensor
    counts: torch.Tensor


class _StraightThrough(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        return q.clone()

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return grad, grad


def straight_through(x: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """The value of ``q``, with the gradient passed to both ``x`` and ``q`` unchanged.

    Same gradient as ``x + (q - x).detach()`` (plus ``q``'s own path), but the value is exactly
    ``q``: ``x + (q - x)`` can differ from ``q`` in the last bit, which would break
    ``decode(codes) == quantized``.
    """
    if x.shape != q.shape:
        raise ValueError(f"straight_through needs equal shapes, got {tuple(x.shape)} and {tuple(q.shape)}")
    if torch.is_grad_enabled() and (x.requires_grad or q.requires_grad):
        return _StraightThrough.apply(x, q)
    return q


_Method = TypeVar("_Method", bound=Callable)


def full_precision(method: _Method) -> _Method:
    """Run ``method(self, tensor, ...)`` with autocast off (on the tensor's device type):
    distances, EMA statistics and projections stay in float32 under mixed precision."""

    @functools.wraps(method)
    def wrapper(self, tensor: torch.Tensor, *args, **kwargs):
        with torch.autocast(tensor.device.type, enabled=False):
            return method(self, tensor, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


def mix_seed(*values: int) -> int:
    """A 62-bit seed from integers (order matters)."""
    h = 0x9E3779B97F4A7C15
    for v in values:
        h = (h ^ (int(v) & 0xFFFFFFFFFFFFFFFF)) * 0x100000001B3 % (1 << 64)
    return h >> 2


def seed_generator(*values: int) -> torch.Generator:
    """A CPU generator seeded by ``mix_seed(*values)``: the same draws wherever those agree."""
    return torch.Generator().manual_seed(mix_seed(*values))


def step_generator(seed: int, salt: int, step: torch.Tensor) -> torch.Generator:
    """A CPU generator seeded by ``(seed, salt, step)`` (``step`` a scalar tensor)."""
    return seed_generator(seed, salt, int(step.item()))


def synced_kmeans(
    x: torch.Tensor, bins: int, iters: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """k-means over every rank's rows of ``x [N, D]``: ``(centroids [bins, D], counts [bins])``.

    Rows are gathered from all ranks, k-means runs on rank 0 and its result is broadcast, so
    every rank gets the same bits. ``counts`` (float) is how many gathered rows each centroid got.
    """
    data = qdist.all_gather_rows(x.detach().float())
    centroids = x.new_zeros((bins, x.shape[1]), dtype=torch.float32)
    counts = x.new_zeros((bins,), dtype=torch.float32)
    if qdist.rank() == 0:
        centroids.copy_(kmeans(data, bins, iters, generator))
        counts.copy_(torch.bincount(nearest(data, centroids), minlength=bins).float())
    return qdist.broadcast(centroids), qdist.broadcast(counts)


def check_input(x: torch.Tensor, dim: int, name: str) -> tuple[int, int, int]:
    if x.dim() != 3 or x.shape[1] != dim:
        raise ValueError(f"{name} expects [B, {dim}, T], got {tuple(x.shape)}")
    b, d, t = x.shape
    return b, d, t


def check_codes(codes: torch.Tensor, name: str) -> None:
    if codes.dim() != 2 or codes.dtype not in (torch.int32, torch.int64):
        raise ValueError(f"{name}.decode expects integer codes [B, T], got {tuple(codes.shape)} {codes.dtype}")


SALT_INIT, SALT_KMEANS, SALT_EXPIRE = 0, 1, 2


class EMACodebook(nn.Module):
    """Euclidean codebook updated by exponential moving averages (VQ-VAE-2 / SoundStream style).

    ``forward(x [B, dim, T]) -> CodebookOutput``; ``encode(x) -> codes [B, T]``;
    ``decode(codes [B, T]) -> [B, dim, T]``. The codebook ``embed [bins, dim]`` is a buffer: it is
    never trained by gradients. Each training ``forward``, in order:

    1. first call only: k-means init from the batch of every rank (``kmeans_init``), or else
       rank 0's random codebook is broadcast;
    2. the input is quantized with this codebook (the codes and values returned);
    3. counts and per-code sums are summed over ranks, folded into the EMAs with ``decay``, and
       ``embed = embed_avg / laplace_smoothed(cluster_size)``;
    4. dead codes, whose EMA cluster size is below ``threshold_ema_dead_code``, are replaced by
       random input vectors of rank 0's batch (size reset to the threshold), for the next batch.

    Cluster sizes count assignments in the global batch (all ranks), so the dead-code threshold
    is in those units. The initial random codebook is drawn from a generator seeded by ``seed``
    (not the global RNG), so every rank builds the same one. Computed in float32; the outputs are
    float32.
    """

    def __init__(
        self,
        dim: int,
        bins: int,
        decay: float = 0.99,
        eps: float = 1e-5,
        kmeans_init: bool = True,
        kmeans_iters: int = 10,
        threshold_ema_dead_code: float = 2.0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.dim, self.bins, self.decay, self.eps = dim, bins, decay, eps
        self.kmeans_init, self.kmeans_iters = kmeans_init, kmeans_iters
        self.threshold = threshold_ema_dead_code
        self.seed = seed
        embed = torch.randn(bins, dim, generator=seed_generator(seed, SALT_INIT))
        self.register_buffer("embed", embed)
        self.register_buffer("embed_avg", embed.clone())
        self.register_buffer("cluster_size", torch.ones(bins))
        self.register_buffer("inited", torch.tensor(False))
        self.register_buffer("steps", torch.tensor(0, dtype=torch.long))

    def extra_repr(self) -> str:
        return f"dim={self.dim}, bins={self.bins}, decay={self.decay}, threshold={self.threshold}"

    @full_precision
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        b, _, _ = check_input(x, self.dim, "EMACodebook")
        flat = rearrange(x.detach().float(), "b d t -> (b t) d")
        return rearrange(nearest(flat, self.embed), "(b t) -> b t", b=b)

    @full_precision
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        check_codes(codes, "EMACodebook")
        return rearrange(F.embedding(codes, self.embed), "b t d -> b d t")

    @full_precision
    def forward(self, x: torch.Tensor) -> CodebookOutput:
        b, _, _ = check_input(x, self.dim, "EMACodebook")
        x = x.float()
        flat = rearrange(x.detach(), "b d t -> (b t) d")  # [N, D]
        if self.training:
            with torch.no_grad():
                self._init(flat)
        codes_flat = nearest(flat, self.embed)  # [N]
        codes = rearrange(codes_flat, "(b t) -> b t", b=b)
        lookup = self.decode(codes)  # a fresh tensor: later in-place updates leave it alone
        if self.training:
            with torch.no_grad():
                counts = self._ema_update(flat, codes_flat)
                # after this batch's codes are chosen: a code planted on one of these vectors would
                # win at least that vector, flattering the batch's usage and its reconstruction
                self._expire(flat)
            self.steps += 1
        else:
            counts = torch.bincount(codes_flat, minlength=self.bins)
        return CodebookOutput(
            quantized=straight_through(x, lookup),
            lookup=lookup,
            codes=codes,
            commit_loss=F.mse_loss(x, lookup.detach()),
            codebook_loss=x.new_zeros(()),
            counts=counts,
        )

    def _init(self, flat: torch.Tensor) -> None:
        if bool(self.inited):
            return
        if self.kmeans_init or int(self.steps) > 0:  # a restart (see ``restart``) always uses k-means
            g = step_generator(self.seed, SALT_KMEANS, self.steps)
            centroids, counts = synced_kmeans(flat, self.bins, self.kmeans_iters, g)
            self.embed.copy_(centroids)
            self.cluster_size.copy_(counts)
            self.embed_avg.copy_(centroids * counts.unsqueeze(1))
        else:
            for buf in (self.embed, self.embed_avg, self.cluster_size):
                qdist.broadcast(buf)
        self.inited.fill_(True)

    def restart(self) -> None:
        """Re-initialise the codebook by k-means on the next training batch (every rank at once)."""
        self.inited.fill_(False)

    def _expire(self, flat: torch.Tensor) -> None:
        if self.threshold <= 0:
            return
        expired = self.cluster_size < self.threshold  # identical on all ranks
        if not bool(expired.any()):
            return
        g = step_generator(self.seed, SALT_EXPIRE, self.steps)
        samples = qdist.sample_rows_from_rank0(flat, self.bins, g)  # [bins, D]
        mask = expired.unsqueeze(1)
        self.embed.copy_(torch.where(mask, samples, self.embed))
        self.embed_avg.copy_(torch.where(mask, samples * self.threshold, self.embed_avg))
        self.cluster_size.masked_fill_(expired, self.threshold)

    def _ema_update(self, flat: torch.Tensor, codes_flat: torch.Tensor) -> torch.Tensor:
        """Fold this step's (rank-summed) statistics into the EMAs; returns the counts (int64)."""
        counts = torch.bincount(codes_flat, minlength=self.bins).float()  # [bins]
        sums = torch.zeros_like(self.embed).index_add_(0, codes_flat, flat)  # [bins, D]
        stats = qdist.all_reduce_sum(torch.cat([counts, sums.flatten()]))  # one collective
        counts = stats[: self.bins]
        sums = rearrange(stats[self.bins :], "(k d) -> k d", k=self.bins)
        self.cluster_size.lerp_(counts, 1 - self.decay)
        self.embed_avg.lerp_(sums, 1 - self.decay)
        n = self.cluster_size.sum()
        smoothed = (self.cluster_size + self.eps) / (n + self.bins * self.eps) * n
        self.embed.copy_(self.embed_avg / smoothed.unsqueeze(1))
        return counts.round().long()
