"""A training process killed with SIGKILL and started again with ``--ckpt_path auto`` continues
with the same batches (sample keys) and the same losses as a run that was never interrupted,
mid-epoch, with 0 and 2 loader workers; bad ``--ckpt_path`` values are one clear error."""

from __future__ import annotations

import pytest
import torch

from tests.launch.conftest import every_step_checkpoints, lm_argv, run_codeclm, steps_of


@pytest.mark.slow
@pytest.mark.parametrize("workers", [0, 2])
def test_sigkill_then_auto_resume_equals_the_uninterrupted_run(speech_token_shards, tmp_path, workers):
    ref, run = tmp_path / "ref", tmp_path / "run"
    done = run_codeclm(lm_argv(speech_token_shards, ref, 9, workers=workers))
    assert done.returncode == 0, done.stderr[-3000:]
    expected = steps_of(ref)
    assert [s for s, _, _ in expected] == list(range(1, 10))

    # epochs are 6 batches long: killed after step 4 (mid-epoch), the resumed run crosses into epoch 1
    killed = run_codeclm(lm_argv(speech_token_shards, run, 9, *every_step_checkpoints(run),
                                 "--trainer.callbacks+=tests.resume_helpers.KillAfterCheckpoint",
                                 "--trainer.callbacks.step", "4", workers=workers))
    assert killed.returncode == -9, killed.stderr[-3000:]
    assert [s for s, _, _ in steps_of(run)] == [1, 2, 3, 4]

    resumed = run_codeclm(lm_argv(speech_token_shards, run, 9, "--ckpt_path", "auto", workers=workers))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming from {run / 'ckpt' / 'step=4.ckpt'} (step 4" in resumed.stderr
    assert steps_of(run) == expected  # keys and losses, step by step


def test_auto_on_a_new_run_starts_fresh_and_bad_paths_are_one_line(speech_token_shards, tmp_path):
    fresh = run_codeclm(lm_argv(speech_token_shards, tmp_path / "new", 1, "--ckpt_path", "auto"))
    assert fresh.returncode == 0, fresh.stderr[-3000:]
    assert "no checkpoint of this model under" in fresh.stderr and "starting a new run" in fresh.stderr

    torch.save({"state_dict": {"codec.encoder.weight": torch.zeros(3)}, "global_step": 5}, tmp_path / "codec.ckpt")
    truncated = tmp_path / "cut.ckpt"
    truncated.write_bytes((tmp_path / "codec.ckpt").read_bytes()[:300])
    for path, message in [(tmp_path / "codec.ckpt", "is a checkpoint of another model"),
                          (truncated, "not a complete PyTorch checkpoint"), (tmp_path / "absent.ckpt", "not found")]:
        out = run_codeclm(lm_argv(speech_token_shards, tmp_path / "bad", 2, "--ckpt_path", str(path)))
        assert out.returncode == 2, out.stderr[-3000:]
        last = out.stderr.strip().splitlines()[-1]
        assert last.startswith("codeclm: error: ") and message in last and str(path) in last
        assert "Traceback" not in out.stderr
