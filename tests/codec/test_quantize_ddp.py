"""Two gloo ranks train the residual quantizers on different data: codebooks stay bit-identical."""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from einops import rearrange

from codec.quantize import ResidualVectorQuantizer, RVQConfig, code_stats
from codec.quantize import distributed as qdist

KINDS = ("ema", "factorized")
STEPS = 8
THRESHOLD = 2.0


def _train(kind: str, rank: int, world: int) -> dict:
    torch.manual_seed(rank)  # different initial weights on each rank: the quantizer must sync them
    cfg = RVQConfig(
        dimension=8, n_q=4, bins=32, kind=kind, codebook_dim=4, decay=0.9,
        kmeans_iters=4, threshold_ema_dead_code=THRESHOLD, seed=0,
    )
    rvq = ResidualVectorQuantizer(cfg).train()
    params = list(rvq.parameters())
    opt = torch.optim.Adam(params, lr=1e-2) if params else None
    g = torch.Generator().manual_seed(100 + rank)
    batch = 2 + rank  # different data and different batch sizes on the ranks
    n_qs, reported, from_gathered, expired_steps = [], [], [], 0
    for step in range(STEPS):
        if step > 0:
            expired_steps += any(bool((lvl.cluster_size < THRESHOLD).any()) for lvl in rvq.levels)
        x = torch.randn(batch, 8, 16, generator=g) * (1 + rank) + rank
        r = rvq(x)
        if opt is not None:  # what DDP does: average the gradients over ranks
            loss = (r.quantized - x).pow(2).mean() + r.loss
            opt.zero_grad()
            loss.backward()
            for p in params:
                qdist.all_reduce_sum(p.grad).div_(world)
            opt.step()
        # usage of the codes of both ranks together, from the codes themselves
        codes = qdist.all_gather_rows(rearrange(r.codes, "b k t -> b (k t)"))
        codes = rearrange(codes, "b (k t) -> k (b t)", k=r.n_q)
        counts = torch.stack([torch.bincount(c, minlength=cfg.bins) for c in codes])
        n_qs.append(r.n_q)
        reported.append(r.usage)
        from_gathered.append(code_stats(counts)[0])
    state = {k: v.clone() for k, v in rvq.state_dict().items()}
    state["code_histogram"] = rvq.code_histogram.clone()
    return {
        "state": state, "n_qs": n_qs, "reported": reported,
        "from_gathered": from_gathered, "expired_steps": expired_steps,
    }


def _worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        torch.save({kind: _train(kind, rank, world) for kind in KINDS}, f"{out_dir}/rank{rank}.pt")
        dist.barrier()  # both ranks done before gloo tears down (a rank leaving early can abort the other)
    finally:
        dist.destroy_process_group()


@pytest.mark.ddp
def test_codebooks_dropout_and_usage_agree_across_ranks(tmp_path) -> None:
    mp.spawn(_worker, args=(2, str(tmp_path / "rendezvous"), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in range(2))
    for kind in KINDS:
        a, b = r0[kind], r1[kind]
        assert a["state"].keys() == b["state"].keys()
        for name in a["state"]:
            assert torch.equal(a["state"][name], b["state"][name]), f"{kind}: {name} differs across ranks"
        assert a["n_qs"] == b["n_qs"] and set(a["n_qs"]) == {1, 2, 3, 4}  # dropout drew, identically
        assert a["expired_steps"] > 0  # dead codes were replaced during the run
        assert all(bool(lvl) for key, lvl in a["state"].items() if key.endswith("inited"))
        for ra, rb, ga in zip(a["reported"], b["reported"], a["from_gathered"]):
            assert torch.equal(ra, rb) and torch.equal(ra, ga)
        # the running histogram counted every code of both ranks
        used = sum(a["n_qs"][i] * (2 + 3) * 16 for i in range(STEPS))
        assert int(a["state"]["code_histogram"].sum()) == used
