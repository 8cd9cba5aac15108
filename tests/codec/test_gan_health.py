"""GAN health: a discriminator that wins or learns nothing is reported, a healthy one is not."""

from __future__ import annotations

import logging

import lightning as L
import pytest
import torch

from codec.discriminators import DiscriminatorsConfig, build_discriminators
from codec.health import CHANCE_LOSS, GANHealth, HealthConfig
from codec.lightning_module import CodecModule
from codec.losses import discriminator_loss, generator_loss
from codec.training import CodecLossConfig
from data.datamodule import AudioDataModule, AudioLoaderConfig
from tests.codec.test_codec_training import _one_clip_shards, tiny_cfg


def feed(health: GANHealth, d: float, g: float, n: int) -> list[str]:
    warnings = []
    for _ in range(n):
        health.update(torch.tensor(d), torch.tensor(g))
        warnings += health.check()[1]
    return warnings


def test_a_discriminator_that_separates_a_collapsed_generator_is_reported_as_winning():
    """Real discriminators against a generator that lost its signal (it outputs silence): the
    discriminator learns to tell them apart, its loss falls far below chance, and the monitor says so."""
    torch.manual_seed(0)
    disc = build_discriminators(["msstft"], DiscriminatorsConfig.tiny(1))
    opt = torch.optim.Adam(disc.parameters(), lr=3e-3)
    health = GANHealth("hinge", HealthConfig(ema=0.8, patience=10))
    warnings = []
    for _ in range(80):
        real = torch.randn(4, 1, 2048) * 0.3
        fake = torch.zeros_like(real)
        out = disc(torch.cat([real, fake]))
        d_loss = discriminator_loss("hinge", [t[:4] for t in out.logits], [t[4:] for t in out.logits])
        opt.zero_grad()
        d_loss.backward()
        opt.step()
        g = generator_loss("hinge", [t[4:].detach() for t in out.logits])
        health.update(d_loss, g)
        warnings += health.check()[1]
    metrics = health.check()[0]
    assert metrics["gan/d_vs_chance"] < 0.05, metrics
    assert metrics["gan/d_g_ratio"] < 0.05, metrics  # the generator's adversarial loss is large
    # an untrained discriminator starts blind (and may be reported so); it ends winning
    assert warnings and "discriminator is winning" in warnings[-1]
    assert sum("winning" in w for w in warnings) >= 2


def test_a_blind_discriminator_is_reported_and_a_balanced_one_is_not():
    chance = CHANCE_LOSS["ls"]
    blind = GANHealth("ls", HealthConfig(ema=0.5, patience=20))
    early = feed(blind, chance, 0.25, 19)
    assert early == []  # not before the condition has lasted `patience` batches
    late = feed(blind, chance, 0.25, 61)
    assert len(late) == 4 and all("at chance" in w for w in late)  # at 20, 40, 60, 80: once per patience
    balanced = GANHealth("hinge", HealthConfig(ema=0.5, patience=20))
    assert feed(balanced, 1.2, 0.9, 200) == []
    # recovering resets the count: blind again, it waits a full patience before the next warning
    assert feed(blind, 0.3 * chance, 0.2, 10) == []
    assert feed(blind, chance, 0.25, 10) == []


def test_health_state_round_trips_so_a_resumed_run_warns_like_an_uninterrupted_one():
    cfg = HealthConfig(ema=0.9, patience=15)
    whole, first = GANHealth("hinge", cfg), GANHealth("hinge", cfg)
    feed(whole, 0.01, 2.0, 12)
    feed(first, 0.01, 2.0, 12)
    second = GANHealth("hinge", cfg)
    second.load_state_dict(first.state_dict())
    assert feed(second, 0.01, 2.0, 30) == feed(whole, 0.01, 2.0, 30) != []
    assert second.state_dict() == whole.state_dict()
    with pytest.raises(ValueError, match="unknown adversarial loss"):
        GANHealth("wasserstein")


def test_codec_training_logs_the_ratio_and_warns(tmp_path, caplog):
    """Through real codec training: the ratio is logged, a threshold crossed gives one warning."""
    torch.manual_seed(0)
    shards = _one_clip_shards(tmp_path)
    dm = AudioDataModule(str(shards), loader=AudioLoaderConfig(sample_rate=8000, crop_seconds=0.4, batch_size=1,
                                                              epoch_samples=8), num_workers=0)
    # chance_above=0 makes any discriminator count as blind: the warning path is what is under test
    module = CodecModule(tiny_cfg(), tiny_discriminators=True, losses=CodecLossConfig(mel_n_ffts=(32, 64)),
                         health=HealthConfig(patience=4, chance_above=0.0))
    logger = L.pytorch.loggers.CSVLogger(tmp_path, name="csv")
    trainer = L.Trainer(max_epochs=1, accelerator="cpu", logger=logger, enable_checkpointing=False,
                        log_every_n_steps=1, enable_progress_bar=False, enable_model_summary=False,
                        num_sanity_val_steps=0, limit_val_batches=0)
    with caplog.at_level(logging.WARNING, logger="codeclm.codec"):
        trainer.fit(module, dm)
    assert module.health.batches == 8
    metrics = (tmp_path / "csv" / "version_0" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"gan/d_g_ratio", "gan/d_vs_chance", "gan/d_loss_ema"} <= set(metrics)
    assert sum("at chance" in r.getMessage() for r in caplog.records) == 2  # at batches 4 and 8
    saved: dict = {}
    module.on_save_checkpoint(saved)
    assert saved["gan_health"]["batches"] == 8
