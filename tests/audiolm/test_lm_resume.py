"""Exact resumption of language-model training: resumed from the checkpoint of step k (mid-epoch
or at an epoch's end), a VALL-E NAR run with dropout (random stage, prompt and dropout draws)
and mid-epoch validation takes the same batches, computes the same losses and ends with the same
weights as the run that was never interrupted, with 0 and 2 loader workers."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from audiolm.lightning_module import LMModule, LMOptimConfig
from audiolm.models.valle import ValleConfig
from audiolm.models.valle_nar import ValleNAR
from data.token_datamodule import TokenDataModule
from data.tokens import TokenLoaderConfig
from launch.rng_state import RNGStateCallback
from tests.resume_helpers import RecordSteps, params_of


def lm_module() -> LMModule:
    cfg = ValleConfig(text_vocab=256, cardinality=32, num_codebooks=4, dim=16, layers=1, heads=2, max_text=256,
                      max_frames=200, dropout=0.2)
    return LMModule(ValleNAR(cfg), LMOptimConfig(lr=3e-3, warmup_steps=2, decay_steps=20))


def lm_data(shards: dict, workers: int) -> TokenDataModule:
    loader = TokenLoaderConfig(batch_size=2, max_frames=40, shuffle_buffer=4, seed=1, epoch_samples=12,
                               text="phonemes")
    return TokenDataModule(str(shards["tokens"]), val_shards=str(shards["tokens"]), loader=loader,
                           text_model=str(shards["phonemes"]), num_workers=workers)


def fit(shards: dict, root, workers: int, max_steps: int, ckpt_path=None, save_every: int = 0):
    L.seed_everything(0)
    record = RecordSteps()
    callbacks = [record, RNGStateCallback()]
    if save_every:
        callbacks.append(ModelCheckpoint(dirpath=root / "ckpt", every_n_train_steps=save_every, save_top_k=-1,
                                         filename="{step}"))
    trainer = L.Trainer(accelerator="cpu", max_steps=max_steps, logger=False, enable_progress_bar=False,
                        enable_model_summary=False, enable_checkpointing=bool(save_every), callbacks=callbacks,
                        default_root_dir=root, gradient_clip_val=1.0, val_check_interval=4, limit_val_batches=1,
                        num_sanity_val_steps=1)
    module = lm_module()
    trainer.fit(module, lm_data(shards, workers), ckpt_path=ckpt_path)
    return record.steps, params_of(module)


@pytest.mark.parametrize("workers", [0, 2])
def test_resumed_lm_run_repeats_the_uninterrupted_one(speech_token_shards, tmp_path, workers):
    steps, final = fit(speech_token_shards, tmp_path / "ref", workers, max_steps=9, save_every=1)
    assert len(steps) == 9 and len({tuple(k) for _, k, _ in steps}) > 4
    for k in (3, 4, 6):  # epochs are 6 batches long; validation follows step 4; step 6 ends epoch 0
        ckpt = tmp_path / "ref" / "ckpt" / f"step={k}.ckpt"
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
        assert state["loops"]["fit_loop"]["state_dict"]["combined_loader"][0]["batches"] == (k - 1) % 6 + 1
        assert len(state["rng_states"]["ranks"]) == 1
        resumed, resumed_final = fit(speech_token_shards, tmp_path / f"resume{k}", workers, max_steps=9,
                                     ckpt_path=ckpt)
        assert resumed == steps[k:], f"resumed from step {k}"
        for name, value in final.items():
            assert torch.equal(value, resumed_final[name]), name
