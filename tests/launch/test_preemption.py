"""SIGTERM and SLURM's warning signal: the step finishes, one checkpoint is saved, every rank
stops at the same step, the process exits 0, and after the warning signal under SLURM the job is
requeued (a fake ``scontrol`` records the call). The resumed run continues as if never stopped."""

from __future__ import annotations

import os
import socket
import stat
import sys
from pathlib import Path

import pytest

from launch.checkpoints import read_checkpoint
from tests.launch.conftest import child_env, lm_argv, run_codeclm, steps_of


def torchrun(nproc: int = 2) -> list[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return [str(Path(sys.executable).parent / "torchrun"), "--nproc_per_node", str(nproc), "--master_addr",
            "127.0.0.1", "--master_port", str(port), "-m", "launch.cli"]


def signal_at(step: int, sig: str, rank: int) -> list[str]:
    return ["--trainer.callbacks+=tests.resume_helpers.SignalAtStep", "--trainer.callbacks.step", str(step),
            "--trainer.callbacks.signal", sig, "--trainer.callbacks.rank", str(rank)]


DDP = ["--trainer.devices", "2", "--trainer.strategy", "ddp"]


def ckpts(root: Path) -> list[Path]:
    return sorted(root.rglob("*.ckpt"))


@pytest.mark.ddp
@pytest.mark.slow
def test_sigterm_to_one_rank_stops_both_at_the_same_step_with_one_checkpoint(speech_token_shards, tmp_path):
    ref, run = tmp_path / "ref", tmp_path / "run"
    whole = run_codeclm(lm_argv(speech_token_shards, ref, 6, *DDP), launcher=torchrun())
    assert whole.returncode == 0, whole.stderr[-3000:]

    stopped = run_codeclm(lm_argv(speech_token_shards, run, 6, *DDP, *signal_at(3, "SIGTERM", rank=1)),
                          launcher=torchrun())
    assert stopped.returncode == 0, stopped.stderr[-3000:]
    assert [s for s, _, _ in steps_of(run, 0)] == [s for s, _, _ in steps_of(run, 1)] == [1, 2, 3]
    assert ckpts(run) == [run / "checkpoints" / "last.ckpt"]
    assert read_checkpoint(run / "checkpoints" / "last.ckpt")["global_step"] == 3
    assert "SIGTERM received: saved" in stopped.stderr

    resumed = run_codeclm(lm_argv(speech_token_shards, run, 6, *DDP, "--ckpt_path", "auto"), launcher=torchrun())
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    for rank in (0, 1):  # each rank's batches and losses, as in the run never stopped
        assert steps_of(run, rank) == steps_of(ref, rank)


@pytest.fixture
def fake_scontrol(tmp_path):
    bin_dir, calls = tmp_path / "bin", tmp_path / "scontrol-calls"
    bin_dir.mkdir()
    script = bin_dir / "scontrol"
    script.write_text(f"#!/bin/sh\necho \"$@\" >> {calls}\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return bin_dir, calls


@pytest.mark.parametrize("sig,requeued", [("SIGUSR1", True), ("SIGTERM", False)])
def test_warning_signal_requeues_the_slurm_job(speech_token_shards, tmp_path, fake_scontrol, sig, requeued):
    bin_dir, calls = fake_scontrol
    env = child_env(SLURM_JOB_ID="4242", PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    out = run_codeclm(lm_argv(speech_token_shards, tmp_path, 10, *signal_at(2, sig, rank=0)), env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    assert [s for s, _, _ in steps_of(tmp_path)] == [1, 2]
    assert read_checkpoint(tmp_path / "checkpoints" / "last.ckpt")["global_step"] == 2
    if requeued:
        assert calls.read_text().split() == ["requeue", "4242"]
        assert "requeued SLURM job 4242" in out.stderr
    else:
        assert not calls.exists()


FSDP = ["--trainer.devices", "2", "--config", str(Path(__file__).resolve().parents[2] / "configs/trainer/fsdp.yaml")]


@pytest.mark.ddp
@pytest.mark.slow
def test_fsdp_trains_like_ddp_and_resumes_from_its_checkpoint(speech_token_shards, tmp_path):
    import torch

    ddp, fsdp = tmp_path / "ddp", tmp_path / "fsdp"
    two_layers = ["--model.model.init_args.cfg.layers", "2"]
    ref = run_codeclm(lm_argv(speech_token_shards, ddp, 5, *DDP, *two_layers), launcher=torchrun())
    assert ref.returncode == 0, ref.stderr[-3000:]
    first = run_codeclm(lm_argv(speech_token_shards, fsdp, 3, *FSDP, *two_layers, *signal_at(3, "SIGTERM", 0)),
                        launcher=torchrun())
    assert first.returncode == 0, first.stderr[-3000:]
    assert ckpts(fsdp) == [fsdp / "checkpoints" / "last.ckpt"]
    resumed = run_codeclm(lm_argv(speech_token_shards, fsdp, 5, *FSDP, *two_layers, "--ckpt_path", "auto"),
                          launcher=torchrun())
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    for rank in (0, 1):
        want, got = steps_of(ddp, rank), steps_of(fsdp, rank)
        assert [(s, k) for s, k, _ in got] == [(s, k) for s, k, _ in want]  # the same batches, resumed included
        assert got[-1][2] == pytest.approx(want[-1][2], rel=1e-4)
    a = read_checkpoint(ddp / "checkpoints" / "last.ckpt")["state_dict"]
    b = read_checkpoint(fsdp / "checkpoints" / "last.ckpt")["state_dict"]
    assert a.keys() == b.keys()
    for name in a:  # full (unsharded) weights, equal to DDP's up to reduction order
        if isinstance(a[name], torch.Tensor):
            assert torch.allclose(a[name], b[name], atol=1e-5), name
        else:  # the stage's config (extra state)
            assert a[name] == b[name], name
