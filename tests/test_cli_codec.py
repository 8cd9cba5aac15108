"""``codeclm codec ...`` through the console entry point: encode, decode, export, tokenize, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile as sf
import torch

from codec.export import export_codec
from launch.cli import main
from tests.codec.test_export import fake_checkpoint, tiny_codec


@pytest.fixture(scope="module")
def codec():
    return tiny_codec()


@pytest.fixture
def export_dir(codec, tmp_path):
    return str(export_codec(codec, tmp_path / "export"))


@pytest.fixture
def wav_file(tmp_path):
    """0.3 s of a 16 kHz tone with noise, as 16-bit PCM wav."""
    t = np.arange(4800) / 16000
    rng = np.random.default_rng(0)
    x = 0.3 * np.sin(2 * np.pi * 330 * t) + 0.05 * rng.standard_normal(t.size)
    path = tmp_path / "in.wav"
    sf.write(path, x.astype(np.float32), 16000, subtype="PCM_16")
    return str(path)


def read_npz(path):
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def test_encode_then_decode(codec, export_dir, wav_file, tmp_path):
    npz, out = str(tmp_path / "codes.npz"), str(tmp_path / "out.wav")
    assert main(["codec", "encode", "--codec", export_dir, wav_file, npz, "--device", "cpu"]) == 0
    z = read_npz(npz)
    assert z["codes"].dtype == np.int16 and z["codes"].shape == (4, math.ceil(4800 / 16))
    assert str(z["codec_id"]) == codec.codec_id and int(z["num_samples"]) == 4800
    assert int(z["sample_rate"]) == 16000 and float(z["frame_rate"]) == 1000.0
    audio, _ = sf.read(wav_file, dtype="float32", always_2d=True)
    expected = codec.encode(torch.from_numpy(audio.T)[None])[0]
    assert torch.equal(torch.from_numpy(z["codes"].astype(np.int64)), expected)

    assert main(["codec", "decode", "--codec", export_dir, npz, out, "--device", "cpu"]) == 0
    wav, sr = sf.read(out, dtype="float32", always_2d=True)
    assert sr == 16000 and wav.shape == (4800, 1)
    direct = codec.decode(expected[None])[0, :, :4800].clamp(-1, 1).numpy().T
    assert np.abs(wav - direct).max() <= 1.5 / 32768  # 16-bit PCM rounding only

    assert main(["codec", "decode", "--codec", export_dir, npz, out, "--codebooks", "1"]) == 0
    assert sf.info(out).frames == 4800


def test_codebooks_and_bandwidth(export_dir, wav_file, tmp_path):
    npz = str(tmp_path / "codes.npz")
    assert main(["codec", "encode", "--codec", export_dir, wav_file, npz, "--codebooks", "3"]) == 0
    assert read_npz(npz)["codes"].shape[0] == 3
    assert main(["codec", "encode", "--codec", export_dir, wav_file, npz, "--bandwidth", "10"]) == 0
    assert read_npz(npz)["codes"].shape[0] == 2  # 5 kbps a codebook


def test_decode_at_a_bandwidth_uses_the_codebooks_that_fit(codec, export_dir, wav_file, tmp_path, capsys):
    npz, out, ref = str(tmp_path / "codes.npz"), str(tmp_path / "out.wav"), str(tmp_path / "ref.wav")
    assert main(["codec", "encode", "--codec", export_dir, wav_file, npz]) == 0  # all 4 codebooks, 20 kbps
    assert main(["codec", "decode", "--codec", export_dir, npz, out, "--bandwidth", "12"]) == 0
    assert capsys.readouterr().out.rstrip().endswith("from 2 codebooks")  # 10 kbps fits 12, 15 does not
    assert main(["codec", "decode", "--codec", export_dir, npz, ref, "--codebooks", "2"]) == 0
    assert np.array_equal(sf.read(out)[0], sf.read(ref)[0])
    assert main(["codec", "decode", "--codec", export_dir, npz, out, "--bandwidth", "2"]) == 2
    assert "below this codec's lowest rate (5 kbps" in one_error_line(capsys)


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("codeclm: error: "), err
    return err[0]


def test_a_bad_spec_is_one_line(wav_file, tmp_path, capsys):
    assert main(["codec", "encode", "--codec", "no-such-codec", wav_file, str(tmp_path / "c.npz")]) == 2
    line = one_error_line(capsys)
    assert "no-such-codec" in line and "export directory" in line and ".ckpt" in line and "encodec24k" in line
    assert not (tmp_path / "c.npz").exists()


def test_codes_of_another_codec_need_force(export_dir, wav_file, tmp_path, capsys):
    npz, out = str(tmp_path / "codes.npz"), str(tmp_path / "out.wav")
    other = str(export_codec(tiny_codec(seed=1), tmp_path / "other"))
    assert main(["codec", "encode", "--codec", export_dir, wav_file, npz]) == 0
    capsys.readouterr()
    assert main(["codec", "decode", "--codec", other, npz, out]) == 2
    assert "--force" in one_error_line(capsys)
    assert main(["codec", "decode", "--codec", other, npz, out, "--force"]) == 0
    assert sf.info(out).frames == 4800

    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    capsys.readouterr()
    assert main(["codec", "decode", "--codec", export_dir, str(tmp_path / "bad.npz"), out]) == 2
    assert "not a readable codes file" in one_error_line(capsys)


def test_export_and_tokenize_commands(codec, shard_factory, tmp_path, capsys):
    ckpt = str(fake_checkpoint(codec, tmp_path / "last.ckpt"))
    export = str(tmp_path / "exported")
    assert main(["codec", "export", ckpt, export]) == 0
    assert codec.codec_id in capsys.readouterr().out

    shards = shard_factory([2, 1])
    out = tmp_path / "tokens"
    args = ["codec", "tokenize", "--codec", export, "--shards", str(shards), "--out", str(out), "--batch-size", "2",
            "--codebooks", "2", "--device", "cpu"]
    assert main(args) == 0
    assert "3 samples" in capsys.readouterr().out
    assert sorted(p.name for p in out.glob("tokens-*.tar")) == ["tokens-000000.tar", "tokens-000001.tar"]

    assert main(["codec", "export", str(tmp_path / "missing.ckpt"), export]) == 2
    assert "not found" in one_error_line(capsys)
