"""SEANet encoder/decoder: shapes, length contract, causality, streaming, activations."""

from __future__ import annotations

import math

import pytest
import torch

from codec.model import (
    LSTMBottleneck,
    SEANetConfig,
    SEANetDecoder,
    SEANetEncoder,
    Snake,
    StreamableConv1d,
    StreamableConvTranspose1d,
    TransformerBottleneck,
    make_activation,
)


def tiny(**overrides) -> SEANetConfig:
    base = dict(n_filters=4, dimension=8, ratios=(4, 4), bottleneck="none", bottleneck_layers=1)
    base.update(overrides)
    return SEANetConfig(**base)


def build(cfg: SEANetConfig, seed: int = 0) -> tuple[SEANetEncoder, SEANetDecoder]:
    torch.manual_seed(seed)
    return SEANetEncoder(cfg).eval(), SEANetDecoder(cfg).eval()


def split_sizes(total: int, sizes: list[int]) -> list[int]:
    """Cycle through ``sizes`` until ``total`` is covered (the last piece may be shorter)."""
    out, i = [], 0
    while sum(out) < total:
        out.append(min(sizes[i % len(sizes)], total - sum(out)))
        i += 1
    return out


# ---------------------------------------------------------------- shapes and lengths


@pytest.mark.parametrize(
    "cfg",
    [
        tiny(ratios=(8, 5, 4, 2), bottleneck="lstm"),
        tiny(ratios=(8, 5, 4, 2), causal=True, bottleneck="transformer", bottleneck_heads=2),
        tiny(channels=2, activation="snake", true_skip=False, n_residual_layers=2),
        tiny(activation="gelu", pad_mode="reflect", norm="none", bottleneck="lstm"),
        tiny(activation="silu", causal=True, compress=1, dilation_base=3, n_residual_layers=3),
    ],
    ids=["hop320-lstm", "hop320-causal-transformer", "stereo-snake", "reflect-gelu", "causal"],
)
@torch.no_grad()
def test_shapes(cfg: SEANetConfig) -> None:
    enc, dec = build(cfg)
    assert enc.hop_length == dec.hop_length == math.prod(cfg.ratios)
    length = 3 * cfg.hop_length + cfg.hop_length // 2 + 1  # 4 frames, the last partial
    x = torch.randn(2, cfg.channels, length)
    z = enc(x)
    assert z.shape == (2, cfg.dimension, 4)
    y = dec(z)
    assert y.shape == (2, cfg.channels, 4 * cfg.hop_length)
    assert torch.isfinite(y).all()


def test_hop_320() -> None:
    assert SEANetConfig().hop_length == 320
    assert SEANetConfig().bottleneck_channels == 32 * 16


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("pad_mode", ["constant", "reflect"])
@torch.no_grad()
def test_length_contract(causal: bool, pad_mode: str) -> None:
    enc, dec = build(tiny(causal=causal, pad_mode=pad_mode))
    hop = enc.hop_length
    for length in [1, hop - 1, hop, hop + 1, 5 * hop - 3, 6 * hop]:
        z = enc(torch.randn(1, 1, length))
        assert z.shape[-1] == math.ceil(length / hop), length
        assert dec(z).shape[-1] == z.shape[-1] * hop


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize(
    ("kernel", "stride", "dilation"), [(7, 1, 1), (3, 1, 4), (8, 4, 1), (4, 4, 1), (5, 2, 2)]
)
@torch.no_grad()
def test_conv_lengths(causal: bool, kernel: int, stride: int, dilation: int) -> None:
    conv = StreamableConv1d(2, 3, kernel, stride, dilation, causal=causal)
    for length in [1, 2, stride + 1, 3 * stride, 23]:
        assert conv(torch.randn(1, 2, length)).shape == (1, 3, math.ceil(length / stride))
    if dilation == 1:
        convtr = StreamableConvTranspose1d(2, 3, kernel, stride, causal=causal)
        for frames in [1, 2, 9]:
            assert convtr(torch.randn(1, 2, frames)).shape == (1, 3, frames * stride)


def test_conv_rejects_skipping_kernel() -> None:
    with pytest.raises(ValueError, match="smaller than stride"):
        StreamableConv1d(1, 1, 2, stride=4)
    with pytest.raises(ValueError, match="kernel_size"):
        StreamableConvTranspose1d(1, 1, 2, stride=4)


# ---------------------------------------------------------------- causality


@pytest.mark.parametrize("bottleneck", ["none", "lstm", "transformer"])
@torch.no_grad()
def test_causal_encoder_ignores_the_future(bottleneck: str) -> None:
    enc, dec = build(tiny(causal=True, bottleneck=bottleneck, bottleneck_heads=2))
    hop, cut = enc.hop_length, 3
    x = torch.randn(1, 1, 7 * hop)
    x2 = x.clone()
    x2[..., cut * hop :] = torch.randn_like(x2[..., cut * hop :])
    z, z2 = enc(x), enc(x2)
    assert torch.equal(z[..., :cut], z2[..., :cut])
    assert not torch.allclose(z[..., cut:], z2[..., cut:])
    # Same for the decoder: frames from `cut` on never change samples before cut * hop.
    z2 = z.clone()
    z2[..., cut:] = torch.randn_like(z2[..., cut:])
    y, y2 = dec(z), dec(z2)
    assert torch.equal(y[..., : cut * hop], y2[..., : cut * hop])
    assert not torch.allclose(y[..., cut * hop :], y2[..., cut * hop :])


@torch.no_grad()
def test_non_causal_encoder_looks_ahead() -> None:
    enc, _ = build(tiny(causal=False))
    hop = enc.hop_length
    x = torch.randn(1, 1, 7 * hop)
    x2 = x.clone()
    x2[..., 3 * hop :] += 1.0
    assert not torch.allclose(enc(x)[..., :3], enc(x2)[..., :3])


# ---------------------------------------------------------------- streaming

STREAM_CONFIGS = [
    tiny(causal=True),
    tiny(causal=True, bottleneck="lstm", bottleneck_layers=2, activation="snake"),
    tiny(causal=True, bottleneck="transformer", bottleneck_heads=2),
    tiny(causal=True, bottleneck="transformer", bottleneck_heads=2, bottleneck_context=3),
    tiny(causal=True, ratios=(2, 3), n_residual_layers=2, true_skip=False),
]
STREAM_IDS = ["plain", "lstm-snake", "transformer", "transformer-context3", "odd-ratios"]


@pytest.mark.parametrize("cfg", STREAM_CONFIGS, ids=STREAM_IDS)
@pytest.mark.parametrize("frames_per_chunk", [[1], [3], [2, 1, 5, 4]], ids=["1", "3", "mixed"])
@torch.no_grad()
def test_streaming_equals_full_pass(cfg: SEANetConfig, frames_per_chunk: list[int]) -> None:
    enc, dec = build(cfg)
    hop, frames = enc.hop_length, 12
    x = torch.randn(2, cfg.channels, frames * hop)
    z, y = enc(x), dec(enc(x))
    sizes = split_sizes(frames, frames_per_chunk)
    with enc.streaming():
        chunks = [enc(c) for c in x.split([s * hop for s in sizes], dim=-1)]
    assert [c.shape[-1] for c in chunks] == sizes
    torch.testing.assert_close(torch.cat(chunks, dim=-1), z, atol=1e-5, rtol=1e-5)
    with dec.streaming():
        chunks = [dec(c) for c in z.split(sizes, dim=-1)]
    assert [c.shape[-1] for c in chunks] == [s * hop for s in sizes]
    torch.testing.assert_close(torch.cat(chunks, dim=-1), y, atol=1e-5, rtol=1e-5)
    # Leaving the context drops the state: a full pass is unchanged.
    torch.testing.assert_close(enc(x), z)


@torch.no_grad()
def test_streaming_uneven_chunks_give_a_prefix() -> None:
    """Chunks that are not multiples of the hop: frames come out once complete."""
    enc, _ = build(tiny(causal=True, bottleneck="lstm"))
    hop = enc.hop_length
    x = torch.randn(1, 1, 10 * hop + 5)
    with enc.streaming():
        out = torch.cat([enc(c) for c in x.split(split_sizes(x.shape[-1], [7, 23, 1, 40]), -1)], -1)
    assert out.shape[-1] == 10  # the partial 11th frame is not emitted
    torch.testing.assert_close(out, enc(x)[..., :10], atol=1e-5, rtol=1e-5)


@torch.no_grad()
def test_reset_streaming_starts_a_new_stream() -> None:
    enc, _ = build(tiny(causal=True, bottleneck="lstm"))
    x = torch.randn(1, 1, 4 * enc.hop_length)
    with enc.streaming():
        first = torch.cat([enc(c) for c in x.split(enc.hop_length, -1)], -1)
        enc.reset_streaming()
        second = torch.cat([enc(c) for c in x.split(enc.hop_length, -1)], -1)
    assert torch.equal(first, second)


def test_non_causal_models_refuse_to_stream() -> None:
    enc, dec = build(tiny(causal=False))
    for model in (enc, dec):
        with pytest.raises(ValueError, match="causal=True"):
            with model.streaming():
                pass
        assert not model.is_streaming
    with pytest.raises(ValueError, match="pad_mode"):
        with SEANetEncoder(tiny(causal=True, pad_mode="reflect")).streaming():
            pass
    with pytest.raises(ValueError, match="causal=True"):
        with TransformerBottleneck(8, 1, 2, causal=False).streaming():
            pass


@torch.no_grad()
def test_lstm_bottleneck_streams_its_state() -> None:
    torch.manual_seed(0)
    lstm = LSTMBottleneck(6, num_layers=2)
    x = torch.randn(2, 6, 9)
    with lstm.streaming():
        out = torch.cat([lstm(c) for c in x.split([1, 0, 4, 4], -1)], -1)
    torch.testing.assert_close(out, lstm(x), atol=1e-6, rtol=1e-6)


# ---------------------------------------------------------------- activations


def test_snake_forward_backward() -> None:
    torch.manual_seed(0)
    snake = Snake(3, alpha=0.5)
    x = (10 * torch.randn(2, 3, 50)).requires_grad_()
    y = snake(x)
    alpha = 0.5
    torch.testing.assert_close(y, x + torch.sin(alpha * x) ** 2 / alpha)
    y.square().mean().backward()
    assert torch.isfinite(x.grad).all() and torch.isfinite(snake.alpha.grad).all()
    assert snake.alpha.grad.abs().sum() > 0
    assert y.shape == x.shape


def test_make_activation() -> None:
    assert isinstance(make_activation("snake", 5), Snake)
    for name in ("elu", "gelu", "silu"):
        x = torch.randn(1, 2, 3)
        assert make_activation(name, 2)(x).shape == x.shape
    with pytest.raises(ValueError, match="activation must be one of"):
        make_activation("relu6", 2)


def test_config_errors_name_the_field() -> None:
    with pytest.raises(ValueError, match="SEANetConfig.bottleneck"):
        SEANetConfig(bottleneck="gru")
    with pytest.raises(ValueError, match="SEANetConfig.norm"):
        SEANetConfig(norm="batch")
    assert SEANetConfig(ratios=[4, 2]).ratios == (4, 2)  # lists from YAML become tuples


# ---------------------------------------------------------------- parameters and precision


@pytest.mark.parametrize(
    ("norm", "n_enc", "n_dec"), [("none", 107, 104), ("weight_norm", 120, 116)]
)
def test_parameter_count(norm: str, n_enc: int, n_dec: int) -> None:
    """Counted by hand. Encoder: conv 1->2 k3 (8), residual unit at 2 (7 + 4), conv 2->4 k4 s2
    (36), conv 4->4 k3 (52). Decoder: conv 4->4 k3 (52), convtr 4->2 k4 (34), residual (11),
    conv 2->1 k3 (7). Weight norm adds one gain per output channel (per input channel for the
    transposed conv)."""
    cfg = SEANetConfig(
        dimension=4, n_filters=2, ratios=(2,), kernel_size=3, last_kernel_size=3,
        bottleneck="none", norm=norm,
    )
    enc, dec = build(cfg)
    assert sum(p.numel() for p in enc.parameters()) == n_enc
    assert sum(p.numel() for p in dec.parameters()) == n_dec


def test_default_config_size() -> None:
    """The EnCodec-sized default: a few million parameters per side, most in the LSTM."""
    enc = SEANetEncoder(SEANetConfig())
    n = sum(p.numel() for p in enc.parameters())
    lstm = 2 * 4 * (512 * 512 * 2 + 2 * 512)
    assert lstm < n < lstm + 5_000_000


@pytest.mark.parametrize("bottleneck", ["none", "lstm", "transformer"])
def test_autocast_bf16(bottleneck: str) -> None:
    cfg = tiny(causal=True, bottleneck=bottleneck, bottleneck_heads=2, activation="snake")
    enc, dec = build(cfg)
    x = torch.randn(2, 1, 4 * enc.hop_length)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = dec(enc(x))
        with enc.streaming():
            z = torch.cat([enc(c) for c in x.split(enc.hop_length, -1)], -1)
    assert y.shape == x.shape and torch.isfinite(y).all()
    assert z.shape == (2, 8, 4) and torch.isfinite(z).all()
    y.float().square().mean().backward()
    assert all(torch.isfinite(p.grad).all() for p in enc.parameters() if p.grad is not None)
