"""Token shards: round trip through the loader, codec identity, bad samples."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from data.tokens import TokenLoaderConfig, TokenShardWriter, token_dataset
from data.webdataset import ShardLoader


def write_tokens(out, codec_id="abc", n=6, k=4, card=32, semantic=True):
    rng = np.random.default_rng(0)
    written = {}
    with TokenShardWriter(out, codec_id, 50.0, k, card, 16000, max_count=4) as w:
        for i in range(n):
            codes = rng.integers(0, card, (k, 10 + 3 * i))
            sem = rng.integers(0, 100, (5 + i,)) if semantic else None
            w.write_tokens(f"u{i}", codes, {"text": f"text {i}", "speaker": f"s{i % 2}", "phonemes": "ab"}, sem)
            written[f"u{i}"] = (codes, sem)
    return written


def test_round_trip_and_padding(tmp_path):
    written = write_tokens(tmp_path / "t")
    cfg = TokenLoaderConfig(batch_size=4, max_frames=None, text="text")
    ds = token_dataset(str(tmp_path / "t"), cfg, train=False, text_encoder=lambda s: [ord(c) for c in s])
    batches = list(ShardLoader(ds))
    assert [len(b) for b in batches] == [4, 2]
    for b in batches:
        assert b.frame_rate == 50.0 and b.codes.dtype == torch.int64
        for i, key in enumerate(b.keys):
            codes, sem = written[key]
            n = int(b.lengths[i])
            assert n == codes.shape[1] and b.mask[i].sum() == n
            assert torch.equal(b.codes[i, :, :n], torch.from_numpy(codes))
            assert (b.codes[i, :, n:] == 0).all()
            assert torch.equal(b.semantic[i, : b.semantic_lengths[i]], torch.from_numpy(sem))
            assert b.texts[i] == f"text {key[1:]}"
            assert b.text_tokens[i, : b.text_lengths[i]].tolist() == [ord(c) for c in b.texts[i]]


def test_crop_and_codebook_selection(tmp_path):
    write_tokens(tmp_path / "t", n=4)
    cfg = TokenLoaderConfig(batch_size=2, max_frames=8, num_codebooks=2, epoch_samples=4)
    b = next(iter(ShardLoader(token_dataset(str(tmp_path / "t"), cfg))))
    assert b.codes.shape == (2, 2, 8)


def test_codecs_never_mix(tmp_path):
    write_tokens(tmp_path / "a", codec_id="aaa")
    write_tokens(tmp_path / "b", codec_id="bbb")
    with pytest.raises(ValueError, match="different codecs"):
        token_dataset(f"{tmp_path / 'a'}::{tmp_path / 'b'}", TokenLoaderConfig())


def test_audio_shards_are_not_token_shards(shard_factory):
    out = shard_factory([2])
    with pytest.raises(ValueError, match="codec tokenize"):
        token_dataset(str(out), TokenLoaderConfig())


def test_bad_token_samples_are_skipped(tmp_path):
    out = tmp_path / "t"
    with TokenShardWriter(out, "abc", 50.0, 2, 16, 16000) as w:
        w.write_tokens("good", np.ones((2, 5)), {})
        w.write_tokens("range", np.full((2, 5), 99), {})
        w.write("pickled", {"codes.npy": b"\x93NUMPY garbage", "json": {}})
        w.write("other", {"codes.npy": w and __import__("data.tokens", fromlist=["npy_bytes"]).npy_bytes(np.ones((2, 3), np.int16)),
                          "json": {"codec_id": "zzz"}})
    ds = token_dataset(str(out), TokenLoaderConfig(batch_size=1, max_frames=None), train=False)
    assert [b.keys[0] for b in ShardLoader(ds)] == ["good"]
    assert ds.skips.as_dict() == {"bad_tokens": 2, "codec_mismatch": 1}


def test_codes_must_fit_int16(tmp_path):
    with pytest.raises(ValueError, match="int16"):
        TokenShardWriter(tmp_path, "x", 50.0, 2, 65536, 16000)


def test_crop_keeps_semantic_units_aligned(tmp_path):
    out = tmp_path / "t"
    with TokenShardWriter(out, "abc", 50.0, 1, 100, 16000) as w:
        codes = np.arange(40)[None] % 100  # frame t holds code t
        sem = np.repeat(np.arange(40), 2)  # two units per frame: units 2t, 2t+1 belong to frame t
        w.write_tokens("u", codes, {}, sem)
    cfg = TokenLoaderConfig(batch_size=1, max_frames=10, epoch_samples=1, seed=5)
    b = next(iter(ShardLoader(token_dataset(str(out), cfg))))
    first = int(b.codes[0, 0, 0])
    assert b.semantic[0].tolist() == np.repeat(np.arange(first, first + 10), 2).tolist()
