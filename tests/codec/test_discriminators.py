"""Discriminators: output shapes from the layer arithmetic, features, gradients, autocast, errors."""

from __future__ import annotations

import math

import pytest
import torch

from codec.discriminators import (
    DiscriminatorOutput,
    DiscriminatorsConfig,
    MPDConfig,
    MultiDiscriminator,
    MultiPeriodDiscriminator,
    MultiResolutionSpectrogramDiscriminator,
    MultiScaleSTFTDiscriminator,
    build_discriminators,
)

TINY = DiscriminatorsConfig.tiny()


def _halve(n: int, times: int) -> int:
    for _ in range(times):
        n = math.ceil(n / 2)
    return n


def expected_shapes(kind: str, t: int) -> list[tuple[int, int]]:
    """(H, W) of each logit map for the tiny config, from the STFT and conv arithmetic."""
    if kind == "msstft":
        c = TINY.msstft
        return [((t - n) // h + 1, _halve(n // 2 + 1, len(c.dilations))) for n, h in zip(c.n_ffts, c.hop_lengths)]
    if kind == "mpd":
        c = TINY.mpd
        shapes = []
        for p in c.periods:
            rows = math.ceil(t / p)
            for _ in range(len(c.filters) - 1):
                rows = (rows - 1) // c.stride + 1
            shapes.append((rows, p))
        return shapes
    if kind == "mrsd":
        c = TINY.mrsd
        shapes = []
        for n, h in zip(c.n_ffts, c.hop_lengths):
            padded = t + 2 * ((n - h) // 2)
            shapes.append((n // 2 + 1, _halve((padded - n) // h + 1, c.strided_layers)))
        return shapes
    raise AssertionError(kind)


@pytest.fixture(scope="module")
def discs() -> dict[tuple[str, int], MultiDiscriminator]:
    torch.manual_seed(0)
    return {
        (kind, c): build_discriminators([kind], DiscriminatorsConfig.tiny(channels=c))
        for kind in ("msstft", "mpd", "mrsd")
        for c in (1, 2)
    }


@pytest.mark.parametrize("kind", ["msstft", "mpd", "mrsd"])
@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("t", [128, 333, 1000])
def test_output_shapes_and_features(discs, kind, channels, t):
    wav = torch.randn(2, channels, t)
    out = discs[(kind, channels)](wav)
    assert isinstance(out, DiscriminatorOutput)
    assert [tuple(x.shape) for x in out.logits] == [(2, 1, h, w) for h, w in expected_shapes(kind, t)]
    assert len(out.features) == len(out.logits) == len(out.names)
    assert all(name.startswith(f"{kind}/") for name in out.names)
    for layers in out.features:
        assert layers
        for f in layers:
            assert f.shape[0] == 2 and f.dim() == 4
            assert torch.isfinite(f).all()
    assert all(torch.isfinite(x).all() for x in out.logits)


@pytest.mark.parametrize("kind", ["msstft", "mpd", "mrsd"])
def test_gradients_reach_the_input(discs, kind):
    wav = torch.randn(2, 2, 400, requires_grad=True)
    out = discs[(kind, 2)](wav)
    score = sum(x.mean() for x in out.logits) + sum(f.pow(2).mean() for layers in out.features for f in layers)
    score.backward()
    assert wav.grad is not None and torch.isfinite(wav.grad).all()
    assert wav.grad.abs().sum() > 0
    # Both channels are seen.
    assert (wav.grad.abs().sum(dim=(0, 2)) > 0).all()


def test_combined_build_runs_under_bf16_autocast():
    disc = build_discriminators(["msstft", "mpd", "mrsd"], DiscriminatorsConfig.tiny(channels=1))
    assert disc.names == ["msstft", "mpd", "mrsd"]
    wav = torch.randn(2, 1, 512, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = disc(wav)
    assert len(out) == 3 + 2 + 2
    assert out.names[:4] == ["msstft/0", "msstft/1", "msstft/2", "mpd/p2"]
    assert all(torch.isfinite(x.float()).all() for x in out.logits)
    sum(x.float().mean() for x in out.logits).backward()
    assert torch.isfinite(wav.grad).all() and wav.grad.abs().sum() > 0


def test_spectral_norm_and_no_norm_options():
    for norm in ("spectral", "none"):
        cfg = MPDConfig(periods=(2,), filters=(4, 4), norm=norm)
        out = MultiPeriodDiscriminator(cfg)(torch.randn(1, 1, 64))
        assert out.logits[0].shape == (1, 1, 11, 2)
    with pytest.raises(ValueError, match="unknown norm"):
        MultiPeriodDiscriminator(MPDConfig(periods=(2,), filters=(4,), norm="batch"))


def test_default_sizes_are_the_published_ones():
    msstft = MultiScaleSTFTDiscriminator()
    mrsd = MultiResolutionSpectrogramDiscriminator()
    mpd = MultiPeriodDiscriminator()
    assert [d.n_fft for d in msstft.discriminators.values()] == [1024, 2048, 512]
    assert [d.n_fft for d in mrsd.discriminators.values()] == [1024, 2048, 512]
    assert list(mpd.discriminators) == ["p2", "p3", "p5", "p7", "p11"]
    assert mpd.discriminators["p2"].convs[-1].out_channels == 1024
    out = msstft(torch.randn(1, 1, 2048))
    assert [tuple(x.shape) for x in out.logits] == [(1, 1, 5, 65), (1, 1, 1, 129), (1, 1, 13, 33)]


def test_user_errors_are_clear(discs):
    with pytest.raises(ValueError, match="channels"):
        discs[("mpd", 1)](torch.randn(2, 2, 256))
    with pytest.raises(ValueError, match=r"\[B, C, T\]"):
        discs[("mpd", 1)](torch.randn(2, 256))
    with pytest.raises(ValueError, match="shorter than the STFT size"):
        discs[("msstft", 1)](torch.randn(2, 1, 100))
    with pytest.raises(ValueError, match="unknown discriminator kind"):
        build_discriminators(["msd"], TINY)
    with pytest.raises(ValueError, match="repeat"):
        build_discriminators(["mpd", "mpd"], TINY)


def test_output_concat_prefixes_names():
    a = DiscriminatorOutput(logits=[torch.zeros(1)], features=[[torch.zeros(1)]])
    b = DiscriminatorOutput(logits=[torch.zeros(1)] * 2, features=[[torch.zeros(1)]] * 2, names=["x", "y"])
    joined = DiscriminatorOutput.concat([a, b], prefixes=["a", "b"])
    assert joined.names == ["a", "b/x", "b/y"]
    with pytest.raises(ValueError):
        DiscriminatorOutput(logits=[torch.zeros(1)], features=[])
