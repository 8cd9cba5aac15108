"""Exact resumption of codec GAN training: resumed from the checkpoint written after batch k
(during the discriminator warm-up, mid-epoch with both optimizers, and at an epoch's end), the
run takes the same batches, logs the same mel losses and ends with the same codec,
discriminators and balancer state as the uninterrupted run (random crops, quantizer dropout,
EMA codebooks), with 0 and 2 loader workers."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from codec.codec import CodecConfig
from codec.lightning_module import CodecModule
from codec.model import SEANetConfig
from codec.quantize import RVQConfig
from codec.training import CodecLossConfig, OptimConfig
from data.datamodule import AudioDataModule, AudioLoaderConfig
from launch.rng_state import RNGStateCallback
from tests.conftest import make_shards
from tests.resume_helpers import RecordSteps, params_of


def codec_module(**kw) -> CodecModule:
    cfg = CodecConfig(8000, SEANetConfig(n_filters=4, dimension=16, ratios=(4, 4), bottleneck="none"),
                      RVQConfig(dimension=16, n_q=3, bins=16, quantizer_dropout=True))
    return CodecModule(cfg, discriminators=["msstft"], tiny_discriminators=True,
                       losses=CodecLossConfig(discriminator_warmup=2, balancer=True, mel_n_ffts=(32, 64, 128)),
                       optim=OptimConfig(lr=1e-3, warmup_steps=3, decay_steps=30), **kw)


def codec_data(shards, workers: int) -> AudioDataModule:
    loader = AudioLoaderConfig(sample_rate=8000, crop_seconds=0.2, batch_size=2, shuffle_buffer=4, seed=2,
                               epoch_samples=12)
    return AudioDataModule(str(shards), loader=loader, num_workers=workers)


def fit(shards, root, workers: int, max_steps: int, ckpt_path=None, save: bool = False, callbacks=(), **kw):
    L.seed_everything(0)
    record = RecordSteps()
    cbs = [record, RNGStateCallback(), *callbacks]
    if save:
        cbs.append(ModelCheckpoint(dirpath=root / "ckpt", every_n_train_steps=1, save_top_k=-1, filename="{step}"))
    trainer = L.Trainer(accelerator="cpu", max_steps=max_steps, logger=False, enable_progress_bar=False,
                        enable_model_summary=False, enable_checkpointing=save, callbacks=cbs, default_root_dir=root)
    module = codec_module(**kw)
    trainer.fit(module, codec_data(shards, workers), ckpt_path=ckpt_path)
    return record.steps, params_of(module), module


@pytest.fixture(scope="module")
def audio_shards(tmp_path_factory):
    out = tmp_path_factory.mktemp("codec_resume") / "shards"
    make_shards(out, [5, 7, 4, 6], sr=8000, seconds=0.3)
    return out


@pytest.mark.parametrize("workers", [0, 2])
def test_resumed_codec_run_repeats_the_uninterrupted_one(audio_shards, tmp_path, workers):
    # 8 batches: 2 warm-up batches (one step each), then two optimizer steps a batch
    steps, final, module = fit(audio_shards, tmp_path / "ref", workers, max_steps=14, save=True)
    assert [s for s, _, _ in steps] == [1, 2, 4, 6, 8, 10, 12, 14]
    assert all(loss == loss for _, _, loss in steps)  # mel losses recorded, not NaN
    for batch in (1, 3, 6):  # warm-up; mid-epoch; the end of epoch 0 (6 batches an epoch)
        step = steps[batch - 1][0]
        ckpt = tmp_path / "ref" / "ckpt" / f"step={step}.ckpt"
        resumed, resumed_final, _ = fit(audio_shards, tmp_path / f"resume{batch}", workers, max_steps=14,
                                        ckpt_path=ckpt)
        assert resumed == steps[batch:], f"resumed after batch {batch}"
        for name, value in final.items():
            assert torch.equal(value, resumed_final[name]), name
