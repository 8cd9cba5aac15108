"""K-means on rows of a matrix: pure functions, deterministic under a generator. Shared by the
codebooks of `codec.quantize` (k-means init) and the semantic units of `data.semantic`."""

from __future__ import annotations

import torch

INITS = ("kmeans++", "random")


def nearest(x: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """Index of the nearest centroid (squared Euclidean) for each row: ``[N, D], [K, D] -> [N]``.

    ``||x||^2`` does not change the argmin, so only ``||c||^2 - 2 x.c`` is computed.
    """
    scores = centroids.pow(2).sum(-1) - 2 * x @ centroids.t()  # [N, K]
    return scores.argmin(-1)


def _device_generator(generator: torch.Generator | None, device: torch.device) -> torch.Generator | None:
    """A generator on ``device`` seeded from ``generator`` (None: use the global RNG)."""
    if generator is None:
        return None
    g = torch.Generator(device=device)
    g.manual_seed(int(torch.randint(2**62, (1,), generator=generator)))
    return g


def _sample_indices(n: int, k: int, generator: torch.Generator | None) -> torch.Tensor:
    """``k`` distinct indices of ``range(n)`` when ``n >= k``, else ``k`` drawn with replacement."""
    if n >= k:
        return torch.randperm(n, generator=generator)[:k]
    return torch.randint(n, (k,), generator=generator)


def _kmeans_pp(x: torch.Tensor, k: int, generator: torch.Generator | None) -> torch.Tensor:
    """k-means++ seeding: each next centroid drawn with probability proportional to D(x)^2."""
    g = _device_generator(generator, x.device)
    first = torch.randint(x.shape[0], (1,), generator=g, device=x.device)
    centroids = [x[first]]  # each [1, D]
    d2 = (x - centroids[0]).pow(2).sum(-1)  # [N]
    for _ in range(k - 1):
        # When every row already coincides with a centroid (N < k, duplicates), draw uniformly.
        total = d2.sum()
        weights = torch.where(total > 0, d2, torch.ones_like(d2))
        idx = torch.multinomial(weights, 1, generator=g)
        centroids.append(x[idx])
        d2 = torch.minimum(d2, (x - x[idx]).pow(2).sum(-1))
    return torch.cat(centroids, dim=0)


def kmeans(
    x: torch.Tensor,
    k: int,
    iters: int = 10,
    generator: torch.Generator | None = None,
    init: str = "kmeans++",
) -> torch.Tensor:
    """Lloyd's k-means on the rows of ``x [N, D]``; returns centroids ``[k, D]`` (dtype of ``x``).

    ``init``: ``kmeans++`` (D^2 seeding) or ``random`` (``k`` rows of ``x``, drawn with
    replacement when ``N < k``). ``generator`` is a CPU generator; the same generator state gives
    the same centroids on the same device. A cluster that loses all its rows keeps its centroid.
    Computed in float32.
    """
    if x.dim() != 2 or x.shape[0] == 0:
        raise ValueError(f"kmeans expects a non-empty [N, D] tensor, got {tuple(x.shape)}")
    if k < 1:
        raise ValueError(f"kmeans needs k >= 1, got {k}")
    if init not in INITS:
        raise ValueError(f"kmeans init must be one of {INITS}, got {init!r}")
    xf = x.detach().float()
    if init == "kmeans++":
        centroids = _kmeans_pp(xf, k, generator)
    else:
        centroids = xf[_sample_indices(xf.shape[0], k, generator).to(xf.device)]
    for _ in range(iters):
        assign = nearest(xf, centroids)  # [N]
        sums = torch.zeros_like(centroids).index_add_(0, assign, xf)  # [k, D]
        counts = torch.bincount(assign, minlength=k).to(xf.dtype)  # [k]
        means = sums / counts.clamp_min(1).unsqueeze(1)
        centroids = torch.where((counts > 0).unsqueeze(1), means, centroids)
    return centroids.to(x.dtype)
