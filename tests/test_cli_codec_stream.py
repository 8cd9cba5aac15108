"""``codeclm codec encode --stream`` / ``decode --stream`` on a causal codec: the same codes and the
same wav as one pass, from a file or raw PCM on stdin, to a file or raw PCM on stdout; latency and
real-time factor reported; codecs and decoders that cannot stream refused in one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from codec.codec import CodecConfig, build_codec
from codec.export import export_codec
from codec.model import SEANetConfig
from codec.quantize import RVQConfig
from launch.cli import main
from tests.codec.test_export import tiny_codec

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def causal_export(tmp_path_factory):
    torch.manual_seed(0)
    cfg = CodecConfig(16000, SEANetConfig(n_filters=4, dimension=16, ratios=(4, 4, 2), causal=True,
                                          bottleneck="lstm", bottleneck_layers=1), RVQConfig(dimension=16, n_q=4, bins=32))
    codec = build_codec(cfg).train()
    with torch.no_grad():
        codec(torch.randn(4, 1, 16000) * 0.3)
    return str(export_codec(codec.eval(), tmp_path_factory.mktemp("causal") / "export"))


@pytest.fixture
def wav_file(tmp_path):
    rng = np.random.default_rng(0)
    t = np.arange(16000 * 7 // 10 + 13) / 16000  # not a whole number of frames
    x = 0.3 * np.sin(2 * np.pi * 220 * t * (1 + t)) + 0.05 * rng.standard_normal(t.size)
    path = tmp_path / "in.wav"
    sf.write(path, x.astype(np.float32), 16000, subtype="PCM_16")
    return path


def read_npz(path):
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def test_stream_encode_and_decode_equal_one_pass(causal_export, wav_file, tmp_path, capsys):
    one, streamed = tmp_path / "one.npz", tmp_path / "streamed.npz"
    assert main(["codec", "encode", "--codec", causal_export, str(wav_file), str(one)]) == 0
    assert main(["codec", "encode", "--codec", causal_export, str(wav_file), str(streamed), "--stream",
                 "--chunk-ms", "13"]) == 0
    out = capsys.readouterr().out
    assert "algorithmic latency 2 ms (one 32-sample frame)" in out and "real-time factor" in out
    a, b = read_npz(one), read_npz(streamed)
    assert np.array_equal(a["codes"], b["codes"]) and int(a["num_samples"]) == int(b["num_samples"]) == 11213
    assert len(np.unique(a["codes"][0])) > 3

    wav_one, wav_streamed = tmp_path / "one.wav", tmp_path / "streamed.wav"
    assert main(["codec", "decode", "--codec", causal_export, str(one), str(wav_one)]) == 0
    assert main(["codec", "decode", "--codec", causal_export, str(one), str(wav_streamed), "--stream",
                 "--chunk-frames", "3"]) == 0
    x, sr = sf.read(wav_one, dtype="int16")
    y, sr2 = sf.read(wav_streamed, dtype="int16")
    assert sr == sr2 == 16000 and len(x) == len(y) == 11213
    assert np.abs(x.astype(int) - y.astype(int)).max() <= 1  # float32 within 1e-5, then 16-bit rounding
    assert np.abs(x).max() > 100


def test_stream_through_stdin_and_stdout(causal_export, wav_file, tmp_path):
    pcm, _ = sf.read(wav_file, dtype="int16")
    env = {"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    codes = tmp_path / "stdin.npz"
    cli = [sys.executable, "-m", "launch.cli", "codec"]
    r = subprocess.run([*cli, "encode", "--codec", causal_export, "-", str(codes), "--stream"],
                       input=pcm.astype("<i2").tobytes(), capture_output=True, env=env, cwd=REPO)
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    one = tmp_path / "one.npz"
    assert main(["codec", "encode", "--codec", causal_export, str(wav_file), str(one)]) == 0
    assert np.array_equal(read_npz(codes)["codes"], read_npz(one)["codes"])

    r = subprocess.run([*cli, "decode", "--codec", causal_export, str(one), "-", "--stream"],
                       capture_output=True, env=env, cwd=REPO)
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    assert b"real-time factor" in r.stderr
    raw = np.frombuffer(r.stdout, "<i2")
    whole = tmp_path / "whole.wav"
    assert main(["codec", "decode", "--codec", causal_export, str(one), str(whole)]) == 0
    ref, _ = sf.read(whole, dtype="int16")
    assert len(raw) == len(ref) == len(pcm)
    assert np.abs(raw.astype(int) - ref.astype(int)).max() <= 1


def test_codecs_that_cannot_stream_are_refused_in_one_line(wav_file, tmp_path, capsys):
    export = str(export_codec(tiny_codec(), tmp_path / "noncausal"))
    assert main(["codec", "encode", "--codec", export, str(wav_file), str(tmp_path / "c.npz"), "--stream"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot stream" in err[0] and "causal" in err[0]
    assert main(["codec", "encode", "--codec", export, "-", str(tmp_path / "c.npz")]) == 2
    assert "needs --stream" in capsys.readouterr().err
