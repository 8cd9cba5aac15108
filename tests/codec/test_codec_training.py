"""The codec and its GAN training: shapes per config, code/latent agreement, learning, checkpoints."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
import yaml

from codec.codec import CodecConfig, build_codec
from codec.lightning_module import CodecModule
from codec.losses import mel_distance
from codec.model import SEANetConfig
from codec.quantize import RVQConfig
from codec.training import CodecLossConfig, OptimConfig
from data.datamodule import AudioDataModule, AudioLoaderConfig

CONFIGS = sorted(Path(__file__).resolve().parents[2].glob("configs/codec/*.yaml"))


def tiny_cfg(kind="ema") -> CodecConfig:
    return CodecConfig(8000, SEANetConfig(n_filters=4, dimension=16, ratios=(4, 4), bottleneck="none"),
                       RVQConfig(dimension=16, n_q=4, bins=32, kind=kind))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_every_codec_config_builds_with_the_right_shapes(path):
    model = yaml.safe_load(path.read_text())["model"]
    module = CodecModule(CodecConfig.from_dict(model["codec"]), discriminators=model.get("discriminators"),
                         tiny_discriminators=True)
    codec = module.codec.eval()
    hop = codec.hop_length
    wav = torch.zeros(1, codec.channels, hop * 5 + 7)
    codes = codec.encode(wav)
    assert codes.shape == (1, codec.num_codebooks, 6)
    assert codec.decode(codes).shape == (1, codec.channels, 6 * hop)
    assert codec.frame_rate == codec.sample_rate / hop


def test_named_configs_match_their_promises():
    by_name = {p.stem: yaml.safe_load(p.read_text())["model"]["codec"] for p in CONFIGS}
    s16 = build_codec(CodecConfig.from_dict(by_name["speech16k"]))
    assert (s16.sample_rate, s16.frame_rate, s16.num_codebooks, s16.cardinality) == (16000, 50.0, 8, 1024)
    e24 = build_codec(CodecConfig.from_dict(by_name["encodec24k"]))
    assert (e24.sample_rate, e24.frame_rate, e24.num_codebooks, e24.cardinality) == (24000, 75.0, 32, 1024)
    assert e24.bandwidth(2) == 1.5 and e24.bandwidth(32) == 24.0
    s6 = build_codec(CodecConfig.from_dict(by_name["speech16k-6kbps"]))
    assert (s6.sample_rate, s6.frame_rate, s6.num_codebooks, s6.cardinality) == (16000, 50.0, 12, 1024)
    assert s6.bandwidth(12) == 6.0
    for name in ("tiny-causal", "speech16k-causal"):  # the streaming configs stream, at one hop of latency
        causal = build_codec(CodecConfig.from_dict(by_name[name]))
        stream = causal.stream()
        assert stream.latency_samples == causal.hop_length == 320


@pytest.mark.parametrize("kind", ["ema", "factorized"])
def test_decoding_codes_equals_decoding_the_quantized_latent(kind):
    torch.manual_seed(0)
    codec = build_codec(tiny_cfg(kind))
    codec.train()
    wav = torch.randn(2, 1, 800) * 0.1
    codec(wav)  # k-means initialisation from this batch
    codec.eval()
    out = codec(wav)
    assert torch.equal(codec.decode(out.quantizer.codes)[..., :800], out.audio)
    assert torch.equal(codec.encode(wav), out.quantizer.codes)
    with pytest.raises(ValueError, match="codes must lie"):
        codec.decode(torch.full((1, 2, 5), 99))


def test_bandwidth_arithmetic():
    codec = build_codec(tiny_cfg())
    assert codec.frame_rate == 500.0 and codec.bandwidth(4) == 4 * 5 * 500 / 1000
    assert codec.codebooks_for_bandwidth(5.0) == 2
    with pytest.raises(ValueError, match="outside"):
        codec.codebooks_for_bandwidth(100.0)


def _one_clip_shards(tmp_path):
    from tests.conftest import make_shards

    return make_shards(tmp_path / "one", [1], sr=8000, seconds=0.4, speakers=1) and tmp_path / "one"


def test_tiny_codec_overfits_one_clip(tmp_path):
    torch.manual_seed(0)
    shards = _one_clip_shards(tmp_path)
    dm = AudioDataModule(str(shards), loader=AudioLoaderConfig(sample_rate=8000, crop_seconds=0.4, batch_size=1,
                                                              epoch_samples=40), num_workers=0)
    module = CodecModule(tiny_cfg(), tiny_discriminators=True,
                         losses=CodecLossConfig(discriminator_warmup=30, mel_n_ffts=(32, 64, 128, 256)),
                         optim=OptimConfig(lr=3e-3))
    clip = next(iter(dm.train_dataloader())).audio

    def distance() -> float:
        module.codec.eval()
        with torch.no_grad():
            out = module.codec.decode(module.codec.encode(clip))[..., : clip.shape[-1]]
        module.codec.train()
        return float(mel_distance(out, clip, 8000, module.mel_cfg).mean())

    module.codec.train()
    module.codec(clip)  # initialise the codebooks, so "before" is a working codec
    before = distance()
    trainer = L.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
    trainer.fit(module, dm)
    after = distance()
    assert int(module.batches_trained) == 40
    assert after < 0.6 * before, (before, after)


def test_checkpoint_loads_without_pickle_and_carries_the_config(tmp_path):
    shards = _one_clip_shards(tmp_path)
    dm = AudioDataModule(str(shards), loader=AudioLoaderConfig(sample_rate=8000, crop_seconds=0.4, batch_size=1,
                                                              epoch_samples=3), num_workers=0)
    module = CodecModule(tiny_cfg(), tiny_discriminators=True, losses=CodecLossConfig(balancer=True))
    trainer = L.Trainer(max_epochs=1, accelerator="cpu", logger=False, default_root_dir=tmp_path,
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module, dm)
    ckpt = next((tmp_path / "checkpoints").glob("*.ckpt"))
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    assert CodecConfig.from_dict(state["codec_config"]) == module.codec.cfg
    assert "balancer" in state and any(k.startswith("codec.") for k in state["state_dict"])
    assert any(k.startswith("discriminator.") for k in state["state_dict"])


def test_causal_codec_streams_chunk_by_chunk_like_a_full_pass():
    torch.manual_seed(0)
    cfg = CodecConfig(8000, SEANetConfig(n_filters=4, dimension=16, ratios=(4, 2), causal=True, bottleneck="lstm",
                                         bottleneck_layers=1), RVQConfig(dimension=16, n_q=3, bins=16))
    codec = build_codec(cfg)
    codec.train()
    wav = torch.randn(1, 1, 8 * 40) * 0.2
    codec(wav)  # fill the codebooks
    codec.eval()
    full_codes = codec.encode(wav)
    full_audio = codec.decode(full_codes)
    hop = codec.hop_length
    with torch.no_grad(), codec.encoder.streaming(), codec.decoder.streaming():
        codes = [codec.quantizer.encode(codec.encoder(wav[..., i : i + 5 * hop])) for i in range(0, wav.shape[-1], 5 * hop)]
        audio = [codec.decoder(codec.quantizer.decode(c)) for c in codes]
    assert torch.equal(torch.cat(codes, -1), full_codes)
    torch.testing.assert_close(torch.cat(audio, -1), full_audio, atol=1e-5, rtol=1e-5)
