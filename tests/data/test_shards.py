"""Shard writing: round trip, plain tar and webdataset readability, atomicity, determinism."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile

import numpy as np
import pytest
import soundfile as sf
import webdataset as wds

from data.audio import encode_flac
from data.shards import ShardWriter, read_manifest, sanitize_key
from tests.conftest import make_shards, tone


def test_round_trip_every_sample_equal(tmp_path):
    sr = 16000
    written = {}
    with ShardWriter(tmp_path, "rt", max_count=3) as w:
        for i in range(8):
            wav = tone(0.3 + 0.1 * i, sr, 200 + 50 * i, seed=i)
            wav16 = np.round(wav * 32767) / 32767  # what 16-bit flac can hold
            written[f"rt_{i}"] = (wav16, f"text {i}")
            w.write(f"rt_{i}", {"flac": encode_flac(wav16, sr), "json": {"text": f"text {i}", "duration": wav.shape[-1] / sr}})
    m = read_manifest(tmp_path)
    assert [s["url"] for s in m["shards"]] == ["rt-000000.tar", "rt-000001.tar", "rt-000002.tar"]
    assert [s["count"] for s in m["shards"]] == [3, 3, 2] and m["total_count"] == 8
    seen = {}
    for s in m["shards"]:
        dur = 0.0
        with tarfile.open(tmp_path / s["url"]) as tar:
            names = tar.getnames()
            assert all(n.count(".") == 1 for n in names)
            for name in names:
                key, ext = name.split(".")
                data = tar.extractfile(name).read()
                if ext == "flac":
                    wav, got_sr = sf.read(io.BytesIO(data), dtype="float32")
                    assert got_sr == sr
                    seen.setdefault(key, {})["wav"] = wav
                    dur += len(wav) / sr
                else:
                    seen.setdefault(key, {})["text"] = json.loads(data)["text"]
        assert abs(dur - s["duration"]) < 1e-3
    assert set(seen) == set(written)
    for key, (wav, text) in written.items():
        np.testing.assert_allclose(seen[key]["wav"], wav[0], atol=1 / 32767)
        assert seen[key]["text"] == text
    assert abs(m["total_duration"] - sum(v[0].shape[-1] for v in written.values()) / sr) < 1e-2


def test_webdataset_reads_shards_unchanged(shard_factory):
    out = shard_factory([4, 2])
    keys = []
    for sample in wds.WebDataset(str(out / "syn-{000000..000001}.tar"), shardshuffle=False):
        assert set(sample) >= {"__key__", "flac", "json"}
        assert json.loads(sample["json"])["text"].startswith("utterance number")
        keys.append(sample["__key__"])
    assert keys == [f"syn_{i:05d}" for i in range(6)]


def test_shards_are_deterministic(tmp_path):
    digests = []
    for run in ("a", "b"):
        make_shards(tmp_path / run, [3, 2])
        digests.append([hashlib.sha256((tmp_path / run / f"syn-00000{i}.tar").read_bytes()).hexdigest() for i in range(2)])
    assert digests[0] == digests[1]


def test_failure_leaves_no_partial_shard(tmp_path):
    with pytest.raises(RuntimeError):
        with ShardWriter(tmp_path, "x") as w:
            w.write("a", {"flac": b"123", "json": {"duration": 1}})
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_duplicate_and_bad_keys_refused(tmp_path):
    w = ShardWriter(tmp_path, "x")
    w.write("a.b/c d", {"json": {}})
    with pytest.raises(ValueError, match="duplicate"):
        w.write("a_b_c_d", {"json": {}})
    assert sanitize_key("spk/1.2 x") == "spk_1_2_x"
    with pytest.raises(ValueError):
        sanitize_key("...")


def test_size_limit_starts_new_shard(tmp_path):
    with ShardWriter(tmp_path, "s", max_count=100, max_size_mb=0.01) as w:
        for i in range(4):
            w.write(f"k{i}", {"bin": b"\0" * 6000, "json": {"duration": 1}})
    assert [s["count"] for s in read_manifest(tmp_path)["shards"]] == [1, 1, 1, 1]


def test_manifest_errors_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="codeclm data shard"):
        read_manifest(tmp_path)
    (tmp_path / "shards.json").write_text("{nope")
    with pytest.raises(ValueError, match="not valid JSON"):
        read_manifest(tmp_path)
