"""Audio shards -> token shards: readable by the token loader, faithful to the tokenizer, restartable."""

from __future__ import annotations

import json
import math
import os
import shutil

import numpy as np
import pytest
import torch

from codec.tokenize import tokenize_shards
from data.audio import decode_audio, encode_flac, resample
from data.shards import ShardWriter
from data.skips import SkipCounter
from data.tokens import TOKEN_FORMAT, TokenLoaderConfig, token_dataset
from data.webdataset import ShardLoader, read_shard
from tests.codec.test_export import tiny_codec

COUNTS = [3, 2, 3]


@pytest.fixture(scope="module")
def codec():
    return tiny_codec()  # 16 kHz; the shards are 8 kHz, so every clip is resampled


@pytest.fixture
def audio(shard_factory):
    return shard_factory(COUNTS)


def read_tokens(out) -> dict[str, dict]:
    ds = token_dataset(str(out), TokenLoaderConfig(batch_size=4, max_frames=None), train=False)
    items = {}
    for b in ShardLoader(ds):
        for i, key in enumerate(b.keys):
            items[key] = {"codes": b.codes[i, :, : b.lengths[i]], "text": b.texts[i], "speaker": b.speakers[i]}
    return items


def reference(codec, audio_dir) -> dict[str, dict]:
    """Each input clip encoded alone by the tokenizer, with its metadata."""
    refs = {}
    for url in sorted(str(p) for p in audio_dir.glob("*.tar")):
        for s in read_shard(url, SkipCounter()):
            wav, sr = decode_audio(s["flac"])
            x = resample(torch.from_numpy(wav), sr, codec.sample_rate)
            refs[s["__key__"]] = {"codes": codec.encode(x[None]).squeeze(0), "samples": x.shape[-1],
                                  **json.loads(s["json"])}
    return refs


def test_token_shards_equal_the_tokenizers_own_codes(codec, audio, tmp_path):
    out = tmp_path / "tokens"
    m = tokenize_shards(codec, str(audio), out, batch_size=1, device="cpu", progress=False)
    assert m["format"] == TOKEN_FORMAT and m["codec_id"] == codec.codec_id
    assert (m["frame_rate"], m["num_codebooks"], m["cardinality"], m["sample_rate"]) == (1000.0, 4, 32, 16000)
    assert [(s["url"], s["count"]) for s in m["shards"]] == [(f"tokens-00000{i}.tar", c) for i, c in enumerate(COUNTS)]
    assert m["total_count"] == 8 and m["skipped"] == [] and m["skip_counts"] == {}
    for i, c in enumerate(COUNTS):
        part = json.loads((out / f"tokens-00000{i}.json").read_text())
        assert part["count"] == c and part["codec_id"] == codec.codec_id

    refs, got = reference(codec, audio), read_tokens(out)
    assert sorted(got) == sorted(refs)
    for key, ref in refs.items():
        assert got[key]["text"] == ref["text"] and got[key]["speaker"] == ref["speaker"]
        assert got[key]["codes"].shape[-1] == math.ceil(ref["samples"] / 16)
        assert torch.equal(got[key]["codes"], ref["codes"])
    assert abs(m["total_duration"] - sum(r["samples"] / 16000 for r in refs.values())) < 0.01


def test_batches_change_only_the_frames_near_a_padded_end(codec, audio, tmp_path):
    tokenize_shards(codec, str(audio), tmp_path / "tokens", batch_size=3, device="cpu", progress=False)
    refs, got = reference(codec, audio), read_tokens(tmp_path / "tokens")
    margin = 8  # frames within the tiny encoder's right-hand receptive field
    for key, ref in refs.items():
        codes = got[key]["codes"]
        assert codes.shape == ref["codes"].shape
        assert torch.equal(codes[:, :-margin], ref["codes"][:, :-margin])


def test_a_rerun_redoes_only_the_missing_shard(codec, audio, tmp_path):
    out = tmp_path / "tokens"
    first = tokenize_shards(codec, str(audio), out, batch_size=2, device="cpu", progress=False)
    old = {p.name: p.read_bytes() for p in out.iterdir()}
    past = 1_600_000_000
    for p in out.iterdir():
        os.utime(p, (past, past))
    (out / "tokens-000002.tar").unlink()
    (out / "tokens-000002.json").unlink()
    (out / ".tokens-000002.partial").mkdir()  # as an interrupted run leaves it
    (out / ".tokens-000002.partial" / "tokens-000000.tar").write_bytes(b"half a shard")

    second = tokenize_shards(codec, str(audio), out, batch_size=2, device="cpu", progress=False)
    assert second == first
    assert {p.name: p.read_bytes() for p in out.iterdir()} == old  # byte for byte, no leftovers
    redone = {p.name for p in out.iterdir() if p.stat().st_mtime != past}
    assert redone == {"tokens-000002.tar", "tokens-000002.json", "shards.json"}


def test_another_codec_or_codebook_count_is_refused(codec, audio, tmp_path):
    out = tmp_path / "tokens"
    tokenize_shards(codec, str(audio), out, device="cpu", progress=False)
    other = tiny_codec(seed=1)
    with pytest.raises(ValueError, match=f"holds tokens of codec {codec.codec_id}.*not of this codec {other.codec_id}"):
        tokenize_shards(other, str(audio), out, device="cpu", progress=False)
    (out / "shards.json").unlink()  # the sidecars alone still tell
    with pytest.raises(ValueError, match="holds tokens of codec"):
        tokenize_shards(other, str(audio), out, device="cpu", progress=False)
    with pytest.raises(ValueError, match="holds tokens of 4 codebooks.*not 2"):
        tokenize_shards(codec, str(audio), out, num_codebooks=2, device="cpu", progress=False)
    with pytest.raises(ValueError, match="not token shards"):
        tokenize_shards(codec, str(audio), audio, device="cpu", progress=False)


def test_fewer_codebooks_and_shard_numbers_from_the_input_names(codec, audio, tmp_path):
    out = tmp_path / "tokens"
    m = tokenize_shards(codec, str(audio / "syn-{000001..000002}.tar"), out, num_codebooks=2, device="cpu",
                        progress=False)
    assert [s["url"] for s in m["shards"]] == ["tokens-000001.tar", "tokens-000002.tar"]
    assert m["num_codebooks"] == 2 and m["total_count"] == 5
    got = read_tokens(out)
    assert all(item["codes"].shape[0] == 2 for item in got.values())


def test_bad_samples_are_skipped_and_counted(codec, tmp_path):
    from tests.conftest import tone

    audio = tmp_path / "audio"
    with ShardWriter(audio, "bad", manifest_extra={"sample_rate": 8000}) as w:
        w.write("good", {"flac": encode_flac(tone(0.2, 8000, 200), 8000), "json": {"text": "fine", "speaker": "a"}})
        w.write("garbled", {"flac": b"fLaC but nothing after", "json": {"text": "x"}})
        w.write("silent_json", {"flac": encode_flac(tone(0.2, 8000, 300), 8000), "json": b"[1, 2"})
        w.write("no_audio", {"txt": b"only text"})
        w.write("empty", {"flac": encode_flac(np.zeros((1, 0), np.float32), 8000)})
    m = tokenize_shards(codec, str(audio), tmp_path / "tokens", device="cpu", progress=False)
    assert m["total_count"] == 1
    assert m["skip_counts"] == {"unreadable": 1, "bad_json": 1, "missing_audio": 1, "empty": 1}
    assert sorted(s["reason"] for s in m["skipped"]) == ["bad_json", "empty", "missing_audio", "unreadable"]
    assert list(read_tokens(tmp_path / "tokens")) == ["good"]

    shutil.rmtree(tmp_path / "tokens")
    with ShardWriter(tmp_path / "worse", "bad", manifest_extra={"sample_rate": 8000}) as w:
        w.write("garbled", {"flac": b"nothing"})
    m = tokenize_shards(codec, str(tmp_path / "worse"), tmp_path / "tokens", device="cpu", progress=False)
    assert m["total_count"] == 0 and m["shards"][0]["count"] == 0 and read_tokens(tmp_path / "tokens") == {}
