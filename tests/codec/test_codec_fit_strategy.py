"""``codeclm codec fit`` picks the GAN-aware DDP strategy by itself: plain DDP (by name, as an
object, or "auto" on more than one process) becomes GANDDPStrategy with its settings kept; other
multi-process strategies are one line; and a tiny config trains on two processes from the command
line."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from lightning.pytorch.strategies import DDPStrategy, FSDPStrategy, SingleDeviceStrategy

from codec.ddp import GANDDPStrategy, gan_strategy, process_count
from launch.cli import main
from tests.conftest import make_shards

REPO = Path(__file__).resolve().parents[2]


def test_process_count_follows_the_trainer_flags():
    assert process_count("cpu", 2) == 2 and process_count("cpu", "2") == 2
    assert process_count("cpu", 1, num_nodes=3) == 3 and process_count("cpu", "auto") == 1
    assert process_count("cpu", -5) == 1  # invalid: the Trainer reports it


@pytest.mark.parametrize("flag,start", [("auto", "popen"), (None, "popen"), ("ddp", "popen"), ("ddp_spawn", "spawn"),
                                        ("ddp_fork", "fork"), ("ddp_find_unused_parameters_true", "popen")])
def test_plain_ddp_on_several_processes_becomes_the_gan_strategy(flag, start):
    strategy, note = gan_strategy(flag, "cpu", 2)
    assert type(strategy) is GANDDPStrategy and strategy._start_method == start
    assert strategy._ddp_kwargs == {"broadcast_buffers": False}  # find_unused_parameters dropped
    assert "2 processes" in note and "GANDDPStrategy" in note
    assert ("find_unused_parameters dropped" in note) == (flag == "ddp_find_unused_parameters_true")


def test_a_ddp_object_keeps_its_settings():
    given = DDPStrategy(process_group_backend="gloo", timeout=timedelta(seconds=60), start_method="spawn",
                        static_graph=True, find_unused_parameters=True)
    strategy, note = gan_strategy(given, "cpu", 2)
    assert type(strategy) is GANDDPStrategy and "DDPStrategy" in note
    assert strategy._process_group_backend == "gloo" and strategy._timeout == timedelta(seconds=60)
    assert strategy._start_method == "spawn"
    assert strategy._ddp_kwargs == {"static_graph": True, "broadcast_buffers": False}


def test_one_process_and_the_gan_strategy_stay_as_they_are():
    assert gan_strategy("auto", "cpu", 1) == ("auto", None)
    assert gan_strategy("single_device", "cpu", 1) == ("single_device", None)
    own = GANDDPStrategy(process_group_backend="gloo")
    assert gan_strategy(own, "cpu", 2) == (own, None)
    single = SingleDeviceStrategy("cpu")
    assert gan_strategy(single, "cpu", 1) == (single, None)


@pytest.mark.parametrize("flag", ["fsdp", "deepspeed", FSDPStrategy()])
def test_strategies_that_cannot_train_the_gan_are_refused(flag):
    with pytest.raises(ValueError, match="cannot train the codec"):
        gan_strategy(flag, "cpu", 2)


def test_a_refused_strategy_is_one_line_from_the_cli(tmp_path, capsys):
    make_shards(tmp_path / "shards", [2, 2], sr=16000, seconds=0.3)
    rc = main(["codec", "fit", "--config", "configs/codec/tiny.yaml", "--trainer.devices", "2", "--trainer.strategy",
               "fsdp", "--data.shards", str(tmp_path / "shards"), "--data.val_shards", "null",
               "--trainer.default_root_dir", str(tmp_path / "run")])
    assert rc == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip() and not line.startswith("Seed set")]
    assert len(err) == 1 and err[0].startswith("codeclm: error: --trainer.strategy fsdp cannot train the codec"), err


@pytest.mark.ddp
@pytest.mark.slow
def test_tiny_codec_trains_on_two_processes_from_the_command_line(tmp_path):
    make_shards(tmp_path / "shards", [4, 4], sr=16000, seconds=1.0)
    run = tmp_path / "run"
    argv = [sys.executable, "-m", "launch.cli", "codec", "fit", "--config", str(REPO / "configs/codec/tiny.yaml"),
            "--trainer.devices", "2", "--trainer.accelerator", "cpu", "--trainer.max_steps", "4",
            "--trainer.default_root_dir", str(run), "--trainer.logger.init_args.save_dir", str(run),
            "--trainer.enable_progress_bar", "false", "--data.shards", str(tmp_path / "shards"),
            "--data.val_shards", "null", "--data.num_workers", "0", "--data.loader.batch_size", "2"]
    out = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "find_unused_parameters" not in out.stderr
    assert "codec training on 2 processes: strategy auto -> codec.ddp.GANDDPStrategy" in out.stderr
    assert "Starting with 2 processes" in out.stderr + out.stdout
    assert list(run.glob("*/*/checkpoints/last.ckpt")), sorted(str(p) for p in run.rglob("*"))
