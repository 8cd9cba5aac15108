"""Non-finite losses: a NaN on one rank skips the step on both (the ranks stay identical and both
count it); a skipped codec step leaves weights, codebooks and discriminators as they were; many in
a row stop the run with a debug checkpoint holding the state from before them."""

from __future__ import annotations

import dataclasses
import os
import socket

import lightning as L
import pytest
import torch
import torch.multiprocessing as mp

from audiolm.lightning_module import LMModule, LMOptimConfig
from audiolm.models.valle import ValleConfig
from audiolm.models.valle_nar import ValleNAR
from data.token_datamodule import TokenDataModule
from data.tokens import TokenLoaderConfig
from launch.checkpoints import read_checkpoint
from data.numerics import NonFiniteError
from tests.resume_helpers import params_of


class NaNAt(ValleNAR):
    """A VALL-E NAR whose loss is NaN at the given calls on one rank (-1: every rank)."""

    def __init__(self, cfg: ValleConfig, calls: tuple[int, ...], rank: int = -1) -> None:
        super().__init__(cfg)
        self.bad_calls, self.bad_rank, self.calls = set(calls), rank, 0

    def loss(self, batch):
        out = super().loss(batch)
        rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
        if self.calls in self.bad_calls and self.bad_rank in (-1, rank):
            out = dataclasses.replace(out, loss=out.loss * float("nan"))
        self.calls += 1
        return out


def cfg() -> ValleConfig:
    return ValleConfig(text_vocab=256, cardinality=32, num_codebooks=4, dim=16, layers=1, heads=2, max_text=256,
                       max_frames=200)


def data(shards: dict) -> TokenDataModule:
    loader = TokenLoaderConfig(batch_size=2, max_frames=40, shuffle_buffer=4, seed=1, text="phonemes")
    return TokenDataModule(str(shards["tokens"]), loader=loader, text_model=str(shards["phonemes"]), num_workers=0)


def _rank(rank: int, port: int, folder: str, shards: dict) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE="2", NODE_RANK="0",
                      LOCAL_RANK=str(rank), RANK=str(rank))
    torch.set_num_threads(1)
    L.seed_everything(0)
    module = LMModule(NaNAt(cfg(), calls=(2,), rank=1), LMOptimConfig(lr=1e-2, warmup_steps=1))
    trainer = L.Trainer(accelerator="cpu", devices=2, strategy="ddp", max_steps=5, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module, data(shards))
    opt_state = trainer.optimizers[0].state_dict()["state"]
    torch.save({"params": params_of(module), "skipped": module.nonfinite.skipped, "global_step": trainer.global_step,
                "adam_steps": sorted({int(s["step"]) for s in opt_state.values()})}, f"{folder}/rank{rank}.pt")


@pytest.mark.ddp
def test_a_nan_on_one_rank_skips_the_step_on_both(speech_token_shards, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    paths = {k: speech_token_shards[k] for k in ("tokens", "phonemes")}
    mp.spawn(_rank, args=(port, str(tmp_path), paths), nprocs=2, join=True)
    a, b = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2))
    assert a["skipped"] == b["skipped"] == 1
    assert a["adam_steps"] == b["adam_steps"] == [4]  # 5 batches, one update skipped on both ranks
    for name, value in a["params"].items():
        assert torch.equal(value, b["params"][name]), name
        assert torch.isfinite(value).all(), name


def test_many_nans_in_a_row_stop_with_a_debug_checkpoint(speech_token_shards, tmp_path):
    L.seed_everything(0)
    module = LMModule(NaNAt(cfg(), calls=(1, 2, 3, 4, 5)), LMOptimConfig(lr=1e-2, warmup_steps=1),
                      max_nonfinite_steps=3)
    trainer = L.Trainer(accelerator="cpu", max_steps=10, logger=False, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=tmp_path, enable_checkpointing=False)
    after_first = {}

    class Snapshot(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, *args) -> None:
            if trainer.global_step == 1 and not after_first:
                after_first.update(params_of(pl_module))

    trainer.callbacks.append(Snapshot())
    with pytest.raises(NonFiniteError, match="3 optimizer steps in a row had a non-finite"):
        trainer.fit(module, data(speech_token_shards))
    debug = sorted((tmp_path / "checkpoints").glob("nonfinite-*.ckpt"))
    assert [p.name for p in debug] == ["nonfinite-step=3.ckpt"]  # named after the step counter; the weights are from step 1
    state = read_checkpoint(debug[0])
    assert state["nonfinite"] == {"skipped": 3, "in_a_row": 3}
    for name, value in after_first.items():  # the weights from before the bad steps
        assert torch.equal(state["state_dict"][name], value), name


def test_a_skipped_codec_step_changes_nothing(tmp_path):
    from tests.codec.test_codec_resume import codec_data, codec_module
    from tests.conftest import make_shards

    make_shards(tmp_path / "shards", [6, 6], sr=8000, seconds=0.3)
    seen: dict[int, dict] = {}

    class PoisonThird(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            seen[batch_idx] = params_of(pl_module)
            if batch_idx == 3:  # after the discriminator warm-up: both optimizers would step
                batch.audio[0, 0, 5] = float("nan")

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            seen[batch_idx + 100] = params_of(pl_module)

    L.seed_everything(0)
    module = codec_module()
    trainer = L.Trainer(accelerator="cpu", max_steps=12, logger=False, enable_progress_bar=False,
                        enable_model_summary=False, enable_checkpointing=False, callbacks=[PoisonThird()])
    trainer.fit(module, codec_data(tmp_path / "shards", 0))
    before, after = seen[3], seen[103]
    assert before.keys() == after.keys() and any(".quantizer." in k for k in before)
    for name in before:
        if name != "batches_trained":
            assert torch.equal(before[name], after[name]), name
    assert module.nonfinite.skipped == 1
    assert any(not torch.equal(seen[4][k], seen[104][k]) for k in before)  # the next batch trains again
