"""Every YAML under configs/ is loaded, checked against the classes it configures, and built."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from jsonargparse import ArgumentParser

from audiolm.lightning_module import LMModule
from codec.lightning_module import CodecModule
from data.datamodule import AudioDataModule
from data.token_datamodule import TokenDataModule

ROOT = Path(__file__).resolve().parents[1]
ALL = sorted(ROOT.glob("configs/**/*.yaml"))
TRAINING = {"codec": (CodecModule, AudioDataModule), "lm": (LMModule, TokenDataModule)}


def test_configs_exist_and_are_all_covered():
    assert ALL, "configs/ has no YAML"
    for path in ALL:
        assert path.parent.name in {"codec", "data", "decoder", "lm", "trainer"}, f"{path} is in a folder no test covers"


@pytest.mark.parametrize("path", [p for p in ALL if p.parent.name == "trainer"], ids=lambda p: p.stem)
def test_trainer_config_composes_with_a_model_config(path, tmp_path):
    """A trainer config goes after a model config (``--config MODEL --config TRAINER``); its
    strategy instantiates (FSDP's needs no process group until fit)."""
    from lightning.pytorch.cli import LightningCLI

    cli = LightningCLI(LMModule, TokenDataModule, run=False, args=[
        "--config", str(ROOT / "configs/lm/valle-ar-tiny.yaml"), "--config", str(path),
        "--trainer.accelerator", "cpu", "--trainer.default_root_dir", str(tmp_path),
        "--data.shards", str(tmp_path / "shards"),
    ], save_config_kwargs={"overwrite": True})
    strategy = yaml.safe_load(path.read_text())["trainer"]["strategy"]["class_path"].rsplit(".", 1)[1]
    assert type(cli.trainer.strategy).__name__ == strategy


@pytest.mark.parametrize("path", [p for p in ALL if p.parent.name == "data"], ids=lambda p: p.stem)
def test_data_config_parses_and_builds(path):
    parser = ArgumentParser(exit_on_error=False)
    parser.add_class_arguments(AudioDataModule, "data")
    cfg = parser.parse_args(["--data", str(path)])
    dm = parser.instantiate_classes(cfg).data
    assert dm.cfg.sample_rate in (16000, 24000, 32000) and dm.cfg.batch_size > 0


@pytest.mark.parametrize("path", [p for p in ALL if p.parent.name in TRAINING], ids=lambda p: f"{p.parent.name}-{p.stem}")
def test_training_config_parses_and_instantiates(path, tmp_path):
    from lightning.pytorch.cli import LightningCLI

    model_cls, data_cls = TRAINING[path.parent.name]
    cli = LightningCLI(model_cls, data_cls, run=False, args=[
        "--config", str(path), "--trainer.accelerator", "cpu", "--trainer.devices", "1",
        "--trainer.precision", "32-true", "--trainer.default_root_dir", str(tmp_path),
        "--data.shards", str(tmp_path / "shards"),
    ], save_config_kwargs={"overwrite": True})
    if isinstance(cli.model, CodecModule):
        assert cli.model.codec.sample_rate == cli.datamodule.cfg.sample_rate
    else:
        assert sum(p.numel() for p in cli.model.parameters()) > 0 and callable(cli.model.model.loss)


# the codec config whose tokens each decoder config reads
DECODER_CODECS = {"vocos-tiny": "tiny", "vocos-tiny-fast": "tiny", "vocos-base": "speech16k-6kbps", "flow-tiny": "tiny",
                  "flow-base": "speech16k-6kbps"}


@pytest.mark.parametrize("path", [p for p in ALL if p.parent.name == "decoder"], ids=lambda p: p.stem)
def test_decoder_config_instantiates_on_its_codec(path, tmp_path):
    """A decoder config builds on a (random-init) export of the codec config it is written for."""
    from lightning.pytorch.cli import LightningCLI

    from codec.codec import CodecConfig, build_codec
    from codec.decoder.lightning_module import DecoderModule
    from codec.export import export_codec

    codec_yaml = ROOT / "configs" / "codec" / f"{DECODER_CODECS[path.stem]}.yaml"
    codec = build_codec(CodecConfig(**yaml.safe_load(codec_yaml.read_text())["model"]["codec"]))
    export = export_codec(codec, tmp_path / "codec")
    cli = LightningCLI(DecoderModule, AudioDataModule, run=False, args=[
        "--config", str(path), "--model.codec", str(export), "--trainer.accelerator", "cpu", "--trainer.devices", "1",
        "--trainer.precision", "32-true", "--trainer.default_root_dir", str(tmp_path),
        "--data.shards", str(tmp_path / "shards"),
    ], save_config_kwargs={"overwrite": True})
    assert cli.model.shape.num_codebooks == codec.num_codebooks
    assert cli.model.sample_rate == cli.datamodule.cfg.sample_rate == codec.sample_rate


def test_unknown_config_key_is_one_clear_error(tmp_path, capsys):
    from launch.cli import main

    bad = tmp_path / "bad.yaml"
    bad.write_text((ROOT / "configs/codec/tiny.yaml").read_text().replace("n_filters: 8", "n_filterz: 8"))
    with pytest.raises(SystemExit) as e:
        main(["codec", "fit", "--config", str(bad), "--data.shards", str(tmp_path)])
    assert e.value.code == 2
    assert "n_filterz" in capsys.readouterr().err
