"""Streaming a causal codec (codec/stream.py): chunks of any length, including ones that are not
whole frames and empty ones, give exactly the codes of a full pass and audio within 1e-5 of it;
streams interleaved call by call never mix; a snapshot resumes a stream exactly; a codec that
cannot stream says so in one line."""

from __future__ import annotations

import random

import pytest
import torch

from codec.codec import CodecConfig, build_codec
from codec.model import SEANetConfig
from codec.quantize import RVQConfig

BOTTLENECKS = {
    "plain": {},
    "lstm": {"bottleneck": "lstm", "bottleneck_layers": 1},
    "transformer-context4": {"bottleneck": "transformer", "bottleneck_layers": 1, "bottleneck_heads": 2,
                             "bottleneck_context": 4},
}


def causal_codec(seed: int = 0, **seanet) -> torch.nn.Module:
    torch.manual_seed(seed)
    cfg = CodecConfig(8000, SEANetConfig(n_filters=4, dimension=16, ratios=(4, 2), causal=True, **seanet),
                      RVQConfig(dimension=16, n_q=3, bins=16))
    codec = build_codec(cfg)
    codec.train()
    with torch.no_grad():
        codec(torch.randn(2, 1, 8 * 64) * 0.3)  # fit the codebooks to this encoder's output
    return codec.eval()


def random_chunks(total: int, rng: random.Random, largest: int) -> list[int]:
    sizes, done = [], 0
    while done < total:
        n = min(rng.randint(0, largest), total - done)
        sizes.append(n)
        done += n
    return sizes


def stream_encode(stream, wav: torch.Tensor, sizes: list[int]) -> torch.Tensor:
    parts, start = [], 0
    for n in sizes:
        codes = stream.encode_step(wav[..., start:start + n])
        assert codes.shape[:2] == (wav.shape[0], stream.num_codebooks) and codes.dtype == torch.long
        parts.append(codes)
        start += n
    parts.append(stream.flush())
    return torch.cat(parts, dim=-1)


def stream_decode(stream, codes: torch.Tensor, sizes: list[int]) -> torch.Tensor:
    parts, start = [], 0
    for n in sizes:
        audio = stream.decode_step(codes[..., start:start + n])
        assert audio.shape[-1] == n * stream.hop_length  # each frame's samples come out once, when it arrives
        parts.append(audio)
        start += n
    return torch.cat(parts, dim=-1)


@pytest.mark.parametrize("bottleneck", list(BOTTLENECKS))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_chunks_equal_the_full_pass(bottleneck: str, seed: int) -> None:
    codec = causal_codec(**BOTTLENECKS[bottleneck])
    rng = random.Random(seed)
    length = rng.randint(20, 40) * codec.hop_length + rng.randint(0, codec.hop_length - 1)  # a partial last frame
    wav = torch.randn(2, 1, length, generator=torch.Generator().manual_seed(seed)) * 0.3
    full_codes = codec.encode(wav)
    full_audio = codec.decode(full_codes)
    assert len(full_codes[:, 0].unique()) > 3  # the codes carry something: agreement is not trivial

    with codec.streaming(batch_size=2) as stream:
        codes = stream_encode(stream, wav, random_chunks(length, rng, 3 * codec.hop_length))
    assert torch.equal(codes, full_codes)

    stream = codec.stream(batch_size=2)
    audio = stream_decode(stream, full_codes, random_chunks(full_codes.shape[-1], rng, 5))
    assert audio.shape == full_audio.shape
    torch.testing.assert_close(audio, full_audio, atol=1e-5, rtol=0)


def test_frames_come_out_once_complete_and_flush_adds_the_partial_one() -> None:
    codec = causal_codec()
    hop = codec.hop_length
    wav = torch.randn(1, 1, 3 * hop + 1) * 0.3
    with codec.streaming() as stream:
        assert codec.encode_step(wav[..., : hop - 1]).shape[-1] == 0  # not a whole frame yet
        assert codec.encode_step(wav[..., hop - 1: hop]).shape[-1] == 1
        assert codec.encode_step(wav[..., hop: 3 * hop + 1]).shape[-1] == 2  # the 4th frame is partial
        last = codec.flush()
        assert last.shape[-1] == 1 and stream.frames_out == 4 == codec.encode(wav).shape[-1]
        with pytest.raises(RuntimeError, match="flushed"):
            codec.encode_step(wav)
        codec.reset_streaming()
        assert codec.encode_step(wav[..., :hop]).shape[-1] == 1  # a new stream


def test_interleaved_streams_never_mix() -> None:
    codec = causal_codec(bottleneck="lstm", bottleneck_layers=1)
    hop = codec.hop_length
    a, b = (torch.randn(1, 1, 24 * hop + 5, generator=torch.Generator().manual_seed(s)) * 0.3 for s in (1, 2))
    sa, sb = codec.stream(), codec.stream()
    out_a, out_b = [], []
    for start in range(0, a.shape[-1], 37):  # call by call, alternating
        out_a.append(sa.encode_step(a[..., start:start + 37]))
        out_b.append(sb.encode_step(b[..., start:start + 37]))
    out_a.append(sa.flush())
    out_b.append(sb.flush())
    codes_a, codes_b = torch.cat(out_a, -1), torch.cat(out_b, -1)
    assert torch.equal(codes_a, codec.encode(a)) and torch.equal(codes_b, codec.encode(b))
    assert not torch.equal(codes_a, codes_b)
    da, db = codec.stream(), codec.stream()
    audio_a = torch.cat([x for i in range(0, codes_a.shape[-1], 3)
                         for x in (da.decode_step(codes_a[..., i:i + 3]), db.decode_step(codes_b[..., i:i + 3]))][0::2], -1)
    torch.testing.assert_close(audio_a, codec.decode(codes_a), atol=1e-5, rtol=0)


def test_a_snapshot_resumes_the_stream_exactly() -> None:
    codec = causal_codec(bottleneck="transformer", bottleneck_layers=1, bottleneck_heads=2, bottleneck_context=4)
    hop = codec.hop_length
    wav = torch.randn(1, 1, 30 * hop) * 0.3
    stream = codec.stream()
    head = stream.encode_step(wav[..., : 10 * hop + 3])
    saved = stream.state()
    tail = torch.cat([stream.encode_step(wav[..., 10 * hop + 3:]), stream.flush()], -1)
    stream.load_state(saved)  # back to the middle of the stream
    again = torch.cat([stream.encode_step(wav[..., 10 * hop + 3:]), stream.flush()], -1)
    assert torch.equal(tail, again)
    assert torch.equal(torch.cat([head, tail], -1), codec.encode(wav))


def test_codecs_that_cannot_stream_say_so() -> None:
    non_causal = build_codec(CodecConfig(8000, SEANetConfig(n_filters=4, dimension=16, ratios=(4, 2), causal=False),
                                         RVQConfig(dimension=16, n_q=2, bins=16)))
    with pytest.raises(ValueError, match="cannot stream: its encoder is not causal"):
        non_causal.stream()
    fourier = build_codec(CodecConfig(16000, SEANetConfig(n_filters=4, dimension=16, ratios=(8, 5, 4, 2)),
                                      RVQConfig(dimension=16, n_q=2, bins=16), encoder="fourier", decoder="fourier",
                                      fourier={"width": 16, "layers": 1, "encoder_layers": 1, "mels": 16}))
    with pytest.raises(ValueError, match="its encoder \\(FourierEncoder\\) works on whole signals"):
        with fourier.streaming():
            pass
    with pytest.raises(RuntimeError, match="not streaming"):
        fourier.encode_step(torch.zeros(1, 1, 10))


@pytest.mark.parametrize("kind", ["fourier", "seanet-noncausal"])
def test_windowed_decoding_of_a_codec_that_cannot_stream_equals_one_pass(kind: str) -> None:
    from codec.stream import WindowedDecodeStream, decode_stream, receptive_field

    torch.manual_seed(0)
    if kind == "fourier":
        cfg = CodecConfig(16000, SEANetConfig(n_filters=4, dimension=16, ratios=(8, 5, 4, 2)),
                          RVQConfig(dimension=16, n_q=2, bins=16), encoder="fourier", decoder="fourier",
                          fourier={"width": 16, "layers": 2, "encoder_layers": 1, "mels": 16})
    else:
        cfg = CodecConfig(8000, SEANetConfig(n_filters=4, dimension=16, ratios=(4, 2)), RVQConfig(dimension=16, n_q=2, bins=16))
    codec = build_codec(cfg).eval()
    left, right = receptive_field(codec)
    assert 0 < left < 64 and 0 < right < 64
    stream = decode_stream(codec)
    assert isinstance(stream, WindowedDecodeStream) and stream.decode_latency_samples == left * codec.hop_length
    codes = torch.randint(0, 16, (1, 2, 150), generator=torch.Generator().manual_seed(1))
    full = codec.decode(codes)
    rng, parts, start = random.Random(0), [], 0
    for n in random_chunks(150, rng, 9):
        parts.append(stream.decode_step(codes[..., start:start + n]))
        start += n
    assert sum(p.shape[-1] for p in parts) == (150 - left) * codec.hop_length  # the last frames wait for lookahead
    parts.append(stream.finish())
    torch.testing.assert_close(torch.cat(parts, -1), full, atol=1e-5, rtol=0)
    # a window that reaches less far than the decoder does not equal the full pass: the reach is needed
    short = WindowedDecodeStream(codec, context=right // 2, lookahead=left // 2)
    short_out = torch.cat([short.decode_step(codes[..., i:i + 5]) for i in range(0, 150, 5)] + [short.finish()], -1)
    assert (short_out - full).abs().max() > 1e-4


def test_a_trained_causal_codec_streams_its_speech_like_one_pass() -> None:
    """A causal codec trained (reconstruction, a few dozen steps) on a speech-like clip: streaming it
    in uneven chunks gives one pass's codes and audio, and the trained codec reconstructs the clip
    better than it did untrained (so the agreement is of a working codec)."""
    import math

    from codec.losses import mel_distance

    codec = causal_codec(bottleneck="lstm", bottleneck_layers=1)
    t = torch.arange(8000 * 3 // 4) / 8000
    f0 = 140 + 30 * torch.sin(2 * math.pi * 0.7 * t)
    clip = (0.3 * torch.sin(2 * math.pi * torch.cumsum(f0, 0) / 8000) * (1 + torch.sin(2 * math.pi * 3 * t)) / 2)[None, None]

    def distance() -> float:
        codec.eval()
        with torch.no_grad():
            out = codec.decode(codec.encode(clip))[..., : clip.shape[-1]]
        return float(mel_distance(out, clip, 8000).mean())

    before = distance()
    opt = torch.optim.Adam(codec.parameters(), lr=3e-3)
    codec.train()
    for _ in range(40):
        out = codec(clip)
        loss = (out.audio - clip).abs().mean() + mel_distance(out.audio, clip, 8000).mean() + out.quantizer.commit_loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = distance()
    assert after < 0.8 * before, (before, after)
    codec.eval()
    full_codes = codec.encode(clip)
    rng = random.Random(3)
    with codec.streaming() as stream:
        codes = stream_encode(stream, clip, random_chunks(clip.shape[-1], rng, 700))
    assert torch.equal(codes, full_codes)
    audio = stream_decode(codec.stream(), full_codes, random_chunks(full_codes.shape[-1], rng, 7))
    torch.testing.assert_close(audio, codec.decode(full_codes), atol=1e-5, rtol=0)
