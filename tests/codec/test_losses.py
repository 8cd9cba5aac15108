"""Losses and metrics: known values, invariances, monotonicity, and the gradient balancer (also under DDP)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from codec.losses import (
    Balancer,
    BalancerConfig,
    MelLossConfig,
    STFTLossConfig,
    discriminator_loss,
    feature_matching_loss,
    generator_loss,
    hinge_discriminator_loss,
    hinge_generator_loss,
    l1_waveform_loss,
    ls_generator_loss,
    mel_distance,
    multiresolution_stft_loss,
    multiscale_mel_loss,
    si_sdr,
    stft_distance,
)

SR = 16_000
MEL = MelLossConfig(n_ffts=(64, 256, 1024), n_mels=32)
STFT = STFTLossConfig(n_ffts=(128, 512), hop_lengths=(32, 128), win_lengths=(96, 384))


@pytest.fixture(scope="module")
def tone() -> torch.Tensor:
    """Two stereo items of a chord with a slow vibrato, 0.25 s."""
    g = torch.Generator().manual_seed(0)
    t = torch.arange(SR // 4) / SR
    items = []
    for f0 in (180.0, 330.0):
        chans = [0.4 * torch.sin(2 * math.pi * f0 * k * t + 0.3 * torch.sin(2 * math.pi * 5 * t)) / k for k in (1, 2, 3)]
        left = sum(chans) + 0.01 * torch.randn(t.shape, generator=g)
        items.append(torch.stack([left, 0.8 * left.roll(7)]))
    return torch.stack(items)  # [2, 2, T]


def _noise(like: torch.Tensor, seed: int, scale: float = 0.3) -> torch.Tensor:
    return scale * torch.randn(like.shape, generator=torch.Generator().manual_seed(seed))


# ----------------------------------------------------------------------------- adversarial


def test_hinge_losses_at_known_values():
    real = [torch.full((2, 1, 3, 4), 2.0), torch.full((2, 1, 5, 2), 2.0)]
    fake = [torch.full((2, 1, 3, 4), -2.0), torch.full((2, 1, 5, 2), -2.0)]
    assert hinge_discriminator_loss(real, fake).item() == 0.0
    # Swapped: relu(1 + 2) on both sides.
    assert hinge_discriminator_loss(fake, real).item() == pytest.approx(6.0)
    zeros = [torch.zeros(2, 1, 3, 4)]
    assert hinge_discriminator_loss(zeros, zeros).item() == pytest.approx(2.0)
    assert hinge_generator_loss(real).item() == 0.0
    assert hinge_generator_loss(fake).item() == pytest.approx(3.0)
    assert ls_generator_loss([torch.ones(4)]).item() == 0.0
    assert ls_generator_loss([torch.zeros(4), torch.full((4,), 3.0)]).item() == pytest.approx((1 + 4) / 2)
    assert discriminator_loss("ls", [torch.ones(3)], [torch.zeros(3)]).item() == 0.0
    assert generator_loss("hinge", fake).item() == pytest.approx(3.0)
    with pytest.raises(ValueError, match="unknown adversarial loss"):
        generator_loss("wgan", fake)


def test_feature_matching_zero_positive_and_scale_invariant():
    g = torch.Generator().manual_seed(1)
    real = [[torch.randn(2, 4, 8, 3, generator=g), torch.randn(2, 8, 4, 3, generator=g) * 50] for _ in range(2)]
    fake = [[f + 0.1 * torch.randn(f.shape, generator=g) * f.abs().mean() for f in layers] for layers in real]
    assert feature_matching_loss(real, real).item() == 0.0
    loss = feature_matching_loss(real, fake)
    assert loss.item() > 0
    scaled = feature_matching_loss([[100 * f for f in ls] for ls in real], [[100 * f for f in ls] for ls in fake])
    assert scaled.item() == pytest.approx(loss.item(), rel=1e-5)
    # Per-layer normalization: a layer 50x larger does not dominate.
    per_layer = [feature_matching_loss([[r]], [[f]]).item() for r, f in zip(real[0], fake[0])]
    assert max(per_layer) / min(per_layer) < 2
    fake_grad = [[f.clone().requires_grad_() for f in ls] for ls in fake]
    real_grad = [[r.clone().requires_grad_() for r in ls] for ls in real]
    feature_matching_loss(real_grad, fake_grad).backward()
    assert real_grad[0][0].grad is None and fake_grad[0][0].grad.abs().sum() > 0


# ------------------------------------------------------------------------------- spectral


def test_mel_loss_orders_and_is_monotonic(tone):
    assert multiscale_mel_loss(tone, tone, SR, MEL).item() == 0.0
    slight = multiscale_mel_loss(tone + _noise(tone, 2, 0.003), tone, SR, MEL)
    noise = multiscale_mel_loss(_noise(tone, 3), tone, SR, MEL)
    assert 0 < slight < noise
    values = [multiscale_mel_loss((1 - a) * _noise(tone, 3) + a * tone, tone, SR, MEL).item() for a in (0.0, 0.3, 0.6, 0.9, 1.0)]
    assert all(a > b for a, b in zip(values, values[1:])), values
    assert values[-1] == 0.0


def test_losses_are_finite_under_autocast_and_differentiable(tone):
    x = (tone + _noise(tone, 4, 0.05)).requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        total = multiscale_mel_loss(x, tone, SR, MEL) + multiresolution_stft_loss(x, tone, STFT) + l1_waveform_loss(x, tone)
    assert total.dtype == torch.float32 and torch.isfinite(total)
    total.backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_stft_loss_and_l1(tone):
    assert multiresolution_stft_loss(tone, tone, STFT).item() == 0.0
    assert 0 < multiresolution_stft_loss(tone + _noise(tone, 5, 0.01), tone, STFT) < multiresolution_stft_loss(_noise(tone, 5), tone, STFT)
    assert l1_waveform_loss(tone, tone).item() == 0.0
    assert l1_waveform_loss(tone + 0.5, tone).item() == pytest.approx(0.5)
    with pytest.raises(ValueError, match=r"\[B, C, T\]"):
        l1_waveform_loss(tone, tone[..., :-1])


@pytest.mark.parametrize("metric", ["mel", "stft"])
def test_distances_symmetric_and_zero_at_identity(tone, metric):
    def dist_(a, b):
        return mel_distance(a, b, SR, MEL) if metric == "mel" else stft_distance(a, b, STFT)

    other = 0.7 * tone + _noise(tone, 6, 0.05)
    assert dist_(tone, tone).shape == (2,)
    assert torch.equal(dist_(tone, tone), torch.zeros(2))
    torch.testing.assert_close(dist_(tone, other), dist_(other, tone))
    assert (dist_(tone, other) > 0).all()


def test_si_sdr(tone):
    perfect = si_sdr(tone, tone)
    assert perfect.shape == (2,) and (perfect > 60).all()
    torch.testing.assert_close(si_sdr(0.5 * tone, tone), perfect)
    noise = _noise(tone, 7, 0.05)
    noisy = si_sdr(tone + noise, tone)
    torch.testing.assert_close(si_sdr(0.5 * (tone + noise), tone), noisy)
    centered = tone - tone.mean(-1, keepdim=True)
    snr = 10 * torch.log10(centered.pow(2).sum(-1) / noise.pow(2).sum(-1)).mean(1)
    assert (noisy - snr).abs().max() < 0.5, (noisy, snr)
    assert (si_sdr(tone + 4 * noise, tone) < noisy).all()


# ------------------------------------------------------------------------------- balancer


def _two_losses(out: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
    """Two losses on one output, about six orders of magnitude apart in gradient scale."""
    return {"big": 1e3 * (out - target).pow(2).mean(), "small": 1e-3 * (out - 0.5 * target).abs().mean()}


@pytest.mark.parametrize("per_batch_item", [False, True])
def test_balancer_gives_each_loss_its_weight_share(per_batch_item):
    torch.manual_seed(0)
    weight = torch.nn.Parameter(torch.randn(3, 1, 1))
    x, target = torch.randn(3, 1, 256), torch.randn(3, 1, 256)
    cfg = BalancerConfig(weights={"big": 1.0, "small": 3.0}, total_norm=2.0, per_batch_item=per_batch_item)
    balancer = Balancer(cfg)
    out = weight * x
    losses = _two_losses(out, target)
    grads = {k: torch.autograd.grad(v, out, retain_graph=True)[0] for k, v in losses.items()}
    result = balancer.backward(losses, out)

    def norm(g):
        return g.flatten(1).norm(dim=1).mean() if per_batch_item else g.norm()

    contrib = {k: norm(result.scales[k] * grads[k]) for k in grads}
    assert contrib["small"] / contrib["big"] == pytest.approx(3.0, rel=1e-4)
    assert contrib["big"] + contrib["small"] == pytest.approx(2.0, rel=1e-4)
    torch.testing.assert_close(result.grad, result.scales["big"] * grads["big"] + result.scales["small"] * grads["small"])
    # The combined gradient reached the parameters through the output.
    torch.testing.assert_close(weight.grad, (result.grad * x).sum(dim=(1, 2), keepdim=True))


def test_balancer_plain_mode_equals_weighted_sum():
    torch.manual_seed(0)
    layer = torch.nn.Conv1d(1, 1, 5, padding=2)
    x, target = torch.randn(2, 1, 64), torch.randn(2, 1, 64)
    weights = {"big": 0.5, "small": 4.0}
    out = layer(x)
    result = Balancer(BalancerConfig(weights=weights, balance=False)).backward(_two_losses(out, target), out)
    got = [p.grad.clone() for p in layer.parameters()]
    layer.zero_grad()
    losses = _two_losses(layer(x), target)
    expected_loss = sum(weights[k] * v for k, v in losses.items())
    expected_loss.backward()
    for g, p in zip(got, layer.parameters()):
        torch.testing.assert_close(g, p.grad)
    assert result.loss.item() == pytest.approx(expected_loss.item(), rel=1e-6)


def test_balancer_ema_and_errors():
    out = torch.randn(2, 1, 32, requires_grad=True)
    balancer = Balancer(BalancerConfig(weights={"a": 1.0}, ema_decay=0.5, per_batch_item=False))
    first = balancer.combine({"a": out.pow(2).sum()}, out).grad_norms["a"]
    second = balancer.combine({"a": 3 * out.pow(2).sum()}, out).grad_norms["a"]
    # Bias-corrected EMA: first value exactly, then (0.5 * n + 3n) / (0.5 + 1).
    assert second.item() == pytest.approx(first.item() * 3.5 / 1.5, rel=1e-5)
    restored = Balancer(balancer.cfg)
    restored.load_state_dict(balancer.state_dict())
    assert restored.state_dict() == balancer.state_dict()
    with pytest.raises(ValueError, match="no weight"):
        balancer.combine({"b": out.sum()}, out)
    with pytest.raises(ValueError, match="does not depend"):
        balancer.combine({"a": torch.ones((), requires_grad=True) * 2}, out)


def _ddp_worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        torch.manual_seed(0)  # same initial weights on every rank
        model = torch.nn.parallel.DistributedDataParallel(torch.nn.Conv1d(1, 1, 5, padding=2))
        g = torch.Generator().manual_seed(100 + rank)  # different data on every rank
        x = torch.randn(2, 1, 128, generator=g) * (1 + 3 * rank)
        target = torch.randn(2, 1, 128, generator=g)
        out = model(x)
        losses = _two_losses(out, target)
        local = {k: torch.autograd.grad(v, out, retain_graph=True)[0].flatten(1).norm(dim=1).mean() for k, v in losses.items()}
        result = Balancer(BalancerConfig(weights={"big": 1.0, "small": 2.0})).backward(losses, out)
        torch.save(
            {
                "scales": {k: v.item() for k, v in result.scales.items()},
                "local": {k: v.item() for k, v in local.items()},
                "grads": [p.grad.clone() for p in model.parameters()],
            },
            f"{out_dir}/rank{rank}.pt",
        )
        dist.barrier()  # both ranks done before gloo tears down (a rank leaving early can abort the other)
    finally:
        dist.destroy_process_group()


@pytest.mark.ddp
def test_balancer_scales_agree_across_ddp_ranks(tmp_path):
    mp.spawn(_ddp_worker, args=(2, str(tmp_path / "rendezvous"), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in range(2))
    # The ranks' own gradient norms differ, so agreement comes from averaging them.
    assert abs(r0["local"]["big"] - r1["local"]["big"]) > 0.1 * r0["local"]["big"]
    assert r0["scales"] == r1["scales"]
    for name, weight in (("big", 1.0), ("small", 2.0)):
        mean_norm = (r0["local"][name] + r1["local"][name]) / 2
        assert r0["scales"][name] == pytest.approx(weight / 3.0 / mean_norm, rel=1e-5)
    for a, b in zip(r0["grads"], r1["grads"]):
        torch.testing.assert_close(a, b)
