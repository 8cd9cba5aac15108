"""EncodecTokenizer against the ``encodec`` package itself, on random-init models.

A fresh EnCodec's codebooks are zeros until trained (every code would be 0 and parity trivial), so
each model's codebooks are first seeded from real residuals of its encoder on varied audio.
"""

from __future__ import annotations

import math
from pathlib import Path
from urllib.error import URLError

import pytest
import torch
from einops import rearrange
from encodec import EncodecModel
from safetensors.torch import save_file

from codec.encodec import VARIANTS, EncodecTokenizer, segment_layout
from codec.tokenizer import AudioTokenizer


def _audio(batch: int, channels: int, length: int, sample_rate: int, seed: int) -> torch.Tensor:
    """Sines, chirps and noise bursts with varying loudness: [B, C, T] in [-1, 1]."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(length) / sample_rate
    out = torch.zeros(batch, channels, length)
    for b in range(batch):
        for c in range(channels):
            f0, f1 = 80 + 900 * torch.rand(2, generator=g)
            chirp = torch.sin(2 * math.pi * (f0 * t + (f1 - f0) * t**2 / 2))
            tone = torch.sin(2 * math.pi * (200 + 3000 * torch.rand(1, generator=g)) * t)
            noise = torch.randn(length, generator=g) * torch.sin(2 * math.pi * 3 * t).abs()
            envelope = 0.1 + 0.9 * torch.rand(1, generator=g) * (1 + torch.sin(2 * math.pi * 2 * t)) / 2
            out[b, c] = envelope * (0.4 * chirp + 0.3 * tone + 0.2 * noise)
    return out.clamp(-1, 1)


@torch.no_grad()
def _seed_codebooks(model: EncodecModel, wav: torch.Tensor, seed: int) -> None:
    """Set every RVQ layer's codebook from residual frames of the encoder, layer by layer."""
    g = torch.Generator().manual_seed(seed)
    if model.normalize:
        wav = wav / (1e-8 + wav.mean(dim=1, keepdim=True).pow(2).mean(dim=2, keepdim=True).sqrt())
    residual = rearrange(model.encoder(wav), "b d t -> (b t) d")
    for layer in model.quantizer.vq.layers:
        book = layer._codebook
        picks = residual[torch.randint(0, residual.shape[0], (book.codebook_size,), generator=g)]
        # A quarter of the way from the mean to each frame: the seed frames keep three quarters of
        # their residual at each layer instead of losing it all at the first (which would leave the
        # deeper codebooks tied at float precision, every code the same).
        center = residual.mean(dim=0)
        embed = center + 0.25 * (picks - center) + 0.01 * residual.std(dim=0) * torch.randn(picks.shape, generator=g)
        book.embed.copy_(embed)
        book.embed_avg.copy_(embed)
        book.cluster_size.fill_(1.0)
        book.inited.fill_(1.0)
        residual = residual - book.embed[book.quantize(residual)]


def _reference(spec: str, state: dict[str, torch.Tensor]) -> EncodecModel:
    """A second, independent package model holding the same weights."""
    model = VARIANTS[spec].build()
    model.load_state_dict(state)
    return model.eval()


def _package_encode(model: EncodecModel, wav: torch.Tensor, bandwidth: float) -> list:
    model.set_target_bandwidth(bandwidth)
    with torch.no_grad():
        return model.encode(wav)


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> dict[str, Path]:
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("encodec")
    files = {}
    for spec, seconds in (("encodec24k", 1.0), ("encodec48k", 0.5)):
        v = VARIANTS[spec]
        model = v.build().eval()
        _seed_codebooks(model, _audio(4, v.channels, int(seconds * v.sample_rate), v.sample_rate, seed=1), seed=2)
        state = {k: t.contiguous() for k, t in model.state_dict().items()}
        files[spec] = root / f"{spec}.th"
        torch.save(state, files[spec])
        files[spec + ".safetensors"] = root / f"{spec}.safetensors"
        save_file(state, str(files[spec + ".safetensors"]))
    return files


@pytest.fixture(scope="module")
def tok24(weights) -> EncodecTokenizer:
    return EncodecTokenizer.from_spec("encodec24k:" + str(weights["encodec24k"]))


@pytest.fixture(scope="module")
def ref24(tok24) -> EncodecModel:
    return _reference("encodec24k", tok24.model.state_dict())


# 24 kHz ------------------------------------------------------------------------------------------


def test_24k_properties(tok24):
    assert isinstance(tok24, AudioTokenizer)
    assert (tok24.sample_rate, tok24.channels, tok24.frame_rate) == (24_000, 1, 75)
    assert (tok24.num_codebooks, tok24.cardinality, tok24.hop_length) == (32, 1024, 320)
    assert tok24.bandwidths == (1.5, 3.0, 6.0, 12.0, 24.0)
    assert tok24.codebooks_per_bandwidth == {1.5: 2, 3.0: 4, 6.0: 8, 12.0: 16, 24.0: 32}
    assert tok24.bandwidth == 24.0


@pytest.mark.parametrize("bandwidth,k", [(6.0, 8), (24.0, 32)])
def test_24k_codes_equal_package_bit_for_bit(weights, ref24, bandwidth, k):
    tok = EncodecTokenizer.from_spec("encodec24k:" + str(weights["encodec24k"]), bandwidth=bandwidth)
    wav = _audio(2, 1, 24_000, 24_000, seed=5)
    codes = tok.encode(wav)
    frames = _package_encode(ref24, wav, bandwidth)
    expected = torch.cat([c for c, _ in frames], dim=-1)
    assert codes.shape == (2, k, 75) and codes.dtype == torch.int64
    assert torch.equal(codes, expected)
    # varied codes: the codebooks were really used
    distinct = [codes[:, q].unique().numel() for q in range(k)]
    assert min(distinct) >= 40, distinct
    assert (codes != 0).float().mean() > 0.9
    # num_codebooks picks the bandwidth for one call
    expected4 = torch.cat([c for c, _ in _package_encode(ref24, wav, 3.0)], dim=-1)
    assert torch.equal(tok.encode(wav, num_codebooks=4), expected4)
    assert tok.bandwidth == bandwidth


def test_24k_decode_equals_package_decode(tok24, ref24):
    wav = _audio(2, 1, 12_000, 24_000, seed=6)
    frames = _package_encode(ref24, wav, 6.0)
    codes = torch.cat([c for c, _ in frames], dim=-1)
    out = tok24.decode(codes)
    assert out.shape == (2, 1, codes.shape[-1] * 320)
    assert torch.isfinite(out).all()
    with torch.no_grad():
        assert torch.equal(out, ref24.decode(frames))


def test_24k_bad_inputs(tok24):
    with pytest.raises(ValueError, match=r"\[B, 1, T\]"):
        tok24.encode(torch.zeros(1, 2, 800))
    with pytest.raises(ValueError, match="not 5"):
        tok24.encode(torch.zeros(1, 1, 800), num_codebooks=5)
    with pytest.raises(ValueError, match="no 7 kbps"):
        tok24.set_bandwidth(7)
    with pytest.raises(ValueError, match=r"\[0, 1024\)"):
        tok24.decode(torch.full((1, 2, 3), 1024))
    with pytest.raises(ValueError, match="no per-segment scales"):
        tok24.decode(torch.zeros(1, 2, 3, dtype=torch.long), scales=torch.ones(1, 1))


def test_codec_id_tracks_weights_not_bandwidth(weights, tok24):
    same = EncodecTokenizer.from_spec("encodec24k:" + str(weights["encodec24k.safetensors"]))
    assert len(tok24.codec_id) == 16 and int(tok24.codec_id, 16) >= 0
    assert same.codec_id == tok24.codec_id
    wav = _audio(1, 1, 4_000, 24_000, seed=7)
    assert torch.equal(same.encode(wav), tok24.encode(wav))
    same.set_bandwidth(6)
    assert same.codec_id == tok24.codec_id
    assert torch.equal(same.encode(wav), tok24.encode(wav)[:, :8])  # fewer codebooks: a prefix
    other = EncodecTokenizer(VARIANTS["encodec24k"].build())
    assert other.codec_id != tok24.codec_id


# 48 kHz ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tok48(weights) -> EncodecTokenizer:
    return EncodecTokenizer.from_spec("encodec48k:" + str(weights["encodec48k"]))


@pytest.fixture(scope="module")
def ref48(tok48) -> EncodecModel:
    return _reference("encodec48k", tok48.model.state_dict())


def test_48k_stereo_codes_scales_and_decode_equal_package(tok48, ref48):
    tok, ref = tok48, ref48
    assert (tok.sample_rate, tok.channels, tok.frame_rate, tok.num_codebooks) == (48_000, 2, 150, 16)
    assert tok.codebooks_per_bandwidth == {3.0: 2, 6.0: 4, 12.0: 8, 24.0: 16}
    wav = _audio(2, 2, 72_000, 48_000, seed=8)  # 1.5 s: two overlapping 1 s segments
    enc = tok.encode_with_scales(wav, num_codebooks=4)
    frames = _package_encode(ref, wav, 6.0)
    assert len(frames) == 2
    assert torch.equal(enc.codes, torch.cat([c for c, _ in frames], dim=-1))
    assert enc.codes.shape == (2, 4, 150 + 77)
    assert torch.equal(enc.scales, torch.cat([s for _, s in frames], dim=1))
    assert enc.scales.shape == (2, 2)
    assert min(enc.codes[:, q].unique().numel() for q in range(4)) >= 40
    with torch.no_grad():
        expected = ref.decode(frames)
    out = tok.decode(enc.codes, enc.scales)
    assert out.shape == expected.shape == (2, 2, 47_520 + 77 * 320)
    assert torch.equal(out, expected)
    unit = tok.decode(enc.codes)  # no scales: loudness-normalized audio, same shape
    assert unit.shape == out.shape and torch.isfinite(unit).all()
    with pytest.raises(ValueError, match=r"\[2, 2\]"):
        tok.decode(enc.codes, enc.scales[:, :1])


def test_48k_short_tail_segment_round_trips_like_package(tok48, ref48):
    tok, ref = tok48, ref48
    wav = _audio(1, 2, 47_600, 48_000, seed=9)  # segments of 149 and 1 codes
    tok.set_bandwidth(3.0)
    try:
        enc = tok.encode_with_scales(wav)
    finally:
        tok.set_bandwidth(24.0)
    assert enc.codes.shape[1] == 2
    frames = _package_encode(ref, wav, 3.0)
    assert [c.shape[-1] for c, _ in frames] == [149, 1]
    assert torch.equal(enc.codes, torch.cat([c for c, _ in frames], dim=-1))
    with torch.no_grad():
        assert torch.equal(tok.decode(enc.codes, enc.scales), ref.decode(frames))


def test_segment_layout_matches_package_segmentation():
    seg, stride, hop = 48_000, 47_520, 320

    def layout(length: int) -> tuple[int, ...]:  # what EncodecModel.encode does
        return tuple(math.ceil(min(seg, length - s) / hop) for s in range(0, length, stride))

    g = torch.Generator().manual_seed(0)
    lengths = set(range(47_000, 48_300, 7)) | set(range(94_500, 96_400, 11))
    lengths |= set(torch.randint(1, 2_000_000, (300,), generator=g).tolist())
    for length in sorted(lengths):
        expected = layout(length)
        assert segment_layout(sum(expected), seg, stride, hop) == expected, length
    assert segment_layout(80, None, None, hop) == (80,)


# errors ------------------------------------------------------------------------------------------


def test_unknown_spec_and_empty_path():
    with pytest.raises(ValueError, match=r"unknown EnCodec spec 'encodec32k'.*'encodec24k' or 'encodec48k'"):
        EncodecTokenizer.from_spec("encodec32k")
    with pytest.raises(ValueError, match="names no weights file"):
        EncodecTokenizer.from_spec("encodec24k:")


def test_missing_file(tmp_path):
    missing = tmp_path / "nope.th"
    with pytest.raises(FileNotFoundError, match=rf"{missing}: EnCodec weights file not found.*encodec24k:/path/to/"):
        EncodecTokenizer.from_spec(f"encodec24k:{missing}")


@pytest.mark.parametrize(
    "name,data", [("garbage.th", bytes(range(256)) * 8), ("empty.th", b""), ("bad.safetensors", b"\x05" * 64)]
)
def test_garbage_file(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(ValueError, match=rf"{path}: not a (readable )?(PyTorch weights|safetensors) file"):
        EncodecTokenizer.from_spec(f"encodec24k:{path}")


def test_foreign_and_mismatched_weights(tmp_path, weights):
    foreign = tmp_path / "foreign.th"
    torch.save({"linear.weight": torch.zeros(2, 2)}, foreign)
    with pytest.raises(ValueError, match=rf"{foreign}: not encodec24k weights: \d+ missing keys"):
        EncodecTokenizer.from_spec(f"encodec24k:{foreign}")
    with pytest.raises(ValueError, match=r"not encodec24k weights.*looks like encodec48k weights: use 'encodec48k:"):
        EncodecTokenizer.from_spec(f"encodec24k:{weights['encodec48k']}")
    with pytest.raises(ValueError, match=r"not encodec48k weights.*looks like encodec24k weights"):
        EncodecTokenizer.from_spec(f"encodec48k:{weights['encodec24k.safetensors']}")
    tensor = tmp_path / "tensor.th"
    torch.save(torch.zeros(3), tensor)
    with pytest.raises(ValueError, match=rf"{tensor}: holds a Tensor, not a state dict"):
        EncodecTokenizer.from_spec(f"encodec24k:{tensor}")


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('ran')",))


def test_malicious_pickle_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "marker"
    evil = tmp_path / "evil.th"
    torch.save({"encoder.model.0.conv.conv.bias": _Payload(marker)}, evil)
    assert not marker.exists()
    with pytest.raises(ValueError, match=rf"{evil}: refused: it holds the Python object exec.*could run code"):
        EncodecTokenizer.from_spec(f"encodec24k:{evil}")
    assert not marker.exists()


def test_pretrained_fetch_failure_says_what_to_do(monkeypatch):
    def offline(*args, **kwargs):
        raise URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    expected = r"could not fetch the pretrained encodec24k weights.*'encodec24k:/path/to/encodec_24khz-d7cc33bc.th'"
    with pytest.raises(RuntimeError, match=expected):
        EncodecTokenizer.from_spec("encodec24k")


def test_24k_latent_is_what_its_decoder_reads_and_a_second_decoder_reads_it(tok24, tok48):
    from codec.decoder.model import CodecShape, DecoderConfig, TokenDecoder
    from codec.decoder.tokenizer import DecodedWith

    wav = _audio(1, 1, 9_600, 24_000, seed=7)
    codes = tok24.encode(wav, num_codebooks=8)
    latent = tok24.dequantize(codes)
    assert latent.shape == (1, 128, codes.shape[-1])
    with torch.no_grad():
        assert torch.equal(tok24.model.decoder(latent), tok24.decode(codes))  # the package's own decode
    assert not torch.equal(tok24.dequantize(codes[:, :2]), latent)  # fewer codebooks, a coarser latent
    shape = CodecShape.of(tok24)
    assert (shape.sample_rate, shape.hop_length, shape.dimension, shape.num_codebooks) == (24_000, 320, 128, 32)
    torch.manual_seed(0)
    dec = TokenDecoder(DecoderConfig(fourier={"width": 32, "layers": 2}), shape).eval()
    dec.codec_id = tok24.codec_id
    tok = DecodedWith(tok24, dec)
    out = tok.decode(codes[:, :4])
    assert out.shape == (1, 1, codes.shape[-1] * 320) and torch.isfinite(out).all()
    with pytest.raises(ValueError, match="scaled segments"):
        tok48.dequantize(tok48.encode(_audio(1, 2, 24_000, 48_000, seed=8)))
