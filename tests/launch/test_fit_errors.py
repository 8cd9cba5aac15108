"""``codeclm codec fit`` / ``lm fit`` with shard options that name nothing: one line naming the
option and the path, before any model is built."""

from __future__ import annotations

import pytest

from launch.cli import main
from tests.conftest import make_shards


def one_error_line(capsys) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip() and not line.startswith("Seed set")]
    assert len(err) == 1, err
    assert err[0].startswith("codeclm: error:") and "Traceback" not in err[0]
    return err[0]


@pytest.mark.parametrize("command,config", [("codec", "configs/codec/tiny.yaml"), ("lm", "configs/lm/coarse-tiny.yaml")])
def test_missing_training_shards_are_one_line(tmp_path, capsys, command, config):
    missing = tmp_path / "does" / "not" / "exist"
    rc = main([command, "fit", "--config", config, "--data.shards", str(missing), "--data.val_shards", "null",
               "--trainer.default_root_dir", str(tmp_path / "run")])
    assert rc == 2
    line = one_error_line(capsys)
    assert str(missing) in line and "--data.shards" in line and "shard folder" in line
    assert not (tmp_path / "run").exists()  # nothing was built or written


def test_missing_validation_shards_name_their_option(tmp_path, capsys):
    make_shards(tmp_path / "shards", [2], sr=16000, seconds=0.3)
    rc = main(["codec", "fit", "--config", "configs/codec/tiny.yaml", "--data.shards", str(tmp_path / "shards"),
               "--data.val_shards", str(tmp_path / "val"), "--trainer.default_root_dir", str(tmp_path / "run")])
    assert rc == 2
    line = one_error_line(capsys)
    assert "--data.val_shards" in line and str(tmp_path / "val") in line and "null" in line
