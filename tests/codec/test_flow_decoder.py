"""The flow-matching decoder (codec/decoder/flow.py): its path and Euler sampler recover a known
distribution, its data space inverts exactly, and it trains (flow matching, then GAN fine-tuning
of the unrolled sampler) and resumes through the shared GAN step."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from torch import nn

from codec.decoder.flow import FlowConfig, euler, interpolate
from codec.decoder.lightning_module import DecoderModule
from codec.decoder.model import CodecShape, DecoderConfig, TokenDecoder
from codec.export import export_codec
from codec.model.fourier import FourierConfig
from codec.training import CodecLossConfig, OptimConfig
from data.datamodule import AudioDataModule, AudioLoaderConfig
from launch.rng_state import RNGStateCallback
from tests.codec.test_decoder import tiny_codec
from tests.conftest import make_shards
from tests.resume_helpers import RecordSteps, params_of

SMALL = FourierConfig(width=16, layers=2, mlp_ratio=2)


def test_flow_matching_and_euler_steps_recover_a_two_mode_mixture():
    """Data: +-2 with equal odds, spread 0.25. The network sees (x_t, t) and predicts the clean
    sample; its mean prediction at t = 0 is the mixture's mean (0), which one step returns, while
    eight steps split the noise into the two modes with their weights and spread."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(2, 64), nn.SiLU(), nn.Linear(64, 64), nn.SiLU(), nn.Linear(64, 1))
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)

    def predict(x, t):
        return net(torch.cat([x, t[:, None]], dim=-1))

    def data(n):
        return torch.where(torch.rand(n, 1) < 0.5, -2.0, 2.0) + 0.25 * torch.randn(n, 1)

    for _ in range(1500):
        y = data(256)
        t = torch.rand(256)
        loss = (predict(interpolate(torch.randn_like(y), y, t), t) - y).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        noise = torch.randn(4000, 1)
        one, many = euler(predict, noise, 1), euler(predict, noise, 8)
    assert one.abs().mean() < 0.5  # the regression estimate sits between the modes
    upper = many[many > 0]
    assert 0.45 < upper.numel() / many.numel() < 0.55
    assert abs(upper.mean() - 2.0) < 0.15 and abs(many[many < 0].mean() + 2.0) < 0.15
    assert 0.15 < upper.std() < 0.45
    assert (many.abs() < 1.0).float().mean() < 0.05  # little mass left between the modes


def test_coefficients_invert_exactly_and_bands_carry_unit_energy():
    torch.manual_seed(0)
    dec = TokenDecoder(DecoderConfig(head="flow", fourier=SMALL), CodecShape(8000, 1, 16, 16, 3, 16))
    flow = dec.net
    t = torch.arange(1600) / 8000
    wav = (0.5 * torch.sin(2 * torch.pi * 200 * t) + 0.01 * torch.randn(1600))[None, None]  # one loud band
    flow.observe(wav)
    y = flow.to_coefficients(wav)
    torch.testing.assert_close(flow.to_audio(y), wav, atol=1e-5, rtol=0)
    per_bin = y.reshape(1, 2, flow.bins, -1).square().mean(dim=(0, 1, 3))  # each bin's real and imaginary parts
    torch.testing.assert_close(per_bin, torch.ones_like(per_bin), atol=1e-4, rtol=1e-4)
    assert flow.band_scale.max() / flow.band_scale.min() > 10  # the scale did differ across bands
    z = torch.randn(2, 16, 100)
    assert torch.equal(dec(z, 2), dec(z, 2))  # fixed noise: the same codes decode to the same audio
    with pytest.raises(ValueError):
        FlowConfig(steps=0)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("flow")
    make_shards(root / "shards", [5, 7], sr=8000, seconds=0.3)
    return export_codec(tiny_codec(), root / "codec"), root / "shards"


def fit(codec_dir, shards, root, max_steps, ckpt_path=None):
    from lightning.pytorch.callbacks import ModelCheckpoint

    L.seed_everything(0)
    record = RecordSteps()
    cbs = [record, RNGStateCallback(),
           ModelCheckpoint(dirpath=root / "ckpt", every_n_train_steps=1, save_top_k=-1, filename="{step}")]
    trainer = L.Trainer(accelerator="cpu", max_steps=max_steps, logger=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=cbs, default_root_dir=root)
    module = DecoderModule(str(codec_dir), DecoderConfig(head="flow", fourier=SMALL, flow=FlowConfig(steps=2)),
                           discriminators=["msstft"], tiny_discriminators=True, gan_steps=2,
                           losses=CodecLossConfig(discriminator_warmup=2, mel_n_ffts=(32, 64, 128)),
                           optim=OptimConfig(lr=1e-3, warmup_steps=2, decay_steps=20))
    loader = AudioLoaderConfig(sample_rate=8000, crop_seconds=0.2, batch_size=2, shuffle_buffer=4, seed=2,
                               epoch_samples=8)
    trainer.fit(module, AudioDataModule(str(shards), loader=loader, num_workers=0), ckpt_path=ckpt_path)
    return record.steps, params_of(module), module


def test_flow_decoder_trains_through_both_phases_and_resumes_exactly(setup, tmp_path):
    codec_dir, shards = setup
    steps, final, module = fit(codec_dir, shards, tmp_path / "ref", max_steps=8)
    assert [s for s, _, _ in steps] == [1, 2, 4, 6, 8]  # 2 flow-matching batches, then the unrolled sampler's GAN
    assert all(loss == loss for _, _, loss in steps)
    assert bool(final["decoder.net.scale_ready"]) and not torch.allclose(final["decoder.net.band_scale"],
                                                                         torch.ones(1, module.decoder.net.bins))
    resumed, resumed_final, _ = fit(codec_dir, shards, tmp_path / "resumed", max_steps=8,
                                    ckpt_path=tmp_path / "ref" / "ckpt" / "step=4.ckpt")
    assert resumed == steps[3:]
    for name, value in final.items():
        assert torch.equal(value, resumed_final[name]), name
    # the export may fix the sampler's steps (e.g. those its GAN phase unrolled): the decoder then
    # decodes exactly as the trained network sampling in that many steps, and the id covers the choice
    from codec.decoder.export import export_decoder_checkpoint, load_decoder, read_decoder_config

    ckpt = tmp_path / "ref" / "ckpt" / "step=8.ckpt"
    two, one = export_decoder_checkpoint(ckpt, tmp_path / "two"), export_decoder_checkpoint(ckpt, tmp_path / "one", steps=1)
    assert read_decoder_config(one)["decoder_id"] != read_decoder_config(two)["decoder_id"]
    latent, c = torch.randn(1, module.shape.dimension, 6), torch.tensor([1])
    net = module.decoder.net.eval()
    with torch.no_grad():
        for path, steps in ((two, 2), (one, 1)):
            decoder = load_decoder(path)
            assert decoder.cfg.flow.steps == steps
            torch.testing.assert_close(decoder(latent, 2), net.sample(latent, c, steps=steps), atol=1e-5, rtol=0)
        assert not torch.allclose(net.sample(latent, c, steps=1), net.sample(latent, c, steps=2), atol=1e-3)
    with pytest.raises(ValueError, match="at least 1"):
        export_decoder_checkpoint(ckpt, tmp_path / "zero", steps=0)
