"""Residual vector quantizer: K codebook levels, each quantizing what the previous ones left.

``forward(x [B, D, T]) -> QuantizerResult``; ``encode(x) -> codes [B, K, T]``;
``decode(codes [B, K', T]) -> [B, D, T]`` for any ``K' <= K`` (the first ``K'`` levels).

Quantizer dropout (training): each batch uses the first ``n_q`` levels, ``n_q`` uniform in
``[1, K]``, drawn from a generator seeded by ``(seed, step)`` — the same on every rank, with no
communication, and reproducible after resuming (``steps`` is a buffer in the state dict).

Losses: ``commit_loss`` and ``codebook_loss`` are the SUMS over the levels used of the per-level
means, times ``commitment_weight`` / ``codebook_weight``: every level pulls with the same weight
whatever ``n_q`` was drawn (as in DAC).

Bypass (``bypass_steps``): for the first training batches the levels choose codes and update their
codebooks as usual, but the latent reaches the decoder unquantized and no commitment loss pulls
the encoder. A freshly initialised encoder's output is a nearly constant vector whose spread the
first optimizer steps move by more than its own size, so a codebook fitted to it at once is left
behind and every frame falls to one code; through the bypass the autoencoder first learns a
latent with structure, which the codebooks follow (EMA updates, dead-code replacement) before
their codes are used.

In training, ``forward`` is a collective (see ``vq.py``): call it on every rank in lockstep.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

from codec.quantize.factorized import FactorizedCodebook
from codec.quantize.vq import EMACodebook, check_input, mix_seed, step_generator, straight_through

KINDS = ("ema", "factorized")
SALT_DROPOUT = 3


@dataclass
class RVQConfig:
    """dimension: channels of the latent; n_q: number of levels (K); bins: codebook size.

    kind: ``ema`` (Euclidean codebook updated by EMA) or ``factorized`` (DAC-style, learned,
    cosine lookup in ``codebook_dim`` channels). threshold_ema_dead_code: EMA usage, in
    assignments per global batch, below which a code is replaced (0 disables). decay: EMA decay
    (for ``factorized`` it only smooths the usage statistics). seed: seeds the quantizer's own
    random choices (dropout, k-means, dead-code replacement), never the global RNG.
    bypass_steps: training batches through which the latent passes unquantized (see the module doc).
    """

    dimension: int
    n_q: int
    bins: int
    kind: str = "ema"
    codebook_dim: int = 8
    decay: float = 0.99
    kmeans_init: bool = True
    kmeans_iters: int = 10
    threshold_ema_dead_code: float = 2.0
    quantizer_dropout: bool = True
    commitment_weight: float = 1.0
    codebook_weight: float = 1.0
    seed: int = 0
    bypass_steps: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"RVQConfig.kind must be one of {KINDS}, got {self.kind!r}")
        for name in ("dimension", "n_q", "bins", "codebook_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"RVQConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.bypass_steps < 0:
            raise ValueError(f"RVQConfig.bypass_steps must be >= 0, got {self.bypass_steps}")
        if not 0.0 <= self.decay < 1.0:
            raise ValueError(f"RVQConfig.decay must be in [0, 1), got {self.decay}")


@dataclass
class QuantizerResult:
    """quantized: ``[B, D, T]``, straight-through (value ``decode(codes)`` exactly; the gradient
    reaches the input unchanged for ``ema``, through each level's projections for ``factorized``). codes: ``[B, n_q, T]`` int64. n_q: levels used.
    commit_loss, codebook_loss: weighted scalars (see the module doc). usage: ``[n_q]`` fraction
    of each level's codes used in the batch (over all ranks in training). perplexity: ``[n_q]``
    ``exp(entropy)`` of each level's code distribution in the batch (1 to ``bins``).
    """

    quantized: torch.Tensor
    codes: torch.Tensor
    n_q: int
    commit_loss: torch.Tensor
    codebook_loss: torch.Tensor
    usage: torch.Tensor
    perplexity: torch.Tensor

    @property
    def loss(self) -> torch.Tensor:
        return self.commit_loss + self.codebook_loss


def code_stats(counts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(usage, perplexity)`` per level from code counts ``[L, bins]``; each ``[L]``.

    usage: fraction of codes counted at least once. perplexity: ``exp`` of the entropy of the
    code distribution (1 when one code takes everything, ``bins`` when uniform; 1 for no counts).
    """
    counts = counts.double()
    usage = (counts > 0).double().mean(-1)
    p = counts / counts.sum(-1, keepdim=True).clamp_min(1)
    perplexity = torch.exp(torch.special.entr(p).sum(-1))
    return usage.float(), perplexity.float()


def collapse_warning(usage: torch.Tensor | Sequence[float], threshold: float = 0.1) -> list[int]:
    """Indices of the levels whose usage (fraction of codes used) is below ``threshold``."""
    values = usage.tolist() if isinstance(usage, torch.Tensor) else list(usage)
    return [i for i, u in enumerate(values) if u < threshold]


def _make_level(cfg: RVQConfig, index: int) -> nn.Module:
    common = dict(
        dim=cfg.dimension,
        bins=cfg.bins,
        decay=cfg.decay,
        kmeans_init=cfg.kmeans_init,
        kmeans_iters=cfg.kmeans_iters,
        threshold_ema_dead_code=cfg.threshold_ema_dead_code,
        seed=mix_seed(cfg.seed, index),
    )
    if cfg.kind == "ema":
        return EMACodebook(**common)
    return FactorizedCodebook(codebook_dim=cfg.codebook_dim, **common)


class ResidualVectorQuantizer(nn.Module):
    """K codebook levels of one kind (``cfg.kind``); see the module doc.

    ``code_histogram [K, bins]`` (int64 buffer, not saved in checkpoints) accumulates the code
    counts of every training batch, summed over ranks; read it for logging and clear it with
    ``reset_code_histogram``. ``code_stats(rvq.code_histogram)`` gives usage and perplexity.
    """

    def __init__(self, cfg: RVQConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.levels = nn.ModuleList([_make_level(cfg, i) for i in range(cfg.n_q)])
        self.register_buffer("steps", torch.tensor(0, dtype=torch.long))
        self.register_buffer(
            "code_histogram", torch.zeros(cfg.n_q, cfg.bins, dtype=torch.long), persistent=False
        )

    @property
    def num_codebooks(self) -> int:
        return self.cfg.n_q

    @property
    def cardinality(self) -> int:
        return self.cfg.bins

    def reset_code_histogram(self) -> None:
        self.code_histogram.zero_()

    def sample_n_q(self) -> int:
        """The dropout draw for the current step: uniform in ``[1, K]``, equal on every rank."""
        g = step_generator(self.cfg.seed, SALT_DROPOUT, self.steps)
        return int(torch.randint(1, self.cfg.n_q + 1, (1,), generator=g))

    def _resolve_n_q(self, n_q: int | None) -> int:
        if n_q is not None:
            if not 1 <= n_q <= self.cfg.n_q:
                raise ValueError(f"n_q must be in [1, {self.cfg.n_q}], got {n_q}")
            return n_q
        if self.training and self.cfg.quantizer_dropout:
            return self.sample_n_q()
        return self.cfg.n_q

    def forward(self, x: torch.Tensor, n_q: int | None = None) -> QuantizerResult:
        check_input(x, self.cfg.dimension, "ResidualVectorQuantizer")
        n_q = self._resolve_n_q(n_q)
        x = x.float()
        residual = x
        total = None  # sum of the levels' values (no gradient)
        through = None  # sum of the levels' straight-through outputs (factorized: gradient via projections)
        codes, counts = [], []
        commit, codebook = x.new_zeros(()), x.new_zeros(())
        for level in self.levels[:n_q]:
            out = level(residual)
            residual = residual - out.lookup
            total = out.lookup if total is None else total + out.lookup
            through = out.quantized if through is None else through + out.quantized
            codes.append(out.codes)
            counts.append(out.counts)
            commit = commit + out.commit_loss
            codebook = codebook + out.codebook_loss
        if self.training and torch.is_grad_enabled():
            # Levels skipped by dropout still join the graph (with zero gradient), so DDP
            # without find_unused_parameters sees every parameter used.
            for level in self.levels[n_q:]:
                for p in level.parameters():
                    codebook = codebook + 0.0 * p.sum()
        counts_t = torch.stack(counts)  # [n_q, bins]
        bypass = self.training and self.cfg.bypass_steps > 0 and int(self.steps) < self.cfg.bypass_steps
        if self.training:
            self.code_histogram[:n_q] += counts_t
            self.steps += 1
        usage, perplexity = code_stats(counts_t)
        # EMA levels pass the gradient to x unchanged (once, not once a level); factorized levels
        # pass it through their projections, each level from its own residual (see factorized.py)
        quantized = through if self.cfg.kind == "factorized" else straight_through(x, total)
        if bypass:  # the codebooks learned from this batch; the decoder sees the latent itself
            quantized, commit = x + 0.0 * quantized, 0.0 * commit
        return QuantizerResult(
            quantized=quantized,
            codes=torch.stack(codes, dim=1),
            n_q=n_q,
            commit_loss=self.cfg.commitment_weight * commit,
            codebook_loss=self.cfg.codebook_weight * codebook,
            usage=usage,
            perplexity=perplexity,
        )

    @torch.no_grad()
    def encode(self, x: torch.Tensor, n_q: int | None = None) -> torch.Tensor:
        """Codes ``[B, n_q, T]`` (all ``K`` levels by default); no updates, no communication."""
        check_input(x, self.cfg.dimension, "ResidualVectorQuantizer")
        n_q = self.cfg.n_q if n_q is None else n_q
        if not 1 <= n_q <= self.cfg.n_q:
            raise ValueError(f"n_q must be in [1, {self.cfg.n_q}], got {n_q}")
        residual = x.float()
        codes = []
        for level in self.levels[:n_q]:
            c = level.encode(residual)
            residual = residual - level.decode(c)
            codes.append(c)
        return torch.stack(codes, dim=1)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """``[B, K', T] -> [B, D, T]``, the sum of the first ``K' <= K`` levels' code vectors."""
        if codes.dim() != 3 or not 1 <= codes.shape[1] <= self.cfg.n_q:
            raise ValueError(
                f"ResidualVectorQuantizer.decode expects codes [B, K', T] with 1 <= K' <= "
                f"{self.cfg.n_q}, got {tuple(codes.shape)}"
            )
        total = None
        for i in range(codes.shape[1]):
            q = self.levels[i].decode(codes[:, i])
            total = q if total is None else total + q
        return total
