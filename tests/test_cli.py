"""The `codeclm` command as a user runs it: data commands, one-line errors, the quickstart."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tarfile

import numpy as np
import pytest
import soundfile as sf

from launch.cli import main
from launch.commands.quickstart_check import CollapsedCodecError, codebook_check


def test_shard_and_info_on_a_plain_folder(tmp_path, capsys):
    src = tmp_path / "audio" / "alice"
    src.mkdir(parents=True)
    for i in range(3):
        sf.write(src / f"a{i}.wav", np.zeros(1600, np.float32) + 0.1 * (i + 1), 16000)
        (src / f"a{i}.txt").write_text(f"line {i}")
    (src / "broken.wav").write_bytes(b"RIFF nothing here")
    out = tmp_path / "shards"
    assert main(["data", "shard", "--input", str(tmp_path / "audio"), "--out", str(out), "--workers", "1"]) == 0
    assert "3 samples" in capsys.readouterr().out
    with tarfile.open(out / "data-000000.tar") as tar:
        assert sorted(tar.getnames())[:2] == ["alice_a0.flac", "alice_a0.json"]
    assert main(["data", "info", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["samples"] == 3 and info["speakers"] == 1 and info["skipped"] == 1
    assert "broken.wav" in (out / "skipped.txt").read_text()


def test_user_errors_are_one_line(tmp_path, capsys):
    assert main(["data", "info", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("codeclm: error:") and "nowhere" in err[0]
    assert main(["data", "speech", "--out", str(tmp_path / "x"), "--hours", "0.001", "--voices", "xx-none"]) == 2
    assert "xx-none" in capsys.readouterr().err


def test_console_script_help_lists_the_stages():
    out = subprocess.run([sys.executable, "-m", "launch.cli", "--help"], capture_output=True, text=True, check=True).stdout
    assert "data" in out and "quickstart" in out


@pytest.mark.slow
def test_quickstart_end_to_end_and_rerun(tmp_path, capsys):
    out = tmp_path / "qs"
    args = ["quickstart", "--out", str(out), "--hours", "0.03", "--speakers", "4", "--codec-steps", "6",
            "--lm-steps-scale", "0.002", "--workers", "1", "--check", "warn"]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert "quickstart done" in first
    made = json.loads((out / "summary.json").read_text())["made"]
    for path in made.values():
        assert (tmp_path / path).exists() or __import__("pathlib").Path(path).exists(), path
    wav, sr = sf.read(out / "examples" / "original.wav")
    rec, sr2 = sf.read(next((out / "examples").glob("reconstruction-*.wav")))
    assert sr == sr2 == 16000 and len(rec) == len(wav) and np.isfinite(rec).all()
    # the language models' generations: a clone of the held-out prompt voice and a continuation
    prompt, _ = sf.read(out / "examples" / "prompt.wav")
    clone, sr3 = sf.read(out / "examples" / "clone.wav")
    cont, sr4 = sf.read(out / "examples" / "continuation.wav")
    assert sr3 == sr4 == 16000 and 0 < len(clone) <= 6 * 16000 and np.isfinite(clone).all()
    assert len(cont) >= len(prompt) + 4 * 16000 - 320, (len(cont), len(prompt))  # prompt + 4 s, to a frame
    assert f"codeclm demo --models {out}" in first  # the run folder names every model
    # six codec steps (inside the quantizer bypass) leave codebooks fitted to a barely trained
    # encoder: the check measures each level on held-out speech and names every collapsed one; by
    # default that stops the run before tokenizing, with --check warn it is reported and the run goes on
    ppl = [float(v) for v in re.search(r"code perplexity per level on \d+ held-out utterances: \[([^\]]+)\]",
                                       first).group(1).split(",")]
    check = json.loads((out / "summary.json").read_text())["check"]
    assert check["code_perplexity"] == ppl and len(ppl) == 8
    collapsed = [k for k, p in enumerate(ppl) if p < 8]
    named = [f for f in check["failures"] if "collapsed codebooks" in f]
    assert bool(named) == bool(collapsed) and ("going on (--check warn)" in first) == bool(collapsed)
    if collapsed:
        assert f"level(s) {collapsed}" in named[0]
        with pytest.raises(CollapsedCodecError, match="Not tokenizing"):
            codebook_check(out / "codec" / "export", out / "shards" / "speech-val")
    # the clone: its length bounded by what its text takes in the training data, every check named
    assert check["judge"].startswith(("Whisper", "none"))
    clone_check = check["clone"]
    assert clone_check["seconds"] == pytest.approx(len(clone) / 16000, abs=0.01)
    assert 0.45 <= clone_check["length_ratio"] <= 2.2 and 0 <= clone_check["silent_fraction"] <= 1
    # a second run reuses everything
    assert main(args) == 0
    assert "reusing" in capsys.readouterr().out
