"""Every command reads audio through the same checks (``data.audio``): a truncated wav is one
line naming the file, from ``codec encode``, ``generate clone``, ``generate continue``, the eval
clip reader and the demo's upload path alike."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from codec.export import export_codec
from launch.cli import main
from tests.codec.test_export import tiny_codec

REASON = "header declares 174000 bytes of samples but only 4956 are present"


@pytest.fixture
def truncated_wav(tmp_path):
    """A valid 16-bit wav of 87,000 samples (174,000 bytes of samples), cut to its first 5,000 bytes."""
    path = tmp_path / "prompt.wav"
    rng = np.random.default_rng(0)
    sf.write(path, (0.1 * rng.standard_normal(87_000)).astype(np.float32), 16000, subtype="PCM_16")
    data = path.read_bytes()
    assert len(data) == 44 + 174_000
    path.write_bytes(data[:5000])
    return path


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
    return str(export_codec(tiny_codec(), tmp_path_factory.mktemp("codec") / "export"))


def one_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("codeclm: error:"), err
    return err[0]


def test_codec_encode_clone_and_continue_say_the_same_line(truncated_wav, export_dir, tmp_path, capsys):
    missing = str(tmp_path / "missing.ckpt")  # the prompt is checked before any model is loaded
    runs = {
        "encode": ["codec", "encode", "--codec", export_dir, str(truncated_wav), str(tmp_path / "codes.npz")],
        "clone": ["generate", "clone", "--codec", export_dir, "--ar", missing, "--nar", missing, "--text-model",
                  missing, "--prompt", str(truncated_wav), "--text", "hello", "--out", str(tmp_path / "clone.wav")],
        "continue": ["generate", "continue", "--codec", export_dir, "--coarse", missing, "--fine", missing,
                     "--prompt", str(truncated_wav), "--out", str(tmp_path / "cont.wav")],
    }
    lines = {}
    for name, argv in runs.items():
        assert main(argv) == 2, name
        lines[name] = one_error(capsys)
    assert lines["encode"] == lines["clone"] == lines["continue"]
    assert str(truncated_wav) in lines["clone"] and REASON in lines["clone"]
    assert not any((tmp_path / f).exists() for f in ("codes.npz", "clone.wav", "cont.wav"))


def test_clone_from_the_console_script_has_no_traceback(truncated_wav, export_dir, tmp_path):
    missing = str(tmp_path / "missing.ckpt")
    out = subprocess.run([sys.executable, "-m", "launch.cli", "generate", "clone", "--codec", export_dir,
                          "--ar", missing, "--nar", missing, "--text-model", missing, "--prompt", str(truncated_wav),
                          "--text", "hello", "--out", str(tmp_path / "clone.wav")], capture_output=True, text=True)
    assert out.returncode != 0
    assert "Traceback" not in out.stderr and REASON in out.stderr
    assert [line for line in out.stderr.splitlines() if line.strip()] == [
        f"codeclm: error: {truncated_wav}: {REASON}"]


def test_eval_clips_and_demo_uploads_use_the_same_checks(truncated_wav):
    from data.clips import iter_clips
    from launch.demo.engine import DemoEngine, DemoError

    with pytest.raises(ValueError, match=REASON):
        list(iter_clips(str(truncated_wav)))
    with pytest.raises(DemoError, match=REASON):
        DemoEngine().prompt_audio(truncated_wav.read_bytes(), "prompt.wav")
