"""bf16 where the device has it, the nearest precision where it does not (and a note saying so)."""

from __future__ import annotations

import torch

from launch import precision as P


def test_bf16_falls_back_on_devices_without_it(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "Tesla V100")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert P.resolve_precision("bf16-mixed", "gpu") == ("16-mixed", "this GPU (Tesla V100) has no bf16: precision "
                                                                     "bf16-mixed -> 16-mixed")
    assert P.resolve_precision("bf16-true", "auto")[0] == "32-true"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert P.resolve_precision("bf16-mixed", "auto") == ("bf16-mixed", None)

    monkeypatch.setattr(P, "cpu_has_bf16", lambda: False)
    assert P.resolve_precision("bf16-mixed", "cpu")[0] == "32-true"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert P.resolve_precision("bf16-mixed", "auto")[0] == "32-true"  # auto without a GPU is the CPU
    monkeypatch.setattr(P, "cpu_has_bf16", lambda: True)
    assert P.resolve_precision("bf16-mixed", "cpu") == ("bf16-mixed", None)
    for other in ("32-true", "16-mixed", 32, None):
        assert P.resolve_precision(other, "cpu") == (other, None)


def test_codec_fit_says_which_precision_it_uses(tmp_path, monkeypatch, capsys):
    """Through the CLI: a bf16 config on a device without bf16 trains in float32 and says so."""
    from pathlib import Path

    from launch.cli import main
    from tests.codec.test_codec_training import _one_clip_shards

    monkeypatch.setattr(P, "cpu_has_bf16", lambda: False)
    shards = _one_clip_shards(tmp_path)
    rc = main(["codec", "fit", "--config", str(Path(__file__).resolve().parents[2] / "configs/codec/tiny.yaml"),
               "--data.shards", str(shards), "--data.val_shards", "null", "--trainer.precision", "bf16-mixed",
               "--trainer.accelerator", "cpu", "--trainer.max_steps", "1", "--trainer.logger", "false",
               "--trainer.default_root_dir", str(tmp_path / "run"), "--trainer.enable_progress_bar", "false",
               "--data.loader.sample_rate", "8000", "--model.codec.sample_rate", "8000", "--data.num_workers", "0",
               "--data.loader.batch_size", "1", "--data.loader.crop_seconds", "0.4", "--data.loader.epoch_samples", "2"])
    assert rc == 0
    assert "this CPU has no native bf16: precision bf16-mixed -> 32-true" in capsys.readouterr().err
