"""Checkpoint files under kills and bad input: a kill during the write leaves the previous
checkpoint whole; resumption picks the newest complete checkpoint and passes over the rest; a
pickle payload is refused without running; a checkpoint of another model is one clear message."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from launch.checkpoints import (CheckpointError, SafeCheckpointIO, atomic_torch_save, check_checkpoint,
                                check_state_keys, checkpoint_candidates, find_resume_checkpoint, read_checkpoint)

REPO = Path(__file__).resolve().parents[2]


def ckpt(step: int) -> dict:
    return {"state_dict": {"w": torch.full((64, 64), float(step))}, "global_step": step, "epoch": 0}


def test_a_kill_during_the_write_leaves_the_previous_checkpoint_whole(tmp_path):
    target = tmp_path / "last.ckpt"
    atomic_torch_save(ckpt(1), target)
    before = target.read_bytes()
    ready = tmp_path / "half-written"
    script = textwrap.dedent(f"""
        import io, time, torch
        from pathlib import Path
        import launch.checkpoints as c
        real = torch.save
        def stalled(obj, f):  # writes half the bytes, then hangs: the kill comes mid-write
            buf = io.BytesIO(); real(obj, buf); data = buf.getvalue()
            f.write(data[: len(data) // 2]); f.flush()
            Path({str(ready)!r}).touch()
            time.sleep(60)
        torch.save = stalled
        c.atomic_torch_save({{"state_dict": {{"w": torch.zeros(512, 512)}}, "global_step": 2}}, {str(target)!r})
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=REPO)
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert proc.poll() is None, "the writer exited early"
            assert time.monotonic() < deadline
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(30)
    assert target.read_bytes() == before  # the old checkpoint, untouched
    check_checkpoint(target)
    leftovers = [p for p in tmp_path.iterdir() if p != target and p != ready]
    assert len(leftovers) == 1 and leftovers[0].name.startswith(".last.ckpt.tmp-")
    assert checkpoint_candidates([tmp_path]) == [target.resolve()]  # the partial file is never a candidate
    assert read_checkpoint(target)["global_step"] == 1


def test_newest_complete_checkpoint_is_chosen_and_the_others_are_named(tmp_path, caplog):
    run = tmp_path / "run"
    good_old, good_new = run / "v0" / "step=2.ckpt", run / "v1" / "step=4.ckpt"
    atomic_torch_save(ckpt(2), good_old)
    atomic_torch_save(ckpt(4), good_new)
    truncated = run / "v1" / "step=6.ckpt"
    data = good_new.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    junk = run / "v1" / "last.ckpt"
    junk.write_bytes(b"not a checkpoint")
    debug = run / "v1" / "nonfinite-step=7.ckpt"
    atomic_torch_save(ckpt(7), debug)
    now = time.time()
    for i, p in enumerate([good_old, good_new, truncated, junk, debug]):
        os.utime(p, (now + i, now + i))
    with caplog.at_level(logging.WARNING, logger="codeclm.train"):
        found = find_resume_checkpoint([run])
    assert found == good_new.resolve()
    passed_over = " ".join(r.getMessage() for r in caplog.records)
    assert str(truncated) in passed_over and str(junk) in passed_over and "nonfinite" not in passed_over
    assert find_resume_checkpoint([tmp_path / "absent"]) is None


@pytest.mark.parametrize("damage,message", [
    (lambda p: p.write_bytes(b""), "empty"),
    (lambda p: p.write_bytes(p.read_bytes()[:-200]), "not a complete PyTorch checkpoint"),
    (lambda p: p.unlink(), "not found"),
])
def test_damaged_checkpoints_are_one_clear_error(tmp_path, damage, message):
    path = atomic_torch_save(ckpt(1), tmp_path / "x.ckpt")
    damage(path)
    with pytest.raises(CheckpointError, match=message):
        read_checkpoint(path)


def test_flipped_bytes_fail_the_checksum(tmp_path):
    path = atomic_torch_save(ckpt(3), tmp_path / "x.ckpt")
    data = bytearray(path.read_bytes())
    start = data.find(b"\x00\x00\x40\x40")  # inside the float tensor of 3.0s
    assert start > 0
    data[start:start + 4] = b"\x00\x00\x80\x40"
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="checksum"):
        check_checkpoint(path)


class Payload:
    def __init__(self, canary: str) -> None:
        self.canary = canary

    def __reduce__(self):
        return (os.system, (f"touch {self.canary}",))


def test_a_pickle_payload_is_refused_without_running(tmp_path):
    canary = tmp_path / "payload-ran"
    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": Payload(str(canary))}, evil)
    with pytest.raises(CheckpointError, match="refused: it holds the Python object .*system"):
        read_checkpoint(evil)
    with pytest.raises(CheckpointError, match="refused"):
        SafeCheckpointIO().load_checkpoint(evil, weights_only=False)
    assert not canary.exists()


def test_a_checkpoint_of_another_model_is_named_as_such():
    lm = torch.nn.Sequential(torch.nn.Linear(4, 4))
    other = {"state_dict": {"codec.encoder.weight": torch.zeros(2)}}
    with pytest.raises(CheckpointError, match=r"another model .*\[.codec.\]\): 2 weights of this model are absent \(e.g. 0.bias\); 1 are not"):
        check_state_keys(lm, other, "codec.ckpt")
    resized = {"state_dict": {"0.weight": torch.zeros(8, 4), "0.bias": torch.zeros(4)}}
    with pytest.raises(CheckpointError, match=r"differ in shape .*0.weight: \(8, 4\)"):
        check_state_keys(lm, resized)
    check_state_keys(lm, {"state_dict": lm.state_dict()})


def test_safe_io_blanks_secrets_and_loads_what_it_wrote(tmp_path):
    from launch.secrets import Redactor

    secret = "sk-canary-0123456789"
    io = SafeCheckpointIO(Redactor([secret]).obj)
    state = {"state_dict": {"w": torch.ones(3)}, "hyper_parameters": {"url": f"pipe:curl -H {secret} x",
                                                                     "api_key": "another-secret-value"}}
    io.save_checkpoint(state, tmp_path / "a.ckpt")
    raw = (tmp_path / "a.ckpt").read_bytes()
    assert secret.encode() not in raw and b"another-secret-value" not in raw
    back = io.load_checkpoint(tmp_path / "a.ckpt")
    assert torch.equal(back["state_dict"]["w"], torch.ones(3))
    assert back["hyper_parameters"] == {"url": "pipe:curl -H <redacted> x", "api_key": "<redacted>"}
    assert state["hyper_parameters"]["url"].endswith("x") and secret in state["hyper_parameters"]["url"]
