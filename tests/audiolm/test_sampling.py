"""Sampling: greedy, filters, guidance, repetition penalty, determinism and frequencies."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from audiolm.sampling import (SamplingConfig, apply_temperature, cfg_logits, repetition_penalty, sample,
                              select_tokens, top_k_filter, top_p_filter)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def randn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=gen(seed))


def test_greedy_is_argmax():
    logits = randn(4, 3, 50)
    for t in (0, 0.0, None):
        ids = sample(logits, temperature=t, top_k=5, top_p=0.5)
        assert ids.shape == (4, 3) and ids.dtype == torch.long
        assert torch.equal(ids, logits.argmax(-1))


def test_top_k_one_is_greedy():
    logits = randn(64, 30, seed=1)
    assert torch.equal(sample(logits, temperature=1.5, top_k=1, generator=gen()), logits.argmax(-1))


def test_top_k_never_samples_outside_the_top_k():
    logits = randn(8, 40, seed=2)
    k = 5
    allowed = logits.topk(k, dim=-1).indices  # [8, k]
    draws = sample(logits.expand(2000, 8, 40), temperature=2.0, top_k=k, generator=gen())  # [2000, 8]
    inside = (draws[..., None] == allowed[None]).any(-1)
    assert bool(inside.all())
    assert len(draws[:, 0].unique()) == k  # and every one of them is reachable at this temperature
    filtered = top_k_filter(logits, k)
    assert torch.equal(torch.isfinite(filtered).sum(-1), torch.full((8,), k))
    kept = torch.isfinite(filtered)
    assert torch.equal(filtered[kept], logits[kept])
    assert torch.equal(top_k_filter(logits, 100), logits)


def test_top_p_by_hand():
    logits = torch.tensor([0.5, 0.3, 0.15, 0.05]).log()[[2, 0, 3, 1]]  # shuffled: 0.15, 0.5, 0.05, 0.3
    kept = lambda p: torch.isfinite(top_p_filter(logits, p)).nonzero().flatten().tolist()  # noqa: E731
    assert kept(0.4) == [1]                # 0.5 alone reaches 0.4
    assert kept(0.75) == [1, 3]            # 0.5 + 0.3 = 0.8 >= 0.75
    assert kept(0.9) == [0, 1, 3]          # 0.95 >= 0.9
    assert kept(0.97) == [0, 1, 2, 3]
    assert kept(1.0) == [0, 1, 2, 3]
    assert kept(1e-6) == [1]               # always at least one token
    out = top_p_filter(logits, 0.75)
    assert torch.equal(out[[1, 3]], logits[[1, 3]])
    for p in (0.1, 0.75):
        draws = sample(logits.expand(500, 4), top_p=p, generator=gen())
        assert set(draws.tolist()) == set(kept(p))


def test_top_p_is_the_smallest_sufficient_set():
    logits = randn(200, 12, seed=3) * 2
    ps = torch.rand(200, generator=gen(4)) * 0.98 + 0.01
    for row, p in zip(logits, ps.tolist()):
        kept = torch.isfinite(top_p_filter(row, p))
        probs = F.softmax(row.double(), -1)
        order = probs.argsort(descending=True)
        mass = probs[order].cumsum(0)
        n = int((mass < p).sum()) + 1  # smallest prefix reaching p
        assert kept.sum() == n
        assert bool(kept[order[:n]].all())
        assert probs[kept].sum() >= p - 1e-6


def test_top_p_keeps_one_with_a_peaked_distribution():
    logits = torch.tensor([[50.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    out = top_p_filter(logits, 0.2)
    assert torch.isfinite(out).sum(-1).tolist() == [1, 1]


def test_temperature_towards_zero_approaches_greedy():
    logits = randn(32, 20, seed=5)
    assert torch.equal(apply_temperature(logits, 0.5), logits * 2)
    greedy = logits.argmax(-1)
    agree = [float((sample(logits.expand(50, 32, 20), temperature=t, generator=gen()) == greedy).float().mean())
             for t in (2.0, 1.0, 0.3, 0.05, 1e-3)]
    assert agree == sorted(agree) and agree[0] < 0.5 and agree[-1] > 0.99
    top2 = logits.topk(2, dim=-1).values
    clear = top2[:, 0] - top2[:, 1] > 0.05  # rows whose argmax is not a near tie
    draws = sample(logits.expand(50, 32, 20), temperature=1e-3, generator=gen())
    assert int(clear.sum()) > 25 and bool((draws == greedy)[:, clear].all())
    with pytest.raises(ValueError):
        apply_temperature(logits, -1.0)


def test_same_seed_same_samples():
    logits = randn(16, 8, 100, seed=6)
    a = sample(logits, temperature=1.0, top_k=20, top_p=0.9, generator=gen(123))
    b = sample(logits, temperature=1.0, top_k=20, top_p=0.9, generator=gen(123))
    c = sample(logits, temperature=1.0, top_k=20, top_p=0.9, generator=gen(124))
    assert torch.equal(a, b) and not torch.equal(a, c)
    cfg = SamplingConfig(seed=7, top_k=10)
    assert torch.equal(select_tokens(logits, cfg, generator=cfg.make_generator()),
                       select_tokens(logits, cfg, generator=cfg.make_generator()))
    assert SamplingConfig().make_generator() is None


def test_sampling_frequencies_match_probabilities():
    probs = torch.tensor([0.4, 0.25, 0.15, 0.1, 0.06, 0.04])
    n = 40000
    draws = sample(probs.log().expand(n, 6), generator=gen(8))
    counts = torch.bincount(draws, minlength=6).double()
    expected = probs.double() * n
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 20.5  # 5 degrees of freedom, p = 0.001
    # with temperature and top-k: the renormalized distribution of the survivors
    t, k = 0.7, 3
    target = F.softmax(probs.log()[:k] / t, -1).double()
    draws = sample(probs.log().expand(n, 6), temperature=t, top_k=k, generator=gen(9))
    counts = torch.bincount(draws, minlength=6).double()
    assert counts[k:].sum() == 0
    chi2 = float(((counts[:k] - target * n) ** 2 / (target * n)).sum())
    assert chi2 < 13.8  # 2 degrees of freedom, p = 0.001


def test_cfg_scale_one_and_zero():
    cond, uncond = randn(3, 4, 30, seed=10) * 3, randn(3, 4, 30, seed=11) + 5.0
    assert torch.allclose(cfg_logits(cond, uncond, 1.0), F.log_softmax(cond, -1))
    assert torch.allclose(cfg_logits(cond, uncond, 0.0), F.log_softmax(uncond, -1))
    # softmax-equivalent: a constant shift of either input changes nothing
    guided = cfg_logits(cond, uncond, 3.0)
    assert torch.allclose(guided, cfg_logits(cond + 7.0, uncond - 2.0, 3.0), atol=1e-5)
    expected = F.log_softmax(uncond, -1) + 3.0 * (F.log_softmax(cond, -1) - F.log_softmax(uncond, -1))
    assert torch.allclose(guided, expected, atol=1e-5)
    # the generic path with a scale close to 1 agrees with the exact shortcut
    assert torch.allclose(F.softmax(cfg_logits(cond, uncond, 1.0 + 1e-7), -1), F.softmax(cond, -1), atol=1e-5)
    with pytest.raises(ValueError):
        cfg_logits(cond, uncond[..., :5], 2.0)


def test_cfg_pushes_towards_the_condition():
    uncond = torch.tensor([0.0, 0.0, 0.0])
    cond = torch.tensor([1.0, 0.0, 0.0])
    p1 = F.softmax(cfg_logits(cond, uncond, 1.0), -1)[0]
    p3 = F.softmax(cfg_logits(cond, uncond, 3.0), -1)[0]
    assert p3 > p1 > 1 / 3


def test_repetition_penalty():
    logits = torch.tensor([[2.0, -1.0, 0.5, 3.0], [1.0, 1.0, 1.0, 1.0]])
    previous = torch.tensor([[0, 1, 1], [3, 3, 3]])
    out = repetition_penalty(logits, previous, 2.0)
    assert out.tolist() == [[1.0, -2.0, 0.5, 3.0], [1.0, 1.0, 1.0, 0.5]]
    assert torch.equal(repetition_penalty(logits, previous, 1.0), logits)
    assert torch.equal(repetition_penalty(logits, previous[:, :0], 2.0), logits)
    with pytest.raises(ValueError):
        repetition_penalty(logits, previous + 4, 2.0)
    with pytest.raises(ValueError):
        repetition_penalty(logits, previous[:1], 2.0)


def test_select_tokens():
    cond, uncond = randn(5, 40, seed=12), randn(5, 40, seed=13)
    greedy = SamplingConfig(temperature=0.0, cfg_scale=3.0)
    assert torch.equal(select_tokens(cond, greedy, uncond=uncond), cfg_logits(cond, uncond, 3.0).argmax(-1))
    with pytest.raises(ValueError, match="uncond"):
        select_tokens(cond, greedy)
    plain = SamplingConfig(temperature=0.0)
    assert torch.equal(select_tokens(cond, plain), cond.argmax(-1))
    top = cond.argmax(-1, keepdim=True)
    penalized = select_tokens(cond, SamplingConfig(temperature=0.0, repetition_penalty=1e6), previous=top)
    assert not bool((penalized == top[:, 0]).any())


def test_batched_shapes_and_edges():
    assert sample(randn(2, 3, 4, 7), generator=gen()).shape == (2, 3, 4)
    assert sample(randn(7), generator=gen()).shape == ()
    assert sample(torch.zeros(0, 7), generator=gen()).shape == (0,)
    assert int(sample(torch.zeros(3, 1), generator=gen()).max()) == 0
    for bad in (dict(top_k=0), dict(top_p=0.0), dict(top_p=1.5), dict(temperature=-1.0)):
        with pytest.raises(ValueError):
            SamplingConfig(**bad)
    with pytest.raises(ValueError):
        top_k_filter(randn(3), 0)
    with pytest.raises(ValueError):
        top_p_filter(randn(3), 0.0)
    assert math.isclose(float(F.softmax(top_p_filter(randn(9), 0.5), -1).sum()), 1.0, rel_tol=1e-6)
