"""The training loader's position: a loader restored from ``state_dict`` after any number of
batches yields exactly the batches (keys and cropped audio) an uninterrupted loader yields next,
with and without workers, with bad samples in the stream, per rank, across epoch ends, and it
gets there without decoding the samples it skips."""

from __future__ import annotations

import io
import logging

import pytest
import torch

from data.datamodule import AudioLoaderConfig, audio_dataset
from data.shards import ShardWriter
from data.webdataset import ShardLoader
from tests.conftest import tone


def mixed_shards(path, n: int = 30, per_shard: int = 7) -> str:
    """Tones of several lengths with undecodable samples among them."""
    from data.audio import encode_flac

    with ShardWriter(path, "mix", max_count=per_shard) as w:
        for i in range(n):
            if i % 6 == 4:
                w.write(f"bad{i:03d}", {"flac": b"not audio" * 20, "json": {"duration": 0.1}})
            else:
                wav = tone(0.3 + 0.1 * (i % 4), 8000, 120 + 15 * i, seed=i)
                w.write(f"ok{i:03d}", {"flac": encode_flac(wav, 8000), "json": {"duration": wav.shape[-1] / 8000}})
    return str(path)


class CountingDecoder:
    def __init__(self, decode):
        self.decode, self.calls = decode, 0

    def __call__(self, sample, gen):
        self.calls += 1
        return self.decode(sample, gen)


def make_loader(shards: str, workers: int, world=None) -> ShardLoader:
    cfg = AudioLoaderConfig(sample_rate=8000, crop_seconds=0.2, batch_size=2, shuffle_buffer=6, seed=5,
                            epoch_samples=24)
    ds = audio_dataset(shards, cfg, train=True, world=world)
    ds.decode = CountingDecoder(ds.decode)
    return ShardLoader(ds, num_workers=workers)


def batches(loader, limit: int | None = None) -> list[tuple[list[str], torch.Tensor]]:
    out = []
    for b in loader:
        out.append((b.keys, b.audio))
        if limit is not None and len(out) == limit:
            break
    return out


def roundtrip(state: dict) -> dict:
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


def assert_same(got, want) -> None:
    assert [k for k, _ in got] == [k for k, _ in want]
    for (_, a), (_, b) in zip(got, want):
        assert torch.equal(a, b)


@pytest.mark.parametrize("workers", [0, 2])
def test_resume_mid_epoch_and_at_its_end_gives_the_same_batches(tmp_path, workers):
    shards = mixed_shards(tmp_path / "s")
    ref = make_loader(shards, workers)
    epochs = [batches(ref), batches(ref)]
    n = len(epochs[0])
    assert n == len(ref) == 12 and any(k.startswith("ok") for keys, _ in epochs[1] for k in keys)
    for cut in (1, 5, n):
        first = make_loader(shards, workers)
        taken = batches(first, cut)
        assert_same(taken, epochs[0][:cut])
        state = roundtrip(first.state_dict())
        assert (state["epoch"], state["batches"]) == (0, cut)
        resumed = make_loader(shards, workers)
        resumed.load_state_dict(state)
        rest = batches(resumed)
        assert_same(rest, epochs[0][cut:] if cut < n else epochs[1])
        if cut < n:
            assert_same(batches(resumed), epochs[1])


def test_skipped_samples_are_not_decoded(tmp_path):
    shards = mixed_shards(tmp_path / "s")
    ref = make_loader(shards, 0)
    it = iter(ref)
    for _ in range(7):
        next(it)
    decoded_before = ref.dataset.decode.calls
    state = ref.state_dict()
    list(it)
    decoded_after = ref.dataset.decode.calls - decoded_before
    resumed = make_loader(shards, 0)
    resumed.load_state_dict(state)
    list(resumed)
    assert resumed.dataset.decode.calls == decoded_after  # only the samples of the remaining batches


def test_a_second_checkpoint_after_resume_is_exact_too(tmp_path):
    shards = mixed_shards(tmp_path / "s")
    want = batches(make_loader(shards, 2))
    a = make_loader(shards, 2)
    batches(a, 3)
    b = make_loader(shards, 2)
    b.load_state_dict(roundtrip(a.state_dict()))
    batches(b, 4)
    c = make_loader(shards, 2)
    c.load_state_dict(roundtrip(b.state_dict()))
    assert_same(batches(c), want[7:])


def test_each_rank_resumes_its_own_stream(tmp_path):
    shards = mixed_shards(tmp_path / "s")
    for rank in range(2):
        want = batches(make_loader(shards, 2, world=(rank, 2)))
        first = make_loader(shards, 2, world=(rank, 2))
        batches(first, 3)
        state = roundtrip(first.state_dict())
        assert state["world_size"] == 2 and state["ranks"][rank] is not None
        resumed = make_loader(shards, 2, world=(rank, 2))
        resumed.load_state_dict(state)
        assert_same(batches(resumed), want[3:])


def test_changed_worker_count_continues_the_epoch_with_a_warning(tmp_path, caplog):
    shards = mixed_shards(tmp_path / "s")
    first = make_loader(shards, 2)
    batches(first, 5)
    resumed = make_loader(shards, 1)
    with caplog.at_level(logging.WARNING, logger="codeclm.data"):
        resumed.load_state_dict(roundtrip(first.state_dict()))
    assert "cannot be restored exactly" in caplog.text
    assert len(batches(resumed)) == 12 - 5
