"""Length bucketing of token batches: far less padding, the same samples, seeded, and exact resume
in the middle of a bucket pool."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from data.tokens import TokenLoaderConfig, TokenShardWriter, token_dataset
from data.webdataset import ShardLoader
from tests.data.test_loader_resume import roundtrip


def varied_tokens(out, n: int = 48) -> None:
    rng = np.random.default_rng(1)
    with TokenShardWriter(out, "abc", 50.0, 2, 32, 16000, max_count=12) as w:
        for i in range(n):
            w.write_tokens(f"u{i:03d}", rng.integers(0, 32, (2, int(rng.integers(5, 120)))), {"text": "t"})


def loader(path, bucket: int, workers: int = 0) -> ShardLoader:
    cfg = TokenLoaderConfig(batch_size=4, max_frames=None, shuffle_buffer=8, seed=3, epoch_samples=48,
                            bucket_batches=bucket)
    return ShardLoader(token_dataset(str(path), cfg, world=(0, 1)), num_workers=workers)


def padding(batches) -> float:
    total = sum(b.codes.shape[0] * b.codes.shape[-1] for b in batches)
    return 1 - sum(int(b.lengths.sum()) for b in batches) / total


def test_buckets_cut_padding_and_keep_the_samples(tmp_path):
    varied_tokens(tmp_path / "t")
    plain, bucketed = list(loader(tmp_path / "t", 0)), list(loader(tmp_path / "t", 4))
    assert len(plain) == len(bucketed) == 12
    keys = lambda bs: sorted(k for b in bs for k in b.keys)  # noqa: E731
    assert keys(bucketed) == keys(plain)  # whole pools: the same samples, batched by length
    assert padding(bucketed) < 0.5 * padding(plain), (padding(bucketed), padding(plain))
    again = list(loader(tmp_path / "t", 4))
    assert [b.keys for b in again] == [b.keys for b in bucketed]
    for start in range(0, 12, 4):
        pool = bucketed[start:start + 4]
        # each pool is cut by length: sorted by their longest sample, one batch ends where the next begins
        spans = sorted((int(b.lengths.min()), int(b.lengths.max())) for b in pool)
        assert all(hi <= lo for (_, hi), (lo, _) in zip(spans, spans[1:])), (start, spans)
        # and the batch order within a pool is shuffled, not sorted by length either way
        longest = [int(b.lengths.max()) for b in pool]
        assert longest != sorted(longest) and longest != sorted(longest, reverse=True), (start, longest)
    with pytest.raises(ValueError, match="bucket_batches"):
        loader(tmp_path / "t", 1)


@pytest.mark.parametrize("workers", [0, 2])
def test_resume_inside_a_bucket_pool_gives_the_same_batches(tmp_path, workers):
    varied_tokens(tmp_path / "t")
    ref = loader(tmp_path / "t", 4, workers)
    want = [(b.keys, b.codes) for b in ref]
    for cut in (1, 3, 4, 6, 11):
        run = loader(tmp_path / "t", 4, workers)
        it = iter(run)
        got = [(b.keys, b.codes) for b in (next(it) for _ in range(cut))]
        state = roundtrip(run.state_dict())
        del it
        resumed = loader(tmp_path / "t", 4, workers)
        resumed.load_state_dict(state)
        got += [(b.keys, b.codes) for b in resumed]
        assert [k for k, _ in got] == [k for k, _ in want], cut
        assert all(torch.equal(a, b) for (_, a), (_, b) in zip(got, want))
