"""Second decoders (codec/decoder): one network for every number of codebooks k, starting where
the codec's own decoder is, trained by the codec's GAN step on frozen tokens, exported tied to
its codec and plugged into the commands that decode."""

from __future__ import annotations

import json

import lightning as L
import numpy as np
import pytest
import soundfile as sf
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from codec.codec import CodecConfig, build_codec
from codec.decoder.export import export_decoder, load_decoder
from codec.decoder.lightning_module import DecoderModule
from codec.decoder.model import CodecShape, DecoderConfig, TokenDecoder
from codec.decoder.tokenizer import DecodedWith
from codec.export import export_codec
from codec.load import load_tokenizer
from codec.model import SEANetConfig
from codec.model.fourier import FourierConfig
from codec.quantize import RVQConfig
from codec.training import CodecLossConfig, OptimConfig
from data.datamodule import AudioDataModule, AudioLoaderConfig
from launch.rng_state import RNGStateCallback
from tests.conftest import make_shards
from tests.resume_helpers import RecordSteps, params_of

SMALL = FourierConfig(width=16, layers=2, mlp_ratio=2)


def tiny_codec(decoder: str = "fourier", seed: int = 0):
    torch.manual_seed(seed)
    cfg = CodecConfig(8000, SEANetConfig(n_filters=4, dimension=16, ratios=(4, 4), bottleneck="none"),
                      RVQConfig(dimension=16, n_q=3, bins=16), decoder=decoder, fourier=SMALL)
    codec = build_codec(cfg).eval()
    for p in codec.decoder.parameters():  # weights far from their init: agreement below is not by chance
        p.data.add_(0.3 * torch.randn_like(p))
    codec.refresh_codec_id()
    return codec


def shape(codec) -> CodecShape:
    return CodecShape.of(codec)


def test_one_network_for_every_k_and_each_k_its_own_norms():
    torch.manual_seed(0)
    dec = TokenDecoder(DecoderConfig(fourier=SMALL), CodecShape(8000, 1, 16, 16, 3, 16))
    for m in dec.modules():  # give each k its own scales and shifts
        if hasattr(m, "shift") and isinstance(m.shift, torch.nn.Embedding):
            m.scale.weight.data.normal_(1.0, 0.5)
            m.shift.weight.data.normal_(0.0, 0.5)
    z = torch.randn(2, 16, 12)
    outs = {k: dec(z, k) for k in (1, 2, 3)}
    assert all(o.shape == (2, 1, 12 * 16) for o in outs.values())
    assert not torch.allclose(outs[1], outs[3], atol=1e-4)  # k changes the output
    mixed = dec(z, torch.tensor([1, 3]))  # a batch of two k's is each row at its own k
    torch.testing.assert_close(mixed[0], outs[1][0])
    torch.testing.assert_close(mixed[1], outs[3][1])
    for bad in (0, 4):
        with pytest.raises(ValueError, match="k must lie in 1..3"):
            dec(z, bad)


def test_starts_as_the_codecs_own_decoder_at_every_k():
    codec = tiny_codec()
    dec = TokenDecoder(DecoderConfig(fourier=SMALL), shape(codec))
    wav = torch.randn(2, 1, 800) * 0.3
    codes = codec.encode(wav)
    fresh = dec(codec.dequantize(codes), 3)
    dec.init_from(codec.decoder)
    for k in (1, 2, 3):
        ours, theirs = dec(codec.dequantize(codes[:, :k]), k), codec.decode(codes[:, :k])
        torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)
        assert theirs.abs().mean() > 1e-3
    assert (fresh - codec.decode(codes)).abs().max() > 1e-2  # a fresh decoder does not agree by itself
    with pytest.raises(ValueError, match="another shape"):
        TokenDecoder(DecoderConfig(fourier=FourierConfig(width=32, layers=2)), shape(codec)).init_from(codec.decoder)
    with pytest.raises(ValueError, match="FourierDecoder"):
        dec.init_from(tiny_codec("seanet").decoder)


def test_export_round_trip_ties_the_decoder_to_its_codec(tmp_path):
    codec, other = tiny_codec(seed=0), tiny_codec(seed=1)
    dec = TokenDecoder(DecoderConfig(fourier=SMALL), shape(codec))
    dec.init_from(codec.decoder)
    with torch.no_grad():
        dec.net.proj.bias.add_(0.01)  # not the codec's decoder any more
    out = export_decoder(dec, codec.codec_id, tmp_path / "dec", codec_spec="somewhere")
    loaded = load_decoder(out)
    assert loaded.codec_id == codec.codec_id and loaded.codec_spec == "somewhere"
    z = codec.dequantize(codec.encode(torch.randn(1, 1, 640) * 0.3))
    assert torch.equal(loaded(z, 2), dec.eval()(z, 2))

    tok = DecodedWith(codec, loaded)
    wav = torch.randn(1, 1, 640) * 0.3
    codes = tok.encode(wav)
    assert torch.equal(codes, codec.encode(wav)) and tok.codec_id == codec.codec_id
    assert torch.equal(tok.decode(codes[:, :2]), loaded(codec.dequantize(codes[:, :2]), 2))
    with pytest.raises(ValueError, match="reads the tokens of codec"):
        DecodedWith(other, loaded)

    record = json.loads((out / "config.json").read_text())
    record["config"]["fourier"]["layers"] = 3
    (out / "config.json").write_text(json.dumps(record))
    with pytest.raises(ValueError, match="do not fit"):
        load_decoder(out)
    record["config"]["fourier"]["layers"] = 2
    record["codec"]["num_codebooks"] = 2
    (out / "config.json").write_text(json.dumps(record))
    with pytest.raises(ValueError, match="do not fit"):  # the k embedding has 3 rows
        load_decoder(out)
    with pytest.raises(ValueError, match="codec export: pass it as --codec"):
        load_decoder(export_codec(codec, tmp_path / "codec"))


# -- training ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    out = tmp_path_factory.mktemp("decoder") / "shards"
    make_shards(out, [5, 7], sr=8000, seconds=0.3)
    return out


@pytest.fixture(scope="module")
def codec_dir(tmp_path_factory):
    return export_codec(tiny_codec(), tmp_path_factory.mktemp("decoder") / "codec")


def decoder_module(codec_dir) -> DecoderModule:
    return DecoderModule(str(codec_dir), DecoderConfig(fourier=SMALL), discriminators=["msstft"],
                         tiny_discriminators=True, init_from_codec=True,
                         losses=CodecLossConfig(discriminator_warmup=2, mel_n_ffts=(32, 64, 128)),
                         optim=OptimConfig(lr=1e-3, warmup_steps=2, decay_steps=20))


def fit(codec_dir, shards, root, max_steps, ckpt_path=None, save=False):
    L.seed_everything(0)
    record = RecordSteps()
    cbs = [record, RNGStateCallback()]
    if save:
        cbs.append(ModelCheckpoint(dirpath=root / "ckpt", every_n_train_steps=1, save_top_k=-1, filename="{step}"))
    trainer = L.Trainer(accelerator="cpu", max_steps=max_steps, logger=False, enable_progress_bar=False,
                        enable_model_summary=False, enable_checkpointing=save, callbacks=cbs, default_root_dir=root)
    module = decoder_module(codec_dir)
    loader = AudioLoaderConfig(sample_rate=8000, crop_seconds=0.2, batch_size=2, shuffle_buffer=4, seed=2, epoch_samples=8)
    trainer.fit(module, AudioDataModule(str(shards), loader=loader, num_workers=0), ckpt_path=ckpt_path)
    return record.steps, params_of(module), module


def test_trains_the_decoder_alone_and_resumes_exactly(codec_dir, shards, tmp_path):
    codec = load_tokenizer(str(codec_dir))
    before = {k: v.clone() for k, v in codec.state_dict().items()}
    start = decoder_module(codec_dir).decoder.state_dict()
    steps, final, module = fit(codec_dir, shards, tmp_path / "ref", max_steps=10, save=True)
    assert [s for s, _, _ in steps] == [1, 2, 4, 6, 8, 10]  # 2 warm-up batches, then GAN (2 steps a batch)
    assert not any(k.startswith("codec.") for k in final)  # the frozen codec is no part of the checkpoint
    assert all(torch.equal(v, module.tokens.state_dict()[k]) for k, v in before.items())  # it never changed
    assert any(not torch.equal(v, final[f"decoder.{k}"]) for k, v in start.items())  # the decoder did
    ckpt = tmp_path / "ref" / "ckpt" / "step=4.ckpt"
    resumed, resumed_final, _ = fit(codec_dir, shards, tmp_path / "resumed", max_steps=10, ckpt_path=ckpt)
    assert resumed == steps[3:]
    for name, value in final.items():
        assert torch.equal(value, resumed_final[name]), name
    # the checkpoint exports, and the export decodes as the trained module does
    from codec.decoder.export import export_decoder_checkpoint

    dec = load_decoder(export_decoder_checkpoint(tmp_path / "ref" / "ckpt" / "step=10.ckpt", tmp_path / "export"))
    z = codec.dequantize(codec.encode(torch.randn(1, 1, 480) * 0.3))
    assert torch.equal(dec(z, 3), module.decoder.eval()(z, 3))
    assert dec.codec_id == codec.codec_id


def test_resuming_with_another_codec_is_refused(codec_dir, shards, tmp_path):
    fit(codec_dir, shards, tmp_path / "ref", max_steps=2, save=True)
    other = export_codec(tiny_codec(seed=5), tmp_path / "other")
    with pytest.raises(ValueError, match="resume with the codec it was trained on"):
        module = DecoderModule(str(other), DecoderConfig(fourier=SMALL), tiny_discriminators=True)
        module.on_load_checkpoint(torch.load(tmp_path / "ref" / "ckpt" / "step=2.ckpt", weights_only=True))


def test_decoder_fit_export_and_decode_from_the_command_line(codec_dir, shards, tmp_path, capsys):
    from launch.cli import main

    root = tmp_path / "run"
    args = ["decoder", "fit", "--codec", str(codec_dir), "--data.shards", str(shards),
            "--data.loader.sample_rate", "8000", "--data.loader.crop_seconds", "0.2", "--data.loader.batch_size", "2",
            "--model.decoder.fourier.width", "16", "--model.decoder.fourier.layers", "2",
            "--model.decoder.fourier.mlp_ratio", "2", "--model.init_from_codec", "true", "--model.tiny_discriminators", "true",
            "--trainer.max_steps", "3", "--trainer.accelerator", "cpu", "--trainer.logger", "false",
            "--trainer.enable_progress_bar", "false", "--trainer.default_root_dir", str(root)]
    assert main(args) == 0
    ckpt = next(root.rglob("*.ckpt"))
    assert main(["decoder", "export", str(ckpt), str(tmp_path / "dec")]) == 0
    wav = np.random.default_rng(0).normal(0, 0.2, 4000).astype(np.float32)
    sf.write(tmp_path / "in.wav", wav, 8000)
    assert main(["codec", "encode", "--codec", str(codec_dir), str(tmp_path / "in.wav"), str(tmp_path / "c.npz")]) == 0
    assert main(["codec", "decode", "--codec", str(codec_dir), "--decoder", str(tmp_path / "dec"), "--codebooks", "2",
                 str(tmp_path / "c.npz"), str(tmp_path / "out.wav")]) == 0
    out, sr = sf.read(tmp_path / "out.wav", dtype="float32")
    codec, dec = load_tokenizer(str(codec_dir)), load_decoder(tmp_path / "dec")
    codes = torch.from_numpy(np.load(tmp_path / "c.npz")["codes"].astype(np.int64))[None, :2]
    with torch.no_grad():
        want = dec(codec.dequantize(codes), 2)[0, 0, :4000].clamp(-1, 1).numpy()
    assert sr == 8000 and out.shape == (4000,)
    np.testing.assert_allclose(out, want, atol=1 / 32767 + 1e-6)  # 16-bit PCM of the decoder's output
    capsys.readouterr()
    assert main(["decoder", "fit", "--codec", str(tmp_path / "nowhere"), "--data.shards", str(shards),
                 "--trainer.max_steps", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("codeclm: error:") and "nowhere" in err[-1]
    assert main(["decoder", "export", str(ckpt), str(tmp_path / "dec2"), "--steps", "2"]) == 2  # one step by construction
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("codeclm: error:") and "istft decoder" in err[-1] and not (tmp_path / "dec2").exists()
