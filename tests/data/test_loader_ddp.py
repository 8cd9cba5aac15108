"""Two real processes (gloo) over shards of unequal sizes: equal batch counts, no hang,
disjoint shard shares, and determinism across runs."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from tests.conftest import make_shards


def _worker(rank: int, world: int, init: str, shards: str, out: str) -> None:
    from data.datamodule import AudioLoaderConfig, audio_dataset
    from data.webdataset import ShardLoader

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world, timeout=timedelta(seconds=60))
    cfg = AudioLoaderConfig(sample_rate=8000, crop_seconds=0.25, batch_size=3, shuffle_buffer=4, seed=11)
    loader = ShardLoader(audio_dataset(shards, cfg), num_workers=2)
    epochs = []
    for _ in range(2):
        keys = []
        for batch in loader:
            t = torch.ones(1)
            dist.all_reduce(t)  # a collective every step: uneven counts would hang here
            keys.append(batch.keys)
        epochs.append(keys)
    counts = [torch.zeros(1) for _ in range(world)]
    dist.all_gather(counts, torch.tensor([float(len(epochs[0]))]))
    with open(f"{out}.{rank}.json", "w") as f:
        json.dump({"epochs": epochs, "counts": [int(c) for c in counts], "len": len(loader)}, f)
    dist.barrier()
    dist.destroy_process_group()


def _run(tmp_path, tag):
    out = str(tmp_path / tag)
    mp.spawn(_worker, args=(2, f"file://{tmp_path}/init-{tag}", str(tmp_path / "shards"), out), nprocs=2, join=True)
    return [json.load(open(f"{out}.{r}.json")) for r in range(2)]


@pytest.mark.ddp
def test_two_ranks_equal_batches_no_hang_deterministic(tmp_path):
    make_shards(tmp_path / "shards", [2, 13, 1, 9, 5, 4, 3, 8])  # 45 samples, very uneven
    first = _run(tmp_path, "a")
    expected = 45 // (2 * 3)
    for r in first:
        assert r["counts"] == [expected, expected] and r["len"] == expected
        assert all(len(e) == expected for e in r["epochs"])
    # 8 shards over 2 ranks x 2 workers: each slot reads its own shards, so ranks see disjoint keys
    keys = [{k for b in r["epochs"][0] for k in b} for r in first]
    assert not keys[0] & keys[1]
    assert first[0]["epochs"][0] != first[0]["epochs"][1]  # a new order each epoch
    second = _run(tmp_path, "b")
    assert [r["epochs"] for r in first] == [r["epochs"] for r in second]
