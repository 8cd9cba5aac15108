"""Contracts of the quantizers on one process: k-means, EMA and factorized levels, residual VQ."""

from __future__ import annotations

import pytest
import torch

from codec.quantize import (
    EMACodebook,
    FactorizedCodebook,
    ResidualVectorQuantizer,
    RVQConfig,
    code_stats,
    collapse_warning,
    kmeans,
    nearest,
)
from codec.quantize import distributed as qdist

KINDS = ["ema", "factorized"]


def make_rvq(kind: str, **overrides) -> ResidualVectorQuantizer:
    torch.manual_seed(0)
    fields = dict(dimension=8, n_q=4, bins=16, kind=kind, codebook_dim=4)
    fields.update(overrides)
    return ResidualVectorQuantizer(RVQConfig(**fields))


def blobs(centers: torch.Tensor, per: int, std: float, seed: int) -> torch.Tensor:
    """``per`` points around each center: ``[len(centers) * per, D]``."""
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(len(centers), per, centers.shape[1], generator=g) * std
    return (centers[:, None, :] + noise).reshape(-1, centers.shape[1])


def as_latent(rows: torch.Tensor, b: int) -> torch.Tensor:
    """``[B*T, D] -> [B, D, T]`` (rows shuffled over time steps and batch items)."""
    return rows.reshape(b, -1, rows.shape[1]).transpose(1, 2).contiguous()


def train_steps(rvq: ResidualVectorQuantizer, data: torch.Tensor, steps: int, lr: float = 1e-2) -> None:
    """A few training steps: reconstruction + quantizer losses (Adam for the learned kind)."""
    rvq.train()
    params = [p for p in rvq.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr) if params else None
    for _ in range(steps):
        r = rvq(data)
        if opt is not None:
            loss = (r.quantized - data).pow(2).mean() + r.loss
            opt.zero_grad()
            loss.backward()
            opt.step()


# --- k-means ---------------------------------------------------------------------------------


@pytest.mark.parametrize("init", ["kmeans++", "random"])
def test_kmeans_is_deterministic_and_finds_the_blobs(init: str) -> None:
    centers = torch.tensor([[-5.0, -5.0], [5.0, 5.0], [5.0, -5.0], [-5.0, 5.0]])
    x = blobs(centers, 50, 0.3, seed=1)
    a = kmeans(x, 4, iters=10, generator=torch.Generator().manual_seed(7), init=init)
    b = kmeans(x, 4, iters=10, generator=torch.Generator().manual_seed(7), init=init)
    assert a.shape == (4, 2) and torch.equal(a, b)
    # every blob has a centroid near its center
    assert torch.cdist(centers, a).min(dim=1).values.max() < 0.3
    assert torch.equal(nearest(centers, a).sort().values, torch.arange(4))


def test_kmeans_with_fewer_rows_than_clusters_samples_with_replacement() -> None:
    x = torch.tensor([[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]])
    for init in ("kmeans++", "random"):
        c = kmeans(x, 5, iters=3, generator=torch.Generator().manual_seed(0), init=init)
        assert c.shape == (5, 2)
        assert torch.cdist(c, x).min(dim=1).values.max() == 0  # every centroid is a data row
        assert torch.cdist(x, c).min(dim=1).values.max() == 0  # every row is a centroid


# --- one codebook level ----------------------------------------------------------------------


def test_kmeans_init_builds_the_codebook_from_the_data() -> None:
    torch.manual_seed(0)
    centers = torch.tensor([[-4.0, 0.0], [4.0, 0.0], [0.0, 4.0], [0.0, -4.0]])
    x = as_latent(blobs(centers, 32, 0.2, seed=2)[torch.randperm(128)], b=4)
    cb = EMACodebook(dim=2, bins=4, threshold_ema_dead_code=0.0).train()
    assert not bool(cb.inited)
    out = cb(x)
    assert bool(cb.inited)
    assert torch.cdist(cb.embed, centers).min(dim=1).values.max() < 0.2
    assert out.counts.sum() == 128 and (out.counts == 32).all()

    fz = FactorizedCodebook(dim=2, bins=4, codebook_dim=2, threshold_ema_dead_code=0.0).train()
    fz(x)
    with torch.no_grad():
        z_centers = fz.in_proj(centers.t()[None])[0].t()  # the blobs' centers, projected
    assert torch.cdist(fz.codebook.detach(), z_centers).min(dim=1).values.max() < 0.2


@pytest.mark.parametrize("kind", KINDS)
def test_dead_code_replacement_revives_unused_codes(kind: str) -> None:
    torch.manual_seed(0)
    cls = EMACodebook if kind == "ema" else FactorizedCodebook
    extra = {} if kind == "ema" else {"codebook_dim": 2}
    cb = cls(dim=2, bins=8, decay=0.5, threshold_ema_dead_code=1.0, **extra).train()
    cb(as_latent(blobs(torch.tensor([[5.0, 5.0]]), 128, 0.5, seed=3), b=4))  # k-means init on A
    far = as_latent(blobs(torch.tensor([[-5.0, -5.0]]), 128, 0.5, seed=4), b=4)  # data B

    def usage_on_far() -> float:
        cb.eval()
        with torch.no_grad():
            usage = (cb(far).counts > 0).float().mean().item()
        cb.train()
        return usage

    def code_distance_to_far() -> torch.Tensor:
        """Distance of each code to the nearest (projected) vector of B: ``[bins]``."""
        with torch.no_grad():
            if kind == "ema":
                return torch.cdist(cb.embed, far.transpose(1, 2).reshape(-1, 2)).min(dim=1).values
            # the factorized lookup is by cosine: compare directions
            z = torch.nn.functional.normalize(cb.in_proj(far).transpose(1, 2).reshape(-1, 2), dim=1)
            return torch.cdist(torch.nn.functional.normalize(cb.codebook, dim=1), z).min(dim=1).values

    near = 1.0 if kind == "ema" else 0.1
    before_usage, before_dist = usage_on_far(), code_distance_to_far()
    assert before_usage <= 0.25 and (before_dist > near).sum() >= 6
    for step in range(16):
        cb(as_latent(blobs(torch.tensor([[-5.0, -5.0]]), 128, 0.5, seed=10 + step), b=4))
    assert usage_on_far() >= 0.75
    assert (code_distance_to_far() < near).all()


def test_ema_codebook_moves_towards_the_data() -> None:
    torch.manual_seed(0)
    cb = EMACodebook(dim=2, bins=4, decay=0.8, kmeans_init=False, threshold_ema_dead_code=0.0).train()
    rows = blobs(torch.tensor([[3.0, 3.0]]), 64, 0.1, seed=5)
    target = rows.mean(0)  # where the one code used should end
    x = as_latent(rows, b=2)
    used = int(cb.encode(x).flatten().mode().values)
    start = cb.embed.clone()
    distances = []
    for _ in range(20):
        out = cb(x)
        distances.append((cb.embed[used] - target).norm().item())
    assert (out.codes == used).all()
    assert distances[-1] < 0.01 and (start[used] - target).norm().item() > 1.0
    assert all(b < a for a, b in zip(distances, distances[1:]))
    unused = torch.arange(4) != used  # unused codes stay where they were (up to smoothing)
    torch.testing.assert_close(cb.embed[unused], start[unused], atol=1e-2, rtol=0)


# --- residual VQ -----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_result_fields_and_shapes(kind: str) -> None:
    rvq = make_rvq(kind).train()
    r = rvq(torch.randn(2, 8, 20))
    assert 1 <= r.n_q <= 4
    assert r.quantized.shape == (2, 8, 20) and r.quantized.dtype == torch.float32
    assert r.codes.shape == (2, r.n_q, 20) and r.codes.dtype == torch.int64
    assert r.commit_loss.shape == () and r.codebook_loss.shape == () and r.loss.shape == ()
    assert r.usage.shape == (r.n_q,) and r.perplexity.shape == (r.n_q,)
    # the statistics are those of the codes returned, level by level
    counts = torch.stack([torch.bincount(r.codes[:, level].flatten(), minlength=16) for level in range(r.n_q)])
    usage, perplexity = code_stats(counts)
    torch.testing.assert_close(r.usage, usage)
    torch.testing.assert_close(r.perplexity, perplexity)
    # 40 well-spread vectors on 16 codes after the k-means init: most codes in use at every level
    assert (r.usage >= 0.75).all() and (r.perplexity > 8).all(), (r.usage, r.perplexity)
    state = rvq.state_dict()
    if kind == "ema":
        assert r.codebook_loss == 0 and not any(True for _ in rvq.parameters())
        assert "levels.0.embed" in dict(rvq.named_buffers()) and "levels.0.embed" in state
    else:
        assert r.codebook_loss > 0 and "levels.0.codebook" in dict(rvq.named_parameters())
        assert "levels.0.codebook" not in dict(rvq.named_buffers())
        assert "levels.0.codebook" in state and "levels.0.embed" not in state
    assert rvq.eval()(torch.randn(2, 8, 20)).codes.shape == (2, 4, 20)  # eval: every level


@pytest.mark.parametrize("kind", KINDS)
def test_decode_of_codes_equals_the_quantized_latent(kind: str) -> None:
    rvq = make_rvq(kind)
    train_steps(rvq, torch.randn(2, 8, 32), steps=5)
    rvq.eval()
    x = torch.randn(3, 8, 24)
    with torch.no_grad():
        r = rvq(x)
        assert torch.equal(rvq.decode(r.codes), r.quantized)
        assert torch.equal(rvq.encode(x), r.codes)
        assert torch.equal(rvq.encode(x, n_q=2), r.codes[:, :2])
    assert torch.equal(rvq(x).quantized, r.quantized)  # with autograd on, the same bits


@pytest.mark.parametrize("kind", KINDS)
def test_straight_through_gradient(kind: str) -> None:
    rvq = make_rvq(kind).train()
    x = torch.randn(2, 8, 20, requires_grad=True)
    g = torch.randn(2, 8, 20)
    r = rvq(x, n_q=2)
    (r.quantized * g).sum().backward()
    if kind == "ema":
        assert torch.equal(x.grad, g)
    else:
        # straight-through in each level's small space: x learns only along what in_proj reads,
        # d quantized / d x = sum over levels of out_proj . in_proj (the code itself held fixed)
        expected = torch.zeros_like(g)
        for level in rvq.levels[:2]:
            w_in, w_out = level.in_proj.weight[..., 0].detach(), level.out_proj.weight[..., 0].detach()  # [d, D], [D, d]
            expected += torch.einsum("dc,ed,bet->bct", w_in, w_out, g)
        torch.testing.assert_close(x.grad, expected, rtol=1e-5, atol=1e-6)
        # with one level (4 of 8 channels read), the directions in_proj ignores get no gradient:
        # they could only drift
        x1 = torch.randn(2, 8, 20, requires_grad=True)
        (rvq(x1, n_q=1).quantized * g).sum().backward()
        reads = rvq.levels[0].in_proj.weight[..., 0].detach()  # [4, 8]
        null = torch.linalg.svd(reads, full_matrices=True).Vh[4:]  # [4, 8]
        assert x1.grad.abs().max() > 1e-3
        assert torch.einsum("kc,bct->bkt", null, x1.grad).abs().max() < 1e-5
    if kind == "factorized":
        # the reconstruction gradient reaches the projections of the levels used ...
        assert rvq.levels[0].out_proj.parametrizations.weight.original1.grad.abs().sum() > 0
        assert rvq.levels[1].in_proj.parametrizations.weight.original1.grad.abs().sum() > 0
        # ... and the losses reach every parameter (zero for skipped levels), as DDP needs
        rvq.zero_grad()
        r = rvq(torch.randn(2, 8, 20), n_q=1)
        (r.loss + r.quantized.pow(2).mean()).backward()
        assert all(p.grad is not None for p in rvq.parameters())
        assert rvq.levels[3].codebook.grad.abs().sum() == 0


@pytest.mark.parametrize("kind", KINDS)
def test_mixed_precision_does_not_change_the_codes(kind: str) -> None:
    rvq = make_rvq(kind)
    train_steps(rvq, torch.randn(2, 8, 32), steps=2)
    rvq.eval()
    x = torch.randn(2, 8, 24)
    with torch.no_grad():
        r = rvq(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            mixed = rvq(x)
    assert mixed.quantized.dtype == torch.float32
    assert torch.equal(mixed.codes, r.codes) and torch.equal(mixed.quantized, r.quantized)


def test_quantizer_dropout_covers_every_bitrate_and_is_reproducible() -> None:
    rvq = make_rvq("ema", dimension=4, bins=8).train()
    seen = []
    for _ in range(40):
        r = rvq(torch.randn(1, 4, 8))
        assert r.codes.shape[1] == r.n_q
        seen.append(r.n_q)
    assert set(seen) == {1, 2, 3, 4}
    again = make_rvq("ema", dimension=4, bins=8).train()  # same seed, same steps: same draws
    assert [again(torch.randn(1, 4, 8)).n_q for _ in range(40)] == seen
    resumed = make_rvq("ema", dimension=4, bins=8)
    resumed.load_state_dict(rvq.state_dict())
    assert resumed.sample_n_q() == rvq.sample_n_q()
    off = make_rvq("ema", dimension=4, bins=8, quantizer_dropout=False).train()
    assert {off(torch.randn(1, 4, 8)).n_q for _ in range(5)} == {4}


@pytest.mark.parametrize("kind", KINDS)
def test_more_codebooks_reconstruct_better(kind: str) -> None:
    rvq = make_rvq(kind)
    torch.manual_seed(1)
    data = torch.randn(4, 8, 64)
    train_steps(rvq, data, steps=20 if kind == "ema" else 80)
    rvq.eval()
    with torch.no_grad():
        codes = rvq.encode(data)
        errors = [(rvq.decode(codes[:, :k]) - data).pow(2).mean().item() for k in range(1, 5)]
    assert all(b < a for a, b in zip(errors, errors[1:])), errors
    assert errors[-1] < 0.5 * errors[0]


@pytest.mark.parametrize("kind", KINDS)
def test_codes_of_clustered_data_use_every_level(kind: str) -> None:
    """16 well-separated clusters on 16 codes: after training, the first level gives each cluster
    a code of its own (perplexity 16), and the later levels spread the residual over many codes."""
    g = torch.Generator().manual_seed(0)
    centers = torch.randn(16, 8, generator=g) * 4
    order = torch.randperm(16 * 32, generator=g)
    labels = torch.arange(16).repeat_interleave(32)[order]
    data = as_latent(blobs(centers, 32, 0.3, seed=1)[order], b=8)  # [8, 8, 64]
    rvq = make_rvq(kind, codebook_dim=8)
    train_steps(rvq, data, steps=20 if kind == "ema" else 80)
    rvq.eval()
    with torch.no_grad():
        codes = rvq.encode(data)  # [8, 4, 64]
    counts = torch.stack([torch.bincount(codes[:, level].flatten(), minlength=16) for level in range(4)])
    usage, perplexity = code_stats(counts)
    first = codes[:, 0].flatten()
    assert len(set(zip(labels.tolist(), first.tolist()))) == 16  # one code a cluster ...
    assert usage[0] == 1 and perplexity[0] > 15.9  # ... and a different one for each
    assert (usage[1:] >= 0.5).all() and (perplexity[1:] > 4).all(), (usage, perplexity)


def test_code_histogram_accumulates_and_resets() -> None:
    rvq = make_rvq("ema").train()
    for n_q in (4, 2, 4):
        rvq(torch.randn(2, 8, 10), n_q=n_q)
    assert rvq.code_histogram.sum(dim=1).tolist() == [60, 60, 40, 40]
    usage, perplexity = code_stats(rvq.code_histogram)
    assert usage.shape == (4,) and perplexity.shape == (4,)
    assert usage[0] == 1 and perplexity[0] > 8, (usage, perplexity)  # 60 spread vectors after k-means init
    assert "code_histogram" not in rvq.state_dict()
    rvq.eval()(torch.randn(2, 8, 10))  # evaluation does not count
    assert rvq.code_histogram.sum() == 200
    rvq.reset_code_histogram()
    assert rvq.code_histogram.sum() == 0


def test_code_stats_and_collapse_warning() -> None:
    counts = torch.tensor([[5, 5, 5, 5], [20, 0, 0, 0], [0, 0, 0, 0]])
    usage, perplexity = code_stats(counts)
    torch.testing.assert_close(usage, torch.tensor([1.0, 0.25, 0.0]))
    torch.testing.assert_close(perplexity, torch.tensor([4.0, 1.0, 1.0]))
    assert collapse_warning(usage, threshold=0.5) == [1, 2]
    assert collapse_warning([0.9, 0.95]) == []


def test_bad_inputs_say_what_is_wrong() -> None:
    rvq = make_rvq("ema")
    with pytest.raises(ValueError, match=r"expects \[B, 8, T\]"):
        rvq(torch.randn(2, 5, 10))
    with pytest.raises(ValueError, match="n_q must be in"):
        rvq(torch.randn(2, 8, 10), n_q=5)
    with pytest.raises(ValueError, match="1 <= K' <= 4"):
        rvq.decode(torch.zeros(1, 5, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="kind must be one of"):
        RVQConfig(dimension=8, n_q=2, bins=4, kind="gumbel")


def test_distributed_helpers_are_no_ops_on_one_process() -> None:
    assert not qdist.is_distributed() and qdist.world_size() == 1 and qdist.rank() == 0
    t = torch.arange(4.0)
    assert qdist.all_reduce_sum(t) is t and torch.equal(t, torch.arange(4.0))
    assert qdist.broadcast(t) is t and qdist.all_gather_rows(t[:, None]).shape == (4, 1)
    rows = qdist.sample_rows_from_rank0(t[:, None], 6, torch.Generator().manual_seed(0))
    assert rows.shape == (6, 1) and set(rows.flatten().tolist()) <= {0.0, 1.0, 2.0, 3.0}


@pytest.mark.parametrize("kind", KINDS)
def test_bypass_passes_the_latent_while_the_codebooks_learn(kind: str) -> None:
    """Through ``bypass_steps`` training batches the output is the input itself (value and gradient)
    and nothing pulls the input towards the codes, while the codebooks follow the data; after them,
    the output is the codes' value, as without a bypass."""
    rvq = make_rvq(kind, bypass_steps=3, quantizer_dropout=False)
    plain = make_rvq(kind, quantizer_dropout=False)
    data = torch.randn(2, 8, 40)
    for step in range(5):
        x = data.clone().requires_grad_(True)
        r, ref = rvq.train()(x), plain.train()(data)
        g = torch.randn_like(data)
        (r.quantized * g + r.loss).sum().backward()
        # the codebooks learned from the same batches as without the bypass: the same codes
        assert torch.equal(r.codes, ref.codes)
        if step < 3:
            assert torch.equal(r.quantized, x.detach()) and r.commit_loss == 0
            assert torch.equal(x.grad, g)
        else:
            assert torch.equal(r.quantized.detach(), ref.quantized.detach())
            assert not torch.equal(r.quantized.detach(), data) and r.commit_loss > 0
    rvq.eval()
    assert torch.equal(rvq(data).quantized, rvq.decode(rvq.encode(data)))  # eval never bypasses
    with pytest.raises(ValueError, match="bypass_steps must be >= 0"):
        RVQConfig(dimension=8, n_q=2, bins=4, bypass_steps=-1)
