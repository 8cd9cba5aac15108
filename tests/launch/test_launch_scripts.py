"""The launch scripts run as a user runs them: the sbatch templates inside a (faked) SLURM
allocation, torchrun.sh on two local processes; run twice, the second run resumes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.launch.conftest import REPO, child_env, lm_argv, steps_of

SLURM = REPO / "launch" / "slurm"

FAKE_SRUN = """#!/usr/bin/env bash
# srun for one task on this machine: records its options, sets the task's SLURM variables
echo "$@" >> "{log}"
while [[ "$1" == --* ]]; do shift; done
export SLURM_PROCID=0 SLURM_LOCALID=0 SLURM_NODEID=0 SLURM_NTASKS=1
exec "$@"
"""


def sbatch_options(path: Path) -> list[str]:
    return [line.split(None, 1)[1].strip() for line in path.read_text().splitlines() if line.startswith("#SBATCH")]


@pytest.mark.parametrize("name", ["one-node.sbatch", "multi-node.sbatch"])
def test_templates_ask_for_the_warning_signal_and_requeue(name):
    options = sbatch_options(SLURM / name)
    assert "--signal=USR1@120" in options and "--requeue" in options
    nodes = int(next(o for o in options if o.startswith("--nodes=")).split("=")[1])
    assert (nodes == 1) == (name == "one-node.sbatch")
    per_node = {o.split("=")[0]: o.split("=")[1] for o in options if "=" in o}
    assert per_node["--ntasks-per-node"] == per_node["--gpus-per-node"]  # one task per GPU
    for script in (SLURM / name, SLURM / "srun-codeclm.sh", REPO / "launch" / "torchrun.sh"):
        assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
        assert os.access(script, os.X_OK)


def test_outside_slurm_the_template_says_so():
    out = subprocess.run(["bash", str(SLURM / "one-node.sbatch"), "lm", "fit"], cwd=REPO, env=child_env(),
                         capture_output=True, text=True)
    assert out.returncode == 2 and "not inside a SLURM allocation" in out.stderr


@pytest.mark.slow
def test_sbatch_template_trains_and_its_requeued_job_resumes_in_the_same_run_folder(speech_token_shards, tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    srun_log = tmp_path / "srun.log"
    (bin_dir / "srun").write_text(FAKE_SRUN.format(log=srun_log))
    (bin_dir / "srun").chmod(0o755)
    root = tmp_path / "run"
    env = child_env(PATH=f"{bin_dir}:{os.environ['PATH']}", SLURM_JOB_ID="77", SLURM_NTASKS_PER_NODE="1",
                    SLURM_JOB_NUM_NODES="1", SLURM_NNODES="1", SLURM_JOB_NAME="codeclm", SLURM_NODELIST="localhost",
                    SLURM_CPUS_PER_TASK="1", CODECLM=str(Path(sys.executable).parent / "codeclm"))
    csv = ["--trainer.logger", "CSVLogger", "--trainer.logger.save_dir", str(root), "--trainer.logger.name", "csv"]

    def job(steps: int, restart: str):
        return subprocess.run(["bash", str(SLURM / "one-node.sbatch"), *lm_argv(speech_token_shards, root, steps, *csv)],
                              cwd=REPO, env={**env, "SLURM_RESTART_COUNT": restart}, capture_output=True, text=True,
                              timeout=300)

    first = job(2, "0")
    assert first.returncode == 0, first.stderr[-3000:]
    assert "starting a new run" in first.stdout + first.stderr
    again = job(4, "1")  # the requeued job: the same command, the same job id
    assert again.returncode == 0, again.stderr[-3000:]
    said = again.stdout + again.stderr
    assert re.search(r"codeclm: resuming from \S+last\.ckpt \(step 2", said), said[-2000:]
    assert [s for s, _, _ in steps_of(root)] == [1, 2, 3, 4]
    assert sorted(p.name for p in (root / "csv").iterdir()) == ["slurm-77"]  # one run folder for both jobs
    calls = srun_log.read_text().splitlines()
    assert len(calls) == 2 and all("--kill-on-bad-exit=1" in c and "--ntasks-per-node=1" in c for c in calls)


@pytest.mark.ddp
@pytest.mark.slow
def test_torchrun_script_trains_on_two_processes_and_resumes(speech_token_shards, tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    env = child_env(NPROC_PER_NODE="2", MASTER_PORT=port, CODECLM_PYTHON=sys.executable)
    root = tmp_path / "run"
    run = lambda steps: subprocess.run(  # noqa: E731
        [str(REPO / "launch" / "torchrun.sh"), *lm_argv(speech_token_shards, root, steps, "--trainer.strategy", "ddp")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    first = run(2)
    assert first.returncode == 0, first.stderr[-3000:]
    second = run(3)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "codeclm: resuming from" in second.stdout + second.stderr
    for rank in (0, 1):
        assert [s for s, _, _ in steps_of(root, rank)] == [1, 2, 3]
