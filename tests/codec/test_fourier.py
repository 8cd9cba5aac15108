"""The frame-rate decoder with an inverse-STFT head: exact inversion, lengths, codec wiring, export."""

from __future__ import annotations

import math

import pytest
import torch

from codec.codec import CodecConfig, build_codec
from codec.export import export_codec, load_export
from codec.model import SEANetConfig
from codec.model.fourier import FourierConfig, FourierDecoder, FourierEncoder, ISTFTHead, overlap_add
from codec.quantize import RVQConfig


@pytest.mark.parametrize("n_fft,hop", [(1280, 320), (64, 16), (48, 24), (60, 16)])
def test_istft_head_inverts_its_stft_exactly(n_fft: int, hop: int) -> None:
    head = ISTFTHead(n_fft, hop)
    g = torch.Generator().manual_seed(0)
    t = torch.arange(hop * 30) / 16000
    wav = torch.stack([0.3 * torch.sin(2 * math.pi * 440 * t), 0.1 * torch.randn(t.shape, generator=g)])  # [2, T]
    spec = head.stft(wav)
    assert spec.shape == (2, n_fft // 2 + 1, 30)  # one frame a hop, N * hop samples
    out = head(spec.abs().clamp_min(1e-12).log(), spec.angle())
    assert out.shape == wav.shape
    assert (out - wav).abs().max() < 1e-5
    # the phase matters: the same magnitudes with zero phase are far from the signal
    assert (head(spec.abs().clamp_min(1e-12).log(), torch.zeros_like(spec.real)) - wav).abs().max() > 0.05


@pytest.mark.parametrize("length,hop,n", [(64, 16, 9), (1280, 320, 3), (48, 48, 4), (60, 16, 7), (5, 3, 1)])
def test_overlap_add_puts_frame_j_at_j_times_hop(length: int, hop: int, n: int) -> None:
    frames = torch.randn(2, length, n, dtype=torch.float64)
    want = torch.zeros(2, (n - 1) * hop + length, dtype=torch.float64)
    for j in range(n):  # the definition, frame by frame
        want[:, j * hop: j * hop + length] += frames[:, :, j]
    torch.testing.assert_close(overlap_add(frames, hop), want, atol=1e-12, rtol=0)


def test_istft_frame_j_sits_on_hop_j() -> None:
    """A click in hop j of the signal shows up in STFT frame j (and its overlapping neighbours)
    with the most energy in frame j: frames are centred on the middle of their hop."""
    head = ISTFTHead(64, 16)
    wav = torch.zeros(1, 16 * 12)
    wav[0, 16 * 7 + 8] = 1.0
    energy = head.stft(wav).abs().pow(2).sum(dim=1)[0]  # [12]
    assert int(energy.argmax()) == 7


@pytest.mark.parametrize("upsample", [1, 2])
def test_decoder_lengths(upsample: int) -> None:
    torch.manual_seed(0)
    dec = FourierDecoder(FourierConfig(width=16, layers=2, upsample=upsample), dimension=8, channels=1, hop=40)
    for frames in (1, 7, 20):
        assert dec(torch.randn(2, 8, frames)).shape == (2, 1, frames * 40)
    stereo = FourierDecoder(FourierConfig(width=16, layers=1), dimension=8, channels=2, hop=40)
    assert stereo(torch.randn(3, 8, 5)).shape == (3, 2, 200)
    with pytest.raises(ValueError, match=r"\[B, 8, T\]"):
        dec(torch.randn(2, 4, 5))


def test_config_errors_name_the_field() -> None:
    with pytest.raises(ValueError, match="kernel_size must be odd"):
        FourierConfig(kernel_size=4)
    with pytest.raises(ValueError, match="not a multiple of FourierConfig.upsample"):
        FourierConfig(upsample=3).stft_hop(320)
    with pytest.raises(ValueError, match="n_fft must be even and >= twice"):
        FourierConfig(n_fft=400).fft_size(320)
    with pytest.raises(ValueError, match="decoder must be one of"):
        CodecConfig(decoder="wavenet")


def fourier_codec() -> torch.nn.Module:
    torch.manual_seed(0)
    cfg = CodecConfig(16000, SEANetConfig(n_filters=4, dimension=16, ratios=(4, 4), bottleneck="none"),
                      RVQConfig(dimension=16, n_q=3, bins=16), decoder="fourier",
                      fourier=FourierConfig(width=16, layers=2))
    codec = build_codec(cfg).train()
    with torch.no_grad():
        codec(0.1 * torch.randn(2, 1, 1600), n_q=3)  # fill every codebook
    return codec.eval()


def test_codec_with_fourier_decoder_round_trips_through_export(tmp_path) -> None:
    codec = fourier_codec()
    wav = 0.1 * torch.randn(1, 1, 1000)
    codes = codec.encode(wav)
    assert codes.shape == (1, 3, 63)  # ceil(1000 / 16)
    out = codec.decode(codes)
    assert out.shape == (1, 1, 63 * 16) and torch.isfinite(out).all()
    loaded = load_export(export_codec(codec, tmp_path / "export"))
    assert loaded.cfg.decoder == "fourier" and loaded.cfg.fourier == codec.cfg.fourier
    assert torch.equal(loaded.encode(wav), codes)
    assert torch.equal(loaded.decode(codes), out)


def test_configs_without_a_decoder_field_load_as_seanet() -> None:
    d = CodecConfig(16000, SEANetConfig(n_filters=4, dimension=16, ratios=(4, 4)), RVQConfig(16, 2, 8)).to_dict()
    d.pop("decoder"), d.pop("fourier")  # an export written before the field existed
    assert CodecConfig.from_dict(d).decoder == "seanet"


@pytest.mark.parametrize("upsample", [1, 2])
def test_encoder_lengths(upsample: int) -> None:
    torch.manual_seed(0)
    enc = FourierEncoder(FourierConfig(width=16, encoder_layers=2, mels=12, upsample=upsample), dimension=8,
                         channels=1, hop=40, sample_rate=16000)
    for t in (1, 39, 40, 41, 400, 1000):
        assert enc(0.1 * torch.randn(2, 1, t)).shape == (2, 8, -(-t // 40))
    with pytest.raises(ValueError, match=r"\[B, 1, T\]"):
        enc(torch.randn(2, 2, 400))


def test_encoder_frame_i_is_centred_on_hop_i() -> None:
    """A click in the middle of frame j's hop reaches exactly the frames within the receptive field
    around j, as many on each side: the STFT windows covering it (j-1, j, j+1; the Hann window is
    zero at its first sample) widened by 3 frames by the input conv and by each ConvNeXt block."""
    torch.manual_seed(0)
    layers, hop, j, n = 2, 40, 20, 41
    enc = FourierEncoder(FourierConfig(width=16, encoder_layers=layers, mels=12), dimension=8, channels=1,
                         hop=hop, sample_rate=16000).eval()
    quiet = 0.01 * torch.randn(1, 1, n * hop)
    click = quiet.clone()
    click[0, 0, j * hop + hop // 2] += 0.5
    with torch.no_grad():
        moved = (enc(click) - enc(quiet)).abs().amax(dim=1)[0]  # [n]
    reach = 1 + 3 + 3 * layers
    inside = torch.zeros(n, dtype=torch.bool)
    inside[j - reach : j + reach + 1] = True
    assert (moved[inside] > 1e-5).all(), moved
    assert (moved[~inside] < 1e-6).all(), moved


def test_codec_with_fourier_encoder_round_trips_through_export(tmp_path) -> None:
    torch.manual_seed(0)
    cfg = CodecConfig(16000, SEANetConfig(n_filters=4, dimension=16, ratios=(4, 4), bottleneck="none"),
                      RVQConfig(dimension=16, n_q=3, bins=16, bypass_steps=1), encoder="fourier", decoder="fourier",
                      fourier=FourierConfig(width=16, layers=2, encoder_layers=1, mels=16))
    codec = build_codec(cfg).train()
    assert isinstance(codec.encoder, FourierEncoder)
    with torch.no_grad():
        for _ in range(2):  # the bypassed batch, then one through the codes
            codec(0.1 * torch.randn(2, 1, 1600), n_q=3)
    codec.eval()
    wav = 0.1 * torch.randn(1, 1, 1000)
    codes = codec.encode(wav)
    assert codes.shape == (1, 3, 63)
    loaded = load_export(export_codec(codec, tmp_path / "export"))
    assert loaded.cfg.encoder == "fourier" and loaded.cfg.quantizer.bypass_steps == 1
    assert torch.equal(loaded.encode(wav), codes) and torch.equal(loaded.decode(codes), codec.decode(codes))
    d = loaded.cfg.to_dict()
    d.pop("encoder")  # an export written before the field existed
    assert CodecConfig.from_dict(d).encoder == "seanet"
    with pytest.raises(ValueError, match="encoder must be one of"):
        CodecConfig(encoder="wav2vec")
