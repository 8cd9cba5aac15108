"""Factorized, L2-normalized codebook (DAC style): look codes up in a small projected space.

``x [B, dim, T]`` is projected by a weight-normed 1x1 conv to ``z_e [B, codebook_dim, T]``
(e.g. 8 channels); the code is the codebook row of highest cosine similarity with ``z_e`` (both
L2-normalized for the search); the raw codebook row ``z_q`` is projected back to ``dim`` channels
by a second weight-normed 1x1 conv. The codebook is an ``nn.Parameter`` trained by
``codebook_loss = mean ||sg(z_e) - z_q||^2``; ``commit_loss = mean ||z_e - sg(z_q)||^2`` pulls
the input (and ``in_proj``) towards its code.

Gradients: the straight-through estimator acts in the small space, ``quantized =
out_proj(st(z_e, sg(z_q)))`` (value ``out_proj(z_q)``, gradient ``in_proj^T out_proj^T g`` to the
input), as in DAC. The input therefore only learns along the directions the level can represent,
and ``commit_loss`` pulls exactly those directions towards the code. Passing the gradient to the
input unchanged instead (identity straight-through in ``dim`` channels) lets the components that
``in_proj`` ignores drift without any restoring force: under adversarial training they grew
until every frame's cosine lookup fell on the same few codes.

Dead codes (EMA usage below ``threshold_ema_dead_code``) are replaced by projected input
vectors of rank 0's batch, and an optional k-means init runs on the first training batch, both
identical on every rank (see ``vq.py`` for the distributed contract).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from codec.quantize import distributed as qdist
from codec.quantize.vq import (
    SALT_EXPIRE,
    SALT_INIT,
    SALT_KMEANS,
    CodebookOutput,
    check_codes,
    check_input,
    full_precision,
    seed_generator,
    step_generator,
    straight_through,
    synced_kmeans,
)


def _seeded_conv(c_in: int, c_out: int, generator: torch.Generator) -> nn.Conv1d:
    """A 1x1 conv with PyTorch's default init, drawn from ``generator``."""
    conv = nn.Conv1d(c_in, c_out, kernel_size=1)
    bound = 1.0 / math.sqrt(c_in)
    with torch.no_grad():
        conv.weight.uniform_(-bound, bound, generator=generator)
        conv.bias.uniform_(-bound, bound, generator=generator)
    return conv


class FactorizedCodebook(nn.Module):
    """DAC-style codebook level. ``forward(x [B, dim, T]) -> CodebookOutput``;
    ``encode(x) -> codes [B, T]``; ``decode(codes [B, T]) -> [B, dim, T]``.

    ``decay`` only smooths the usage statistics (``cluster_size``, counts in the global batch)
    that decide which codes are dead. The initial weights are drawn from a generator seeded by
    ``seed`` (not the global RNG), so every rank builds the same ones. Computed in float32; the
    outputs are float32.
    """

    def __init__(
        self,
        dim: int,
        bins: int,
        codebook_dim: int = 8,
        decay: float = 0.99,
        kmeans_init: bool = True,
        kmeans_iters: int = 10,
        threshold_ema_dead_code: float = 2.0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.dim, self.bins, self.codebook_dim, self.decay = dim, bins, codebook_dim, decay
        self.kmeans_init, self.kmeans_iters = kmeans_init, kmeans_iters
        self.threshold = threshold_ema_dead_code
        self.seed = seed
        g = seed_generator(seed, SALT_INIT)
        self.in_proj = weight_norm(_seeded_conv(dim, codebook_dim, g))
        self.out_proj = weight_norm(_seeded_conv(codebook_dim, dim, g))
        self.codebook = nn.Parameter(torch.randn(bins, codebook_dim, generator=g))
        self.register_buffer("cluster_size", torch.ones(bins))
        self.register_buffer("inited", torch.tensor(False))
        self.register_buffer("steps", torch.tensor(0, dtype=torch.long))

    def extra_repr(self) -> str:
        return f"dim={self.dim}, bins={self.bins}, codebook_dim={self.codebook_dim}, threshold={self.threshold}"

    def _nearest(self, flat: torch.Tensor) -> torch.Tensor:
        """Codes of highest cosine similarity: ``[N, codebook_dim] -> [N]``."""
        e = F.normalize(flat, dim=-1)
        c = F.normalize(self.codebook.detach(), dim=-1)
        return (e @ c.t()).argmax(-1)

    def _latent(self, codes: torch.Tensor) -> torch.Tensor:
        """Raw codebook rows ``[B, T] -> [B, codebook_dim, T]`` (gradient reaches the codebook)."""
        return rearrange(F.embedding(codes, self.codebook), "b t d -> b d t")

    @full_precision
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        b, _, _ = check_input(x, self.dim, "FactorizedCodebook")
        flat = rearrange(self.in_proj(x.float()).detach(), "b d t -> (b t) d")
        return rearrange(self._nearest(flat), "(b t) -> b t", b=b)

    @full_precision
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        check_codes(codes, "FactorizedCodebook")
        return self.out_proj(self._latent(codes))

    @full_precision
    def forward(self, x: torch.Tensor) -> CodebookOutput:
        b, _, _ = check_input(x, self.dim, "FactorizedCodebook")
        x = x.float()
        first = self.training and not bool(self.inited)
        if first:
            with torch.no_grad():
                for p in self.parameters():  # rank 0's random init everywhere, even without DDP
                    qdist.broadcast(p.data)
        z_e = self.in_proj(x)  # [B, d, T]
        flat = rearrange(z_e.detach(), "b d t -> (b t) d")  # [N, d]
        if self.training and first:
            with torch.no_grad():
                self._init(flat)
        codes_flat = self._nearest(flat)
        codes = rearrange(codes_flat, "(b t) -> b t", b=b)
        z_q = self._latent(codes)  # [B, d, T]
        with torch.no_grad():
            lookup = self.decode(codes)
        # value out_proj(z_q) == lookup; gradient through both projections to x (none to the codebook)
        quantized = self.out_proj(straight_through(z_e, z_q.detach())) if torch.is_grad_enabled() else lookup
        counts = torch.bincount(codes_flat, minlength=self.bins)
        if self.training:
            qdist.all_reduce_sum(counts)
            self.cluster_size.lerp_(counts.float(), 1 - self.decay)
            with torch.no_grad():
                self._expire(flat)  # after the codes are chosen (see vq.py), for the next batch
            self.steps += 1
        return CodebookOutput(
            quantized=quantized,
            lookup=lookup,
            codes=codes,
            commit_loss=F.mse_loss(z_e, z_q.detach()),
            codebook_loss=F.mse_loss(z_q, z_e.detach()),
            counts=counts,
        )

    def restart(self) -> None:
        """Re-initialise the codebook by k-means on the next training batch (every rank at once)."""
        self.inited.fill_(False)

    def _init(self, flat: torch.Tensor) -> None:
        if self.kmeans_init or int(self.steps) > 0:  # a restart always uses k-means
            g = step_generator(self.seed, SALT_KMEANS, self.steps)
            centroids, counts = synced_kmeans(flat, self.bins, self.kmeans_iters, g)
            self.codebook.copy_(centroids)
            self.cluster_size.copy_(counts)
        else:
            qdist.broadcast(self.cluster_size)
        self.inited.fill_(True)

    def _expire(self, flat: torch.Tensor) -> None:
        if self.threshold <= 0:
            return
        expired = self.cluster_size < self.threshold  # identical on all ranks
        if not bool(expired.any()):
            return
        g = step_generator(self.seed, SALT_EXPIRE, self.steps)
        samples = qdist.sample_rows_from_rank0(flat, self.bins, g)  # [bins, d]
        self.codebook.copy_(torch.where(expired.unsqueeze(1), samples, self.codebook))
        self.cluster_size.masked_fill_(expired, self.threshold)
