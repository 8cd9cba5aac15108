"""Ingest: folders of audio become shards that decode back to the input, bad files are skipped."""

from __future__ import annotations

import io
import json
import os
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from data.audio import check_riff, read_audio

import data.ingest as ingest
from data.ingest import shard_audio
from data.shards import read_manifest

SR = 8000
Q = 1.0 / 32768  # one 16-bit step


def noise(path: Path, n: int = 400, channels: int = 1, sr: int = SR, seed: int = 0, **kw) -> np.ndarray:
    """Write seeded noise, return it as [C, T] float32."""
    path.parent.mkdir(parents=True, exist_ok=True)
    wav = (np.random.default_rng(seed).uniform(-0.5, 0.5, (n, channels))).astype(np.float32)
    sf.write(path, wav, sr, **kw)
    return wav.T


def members(tar_path: str) -> dict[str, bytes]:
    with tarfile.open(tar_path) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}


def all_members(report) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for shard in report.shards:
        out.update(members(shard))
    return out


def test_ljspeech_round_trip(tmp_path):
    src = tmp_path / "LJSpeech"
    (src / "wavs").mkdir(parents=True)
    originals = {
        "wavs_LJ001-0001": noise(src / "wavs" / "LJ001-0001.wav", n=400, seed=1),
        "wavs_LJ001-0002": noise(src / "wavs" / "LJ001-0002.wav", n=600, seed=2, subtype="FLOAT"),
        "wavs_LJ001-0003": noise(src / "wavs" / "LJ001-0003.wav", n=800, channels=2, seed=3),
    }
    (src / "metadata.csv").write_text(
        "LJ001-0001|one|One.\nLJ001-0002|two|Two.\nLJ001-0003|three|Three.\nLJ001-0004|four|Four.\n"
    )
    report = shard_audio(src, tmp_path / "out", name="lj", max_count=2, progress=False)
    assert report.layout == "ljspeech" and report.written == 3
    assert [Path(s).name for s in report.shards] == ["lj-000000.tar", "lj-000001.tar"]
    got = all_members(report)
    assert sorted(got) == sorted(f"{k}.{e}" for k in originals for e in ("flac", "json"))
    durations = 0.0
    for key, wav in originals.items():
        meta = json.loads(got[f"{key}.json"])
        decoded, sr = sf.read(io.BytesIO(got[f"{key}.flac"]), dtype="float32", always_2d=True)
        assert sr == SR and decoded.T.shape == wav.shape
        assert np.abs(decoded.T - wav).max() <= Q
        assert meta["key"] == key and meta["speaker"] == "LJ" and meta["layout"] == "ljspeech"
        assert meta["duration"] == pytest.approx(wav.shape[1] / SR)
        assert (meta["sample_rate"], meta["channels"]) == (SR, wav.shape[0])
        assert meta["source"] == f"wavs/{key[len('wavs_'):]}.wav"
        durations += meta["duration"]
    assert json.loads(got["wavs_LJ001-0002.json"])["text"] == "Two."
    manifest = read_manifest(tmp_path / "out")
    assert manifest == report.manifest
    assert [s["count"] for s in manifest["shards"]] == [len(members(s)) // 2 for s in report.shards]
    assert manifest["total_count"] == 3 and manifest["total_duration"] == pytest.approx(durations, abs=1e-3)
    assert report.total_duration == manifest["total_duration"]
    assert (manifest["layout"], manifest["sample_rate"], manifest["source"]) == ("ljspeech", SR, str(src.resolve()))
    # the transcript line without audio is reported, not fatal
    assert report.skipped == [
        {"source": "metadata.csv:4", "reason": "layout: no audio file wavs/LJ001-0004.wav", "detail": ""}
    ]
    assert manifest["skipped"] == [{"source": "metadata.csv:4", "reason": "layout: no audio file wavs/LJ001-0004.wav"}]
    assert "metadata.csv:4" in (tmp_path / "out" / "skipped.txt").read_text()


def truncated_wav(path: Path) -> None:
    """A PCM wav whose header declares 16000 frames while only ~1000 are present."""
    buf = io.BytesIO()
    sf.write(buf, np.zeros(16000, np.float32), SR, format="WAV", subtype="PCM_16")
    path.write_bytes(buf.getvalue()[:2044])


def test_corrupt_inputs_are_skipped_with_reasons(tmp_path, monkeypatch):
    src = tmp_path / "in"
    noise(src / "good.wav")
    noise(src / "boom.wav", seed=5)
    (src / "zero.wav").write_bytes(b"")
    (src / "random.wav").write_bytes(np.random.default_rng(0).bytes(3000))
    truncated_wav(src / "truncated.wav")
    nan = np.full((200, 1), 0.1, np.float32)
    nan[50] = np.nan
    sf.write(src / "nan.wav", nan, SR, subtype="FLOAT")

    real_read = ingest.read_audio

    def flaky_read(path, *a, **kw):
        if str(path).endswith("boom.wav"):
            raise RuntimeError("decoder crashed")
        return real_read(path, *a, **kw)

    monkeypatch.setattr(ingest, "read_audio", flaky_read)
    out = tmp_path / "out"
    report = shard_audio(src, out, progress=False)
    assert report.written == 1
    assert sorted(members(report.shards[0])) == ["good.flac", "good.json"]
    reasons = {s["source"]: s["reason"] for s in report.skipped}
    assert reasons == {
        "boom.wav": "error: RuntimeError",
        "nan.wav": "nonfinite",
        "random.wav": "unreadable",
        "truncated.wav": "truncated",
        "zero.wav": "empty",
    }
    assert "decoder crashed" in next(s["detail"] for s in report.skipped if s["source"] == "boom.wav")
    assert {(s["source"], s["reason"]) for s in report.manifest["skipped"]} == set(reasons.items())
    lines = (out / "skipped.txt").read_text().splitlines()
    assert lines[0].startswith("# 5 inputs skipped")
    assert sorted(line.split("\t")[:2] for line in lines[1:]) == sorted([r, s] for s, r in reasons.items())


def test_truncation_check_spares_streamed_and_whole_wavs(tmp_path):
    whole = tmp_path / "whole.wav"
    noise(whole, n=300)
    read_audio(whole)
    streamed = bytearray(whole.read_bytes())
    i = streamed.find(b"data")
    streamed[i + 4 : i + 8] = struct.pack("<I", 0xFFFFFFFF)
    (tmp_path / "streamed.wav").write_bytes(bytes(streamed))
    with open(tmp_path / "streamed.wav", "rb") as f:
        check_riff(f, (tmp_path / "streamed.wav").stat().st_size, "streamed.wav")


def test_resample_and_downmix(tmp_path):
    src = tmp_path / "in"
    noise(src / "a.wav", n=4000, channels=2)  # 0.5 s at 8 kHz
    noise(src / "b.flac", n=2205, sr=22050, format="FLAC")  # 0.1 s at 22.05 kHz
    report = shard_audio(src, tmp_path / "out", sample_rate=16000, channels=1, progress=False)
    got = all_members(report)
    for key, seconds, orig_sr in (("a", 0.5, SR), ("b", 0.1, 22050)):
        meta = json.loads(got[f"{key}.json"])
        wav, sr = sf.read(io.BytesIO(got[f"{key}.flac"]), always_2d=True)
        assert sr == 16000 and wav.shape == (int(seconds * 16000), 1)
        assert meta["duration"] == pytest.approx(seconds)
        assert (meta["sample_rate"], meta["channels"], meta["source_sample_rate"]) == (16000, 1, orig_sr)
    assert report.manifest["sample_rate"] == 16000
    assert report.total_duration == pytest.approx(0.6)


def test_mixed_rates_leave_manifest_rate_null(tmp_path):
    src = tmp_path / "in"
    noise(src / "a.wav", sr=8000)
    noise(src / "b.wav", sr=16000)
    report = shard_audio(src, tmp_path / "out", progress=False)
    assert report.manifest["sample_rate"] is None and report.skipped == []
    assert not (tmp_path / "out" / "skipped.txt").exists()


def test_librispeech_fields_reach_the_json(tmp_path):
    ch = tmp_path / "ls" / "19" / "198"
    ch.mkdir(parents=True)
    (ch / "19-198.trans.txt").write_text("19-198-0000 HELLO\n")
    noise(ch / "19-198-0000.flac", format="FLAC")
    report = shard_audio(tmp_path / "ls", tmp_path / "out", progress=False)
    meta = json.loads(all_members(report)["19_198_19-198-0000.json"])
    assert (meta["text"], meta["speaker"], meta["chapter"], meta["layout"]) == ("HELLO", "19", "198", "librispeech")


def test_workers_give_byte_identical_shards(tmp_path):
    src = tmp_path / "in"
    for i in range(7):
        noise(src / f"spk{i % 2}" / f"u{i}.wav", n=300 + 50 * i, seed=i)
    (src / "spk0" / "bad.wav").write_bytes(b"RIFF nonsense")
    kw = dict(max_count=3, sample_rate=16000, progress=False)
    one = shard_audio(src, tmp_path / "w1", workers=1, **kw)
    two = shard_audio(src, tmp_path / "w2", workers=2, **kw)
    assert one.written == two.written == 7 and len(one.shards) == 3
    assert [Path(s).read_bytes() for s in one.shards] == [Path(s).read_bytes() for s in two.shards]
    assert one.manifest == two.manifest and one.skipped == two.skipped
    assert (tmp_path / "w1" / "shards.json").read_bytes() == (tmp_path / "w2" / "shards.json").read_bytes()


def test_clear_errors_for_missing_or_empty_input(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        shard_audio(tmp_path / "nope", tmp_path / "out", progress=False)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no audio")
    with pytest.raises(ValueError, match="no usable audio"):
        shard_audio(tmp_path / "empty", tmp_path / "out", progress=False)
    manifest = tmp_path / "list.jsonl"
    manifest.write_text(json.dumps({"audio": "gone.wav"}) + "\n")
    with pytest.raises(ValueError, match="gone.wav"):
        shard_audio(manifest, tmp_path / "out", progress=False)
    assert not os.path.exists(tmp_path / "out" / "shards.json")
