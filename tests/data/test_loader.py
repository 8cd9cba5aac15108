"""The shard loader: determinism, equal epoch lengths, rank/worker splits, URL forms, bad samples."""

from __future__ import annotations

import io
import shutil
import tarfile

import numpy as np
import pytest
import soundfile as sf
import torch

from data.datamodule import AudioLoaderConfig, audio_dataset
from data.shards import ShardWriter
from data.webdataset import ShardLoader


def keys_of(loader) -> list[list[str]]:
    return [b.keys for b in loader]


def cfg(**kw) -> AudioLoaderConfig:
    base = dict(sample_rate=8000, crop_seconds=0.25, batch_size=4, shuffle_buffer=8, seed=3)
    base.update(kw)
    return AudioLoaderConfig(**base)


def test_batches_have_contract_shapes(shard_factory):
    out = shard_factory([6, 6])
    batch = next(iter(ShardLoader(audio_dataset(str(out), cfg()))))
    assert batch.audio.shape == (4, 1, 2000) and batch.lengths.shape == (4,)
    assert batch.mask.shape == (4, 2000) and batch.mask.sum(1).tolist() == batch.lengths.tolist()
    assert len(batch.texts) == 4 and all(s.startswith("spk") for s in batch.speakers)


def test_same_seed_same_order_and_epochs_differ(shard_factory):
    out = shard_factory([5, 9, 3])
    runs = []
    for _ in range(2):
        loader = ShardLoader(audio_dataset(str(out), cfg()), num_workers=2)
        runs.append([keys_of(loader), keys_of(loader)])  # two epochs
    assert runs[0] == runs[1]
    assert runs[0][0] != runs[0][1]
    other = ShardLoader(audio_dataset(str(out), cfg(seed=4)), num_workers=2)
    assert keys_of(other) != runs[0][0]


@pytest.mark.parametrize("workers", [0, 1, 3])
def test_every_rank_gets_the_same_number_of_batches(shard_factory, workers):
    out = shard_factory([1, 11, 2, 7])  # 21 samples in shards of unequal size
    counts = []
    for rank in range(3):
        ds = audio_dataset(str(out), cfg(batch_size=2), world=(rank, 3))
        loader = ShardLoader(ds, num_workers=workers)
        got = keys_of(loader)
        counts.append(len(got))
        assert len(got) == len(loader) == 21 // (3 * 2)
    assert len(set(counts)) == 1


def test_eval_pass_covers_each_sample_once_with_equal_ranks(shard_factory):
    out = shard_factory([4, 3, 4])  # 11 samples, 2 ranks -> 5 each, one dropped
    per_rank = []
    for rank in range(2):
        ds = audio_dataset(str(out), cfg(batch_size=2), train=False, world=(rank, 2))
        loader = ShardLoader(ds, num_workers=2)
        keys = [k for b in loader for k in b.keys]
        assert len(list(loader)) == len(loader)
        per_rank.append(keys)
    assert len(per_rank[0]) == len(per_rank[1]) == 5
    assert len(set(per_rank[0]) | set(per_rank[1])) == 10
    assert not set(per_rank[0]) & set(per_rank[1])


def test_url_forms_brace_pipe_manifest(shard_factory):
    out = shard_factory([3, 3])
    c = cfg(shuffle_buffer=0, epoch_samples=6)
    ref = [k for b in ShardLoader(audio_dataset(str(out), c, train=False)) for k in b.keys]
    brace = [k for b in ShardLoader(audio_dataset(str(out / "syn-{000000..000001}.tar"), c, train=False)) for k in b.keys]
    pipe = f"pipe:cat {out}/syn-000000.tar::pipe:cat {out}/syn-000001.tar"
    piped = [k for b in ShardLoader(audio_dataset(pipe, c, train=False)) for k in b.keys]
    via_manifest = [k for b in ShardLoader(audio_dataset(str(out / "shards.json"), c, train=False)) for k in b.keys]
    assert ref == brace == piped == via_manifest and len(ref) == 6


def test_pipe_urls_need_an_epoch_size(shard_factory):
    out = shard_factory([2])
    with pytest.raises(ValueError, match="epoch_samples"):
        audio_dataset(f"pipe:cat {out}/syn-000000.tar", cfg())
    with pytest.raises(FileNotFoundError, match="does not exist"):
        audio_dataset(str(out / "nope-{000..003}.tar"), cfg())


def test_fewer_shards_than_slots_is_handled(shard_factory):
    out = shard_factory([8])  # one shard, 2 ranks x 2 workers
    for rank in range(2):
        loader = ShardLoader(audio_dataset(str(out), cfg(batch_size=2), world=(rank, 2)), num_workers=2)
        assert len(keys_of(loader)) == 2


def _write_bad_shard(path):
    good = io.BytesIO()
    sf.write(good, np.zeros((800, 1), np.float32) + 0.1, 8000, format="FLAC")
    nan = io.BytesIO()
    sf.write(nan, np.full((800, 1), np.nan, np.float32), 8000, format="WAV", subtype="FLOAT")
    empty = io.BytesIO()
    sf.write(empty, np.zeros((0, 1), np.float32), 8000, format="WAV")
    with ShardWriter(path, "bad") as w:
        w.write("ok1", {"flac": good.getvalue(), "json": {"text": "fine", "duration": 0.1}})
        w.write("notaudio", {"flac": b"this is not audio at all" * 10, "json": {"duration": 0.1}})
        w.write("nan", {"wav": nan.getvalue(), "json": {"duration": 0.1}})
        w.write("empty", {"wav": empty.getvalue(), "json": {"duration": 0}})
        w.write("nojsonobj", {"flac": good.getvalue(), "json": b"[1, 2"})
        w.write("wrongkey", {"txt": b"hello", "json": {"duration": 0.1}})
        w.write("ok2", {"flac": good.getvalue(), "json": {"text": "fine", "duration": 0.1}})


def test_bad_samples_are_counted_and_skipped(tmp_path, caplog):
    _write_bad_shard(tmp_path / "s")
    ds = audio_dataset(str(tmp_path / "s"), cfg(batch_size=1, crop_seconds=None), train=False)
    keys = [k for b in ShardLoader(ds) for k in b.keys]
    assert keys == ["ok1", "ok2"]
    assert ds.skips.as_dict() == {"unreadable": 1, "nonfinite": 1, "empty": 1, "bad_json": 1, "missing_audio": 1}
    assert "notaudio" in caplog.text and "bad-000000.tar" in caplog.text


def test_truncated_tar_is_counted_and_training_continues(shard_factory, tmp_path):
    out = shard_factory([6, 6])
    data = (out / "syn-000001.tar").read_bytes()
    (out / "syn-000001.tar").write_bytes(data[: len(data) // 2 + 100])
    ds = audio_dataset(str(out), cfg(batch_size=2), world=(0, 1))
    loader = ShardLoader(ds, num_workers=2)
    assert len(keys_of(loader)) == len(loader) == 6
    assert ds.skips.as_dict().get("truncated_tar", 0) >= 1


def test_all_bad_shards_fail_with_a_message(tmp_path):
    (tmp_path / "s").mkdir()
    with ShardWriter(tmp_path / "s", "bad") as w:
        w.write("a", {"txt": b"x", "json": {"duration": 1}})
        w.write("b", {"txt": b"x", "json": {"duration": 1}})
    ds = audio_dataset(str(tmp_path / "s"), cfg(batch_size=1, epoch_samples=2))
    with pytest.raises(RuntimeError, match="no readable samples"):
        next(iter(ShardLoader(ds)))


def test_resample_mono_and_loudness(shard_factory):
    out = shard_factory([4], sr=8000)
    c = cfg(sample_rate=16000, channels=2, crop_seconds=None, normalize_db=-20.0, batch_size=4)
    b = next(iter(ShardLoader(audio_dataset(str(out), c, train=False))))
    assert b.audio.shape[1] == 2 and b.sample_rate == 16000
    first = b.audio[0, 0, : b.lengths[0]]
    assert b.lengths[0] == 8000  # 0.5 s at 16 kHz
    assert abs(20 * torch.log10(first.pow(2).mean().sqrt()) + 20.0) < 0.5


def test_absurd_and_truncated_headers_are_rejected_before_allocating(tmp_path):
    import struct

    from data.audio import AudioError, decode_audio

    # a WAV header claiming 4 GB of 16-bit samples, followed by a few bytes
    fmt = struct.pack("<4sIHHIIHH", b"fmt ", 16, 1, 1, 16000, 32000, 2, 16)
    huge = b"RIFF" + struct.pack("<I", 0xFFFFFFF0) + b"WAVE" + fmt + b"data" + struct.pack("<I", 0xFFFFFFF0 - 36) + b"\0" * 64
    with pytest.raises(AudioError) as e:
        decode_audio(huge, "huge.wav")
    assert e.value.reason == "truncated"
    good = io.BytesIO()
    sf.write(good, np.zeros((16000, 1), np.float32), 16000, format="WAV")
    cut = good.getvalue()[: 12000]
    with pytest.raises(AudioError) as e:
        decode_audio(cut, "cut.wav")
    assert e.value.reason == "truncated"
    flac = io.BytesIO()
    sf.write(flac, np.zeros((100, 1), np.float32), 16000, format="FLAC")
    wav, sr = decode_audio(flac.getvalue())
    assert wav.shape == (1, 100) and sr == 16000


def test_workers_outlive_the_stop_signals_a_cluster_sends_to_every_process(shard_factory):
    """SLURM, `timeout` and terminals signal the whole process group; the workers leave SIGTERM and
    the warning signals to the training process, so the epoch still completes."""
    import os
    import signal

    out = shard_factory([8, 8])
    ds = audio_dataset(str(out), cfg(batch_size=2), world=(0, 1))
    loader = ShardLoader(ds, num_workers=2)
    import multiprocessing

    whole = [k for b in loader for k in b.keys]
    loader.set_epoch(0)
    it = iter(loader)
    keys = list(next(it).keys) + list(next(it).keys)  # one batch from each worker: both have started
    workers = multiprocessing.active_children()
    assert len(workers) == 2
    for w in workers:
        for sig in (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT):
            os.kill(w.pid, sig)
    keys += [k for b in it for k in b.keys]
    assert keys == whole and len(whole) == 16
