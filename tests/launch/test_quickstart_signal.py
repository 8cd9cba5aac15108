"""A quickstart training stage stopped by SIGTERM is not taken for finished: the run stops with one
line saying so, and the next run resumes the stage from the checkpoint the signal saved."""

from __future__ import annotations

import pytest

from launch.checkpoints import read_checkpoint
from launch.commands import lm_fit
from launch.commands.quickstart_lm import Stage, train_stage
from launch.preemption import stopped_by_signal
from launch.run_layout import RunLayout

SMALL = ["--data.loader.batch_size", "2", "--data.loader.max_frames", "40", "--data.loader.longer", "crop",
         "--data.loader.shuffle_buffer", "4", "--data.num_workers", "0",
         "--model.model.init_args.cfg.cardinality", "32", "--model.model.init_args.cfg.dim", "16",
         "--model.model.init_args.cfg.layers", "1", "--model.model.init_args.cfg.heads", "2",
         "--model.optim.warmup_steps", "1", "--trainer.enable_progress_bar", "false"]
SIGTERM_AT_2 = ["--trainer.callbacks+=tests.resume_helpers.SignalAtStep", "--trainer.callbacks.step", "2",
                "--trainer.callbacks.signal", "SIGTERM", "--trainer.callbacks.rank", "0"]


@pytest.mark.slow
def test_a_stage_stopped_by_sigterm_is_resumed_not_reused(speech_token_shards, tmp_path, monkeypatch):
    layout = RunLayout(tmp_path / "run")
    layout.tokens.parent.mkdir(parents=True)
    layout.tokens.symlink_to(speech_token_shards["tokens"])
    layout.phonemes.parent.mkdir(parents=True)
    layout.phonemes.write_bytes(speech_token_shards["phonemes"].read_bytes())
    stage = Stage("valle-nar", 4, True)
    real = lm_fit.run
    extra = [*SMALL, *SIGTERM_AT_2]
    monkeypatch.setattr(lm_fit, "run", lambda argv: real([*argv, *extra]))

    with pytest.raises(SystemExit, match="SIGTERM received: training saved .* after step 2 .* run the same command again"):
        train_stage(layout, stage, 1.0)
    ckpt = layout.stage_ckpt(stage.name)
    assert read_checkpoint(ckpt)["global_step"] == 2
    assert not (layout.stage_root(stage.name) / "DONE").exists()

    extra[:] = SMALL  # the next run: no signal
    assert train_stage(layout, stage, 1.0) == ckpt
    assert stopped_by_signal() is None
    assert read_checkpoint(ckpt)["global_step"] == 4  # resumed to the end, then marked done
    assert (layout.stage_root(stage.name) / "DONE").exists()


def test_presets_fill_what_the_command_line_left_unset():
    import argparse

    from launch.commands.quickstart import PRESETS, apply_preset, register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    a = apply_preset(parser.parse_args(["quickstart"]))
    assert (a.out, a.hours, a.speakers, a.codec_steps, a.lm_steps_scale) == ("runs/quickstart", 1.0, 48, None, 1.0)
    a = apply_preset(parser.parse_args(["quickstart", "--preset", "long", "--speakers", "12"]))
    assert (a.out, a.hours, a.speakers, a.codec_steps, a.lm_steps_scale) == ("runs/long", 3.0, 12, 6000, 6.0)
    assert set(PRESETS) == {"quickstart", "long"}
