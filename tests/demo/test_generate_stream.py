"""``codeclm generate clone --stream`` over the tiny demo models: the wav grows chunk by chunk as
the AR decodes (first audio long before the end), has the length of the one-pass clone, and equals
it when a chunk holds the whole clone (the tiny codec is not causal: it decodes in windows of its
measured reach, which equal one pass)."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
import soundfile as sf

TEXT = "Say this in my voice, please."


def run_clone(models: dict, out, *extra: str, capsys=None) -> str:
    from launch.commands import generate_clone

    parser = argparse.ArgumentParser()
    generate_clone.register(parser.add_subparsers(dest="command"))
    empty = models["codec"].parent / "empty-run"
    empty.mkdir(exist_ok=True)
    args = parser.parse_args(["clone", "--models", str(empty), "--codec", str(models["codec"]), "--ar", str(models["ar"]),
                              "--nar", str(models["nar"]), "--text-model", str(models["phonemes"]), "--prompt",
                              str(models["prompt"]), "--text", TEXT, "--max-seconds", "1.2", "--temperature", "0.9",
                              "--top-k", "20", "--seed", "3", "--device", "cpu", "--out", str(out), *extra])
    assert args.func(args) == 0
    return capsys.readouterr().out if capsys else ""


def test_stream_writes_as_it_generates_and_matches_one_pass(demo_models, tmp_path, capsys, monkeypatch):
    one, whole, chunked = tmp_path / "one.wav", tmp_path / "whole.wav", tmp_path / "chunked.wav"
    run_clone(demo_models, one)
    ref, sr = sf.read(one, dtype="int16")
    assert sr == 16000 and len(ref) == int(1.2 * sr)

    out = run_clone(demo_models, whole, "--stream", "--chunk-frames", "500", "--nar-context", "0", capsys=capsys)
    got, _ = sf.read(whole, dtype="int16")
    assert len(got) == len(ref) and np.abs(got.astype(int) - ref.astype(int)).max() <= 1  # same codes, same audio
    # by default the NAR sees the last 150 frames (1.5 s here) of the 3 s prompt: the same AR tokens
    # and length, other upper codebooks
    default = tmp_path / "default.wav"
    run_clone(demo_models, default, "--stream", "--chunk-frames", "500")
    assert len(sf.read(default, dtype="int16")[0]) == len(ref)
    assert "codec's decoder adds" in out and "first audio after" in out

    from launch.commands import stream_out  # record what the wav held at each write

    sizes, real_write = [], stream_out.StreamWriter.write
    monkeypatch.setattr(stream_out.StreamWriter, "write",
                        lambda self, audio: (real_write(self, audio), sizes.append(self.samples))[0])
    run_clone(demo_models, chunked, "--stream", "--chunk-frames", "10")
    got, _ = sf.read(chunked, dtype="int16")
    assert len(got) == len(ref)  # the AR's tokens are the one-pass clone's: the same length
    steps = [s for s in sizes if s]
    assert len(set(steps)) > 5 and steps[0] < len(ref) / 4  # many chunks, the first early
    assert np.abs(got[: steps[0]].astype(int)).max() > 0


def test_stream_refuses_an_empty_result_and_pcm_without_stream(demo_models, tmp_path):
    from launch.commands import generate_clone

    parser = argparse.ArgumentParser()
    generate_clone.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["clone", "--codec", str(demo_models["codec"]), "--ar", str(demo_models["ar"]),
                              "--nar", str(demo_models["nar"]), "--text-model", str(demo_models["phonemes"]),
                              "--prompt", str(demo_models["prompt"]), "--text", TEXT, "--out", "-", "--device", "cpu"])
    with pytest.raises(ValueError, match="needs --stream"):
        args.func(args)


def test_continue_stream_writes_the_prompt_then_the_continuation_as_it_comes(demo_models, tmp_path, monkeypatch):
    from launch.commands import generate_continue, stream_out

    m = demo_models

    def run(out, *extra):
        parser = argparse.ArgumentParser()
        generate_continue.register(parser.add_subparsers(dest="command"))
        empty = m["codec"].parent / "empty-run"
        empty.mkdir(exist_ok=True)
        args = parser.parse_args(["continue", "--models", str(empty), "--codec", str(m["codec"]), "--coarse",
                                  str(m["coarse"]), "--fine", str(m["fine"]), "--semantic", str(m["semantic"]),
                                  "--semantic-model", str(m["semantic_model"]), "--prompt", str(m["prompt"]),
                                  "--seconds", "0.5", "--temperature", "1.0", "--seed", "5", "--device", "cpu",
                                  "--out", str(out), *extra])
        assert args.func(args) == 0

    run(tmp_path / "one.wav")
    ref, sr = sf.read(tmp_path / "one.wav", dtype="int16")
    sizes, real_write = [], stream_out.StreamWriter.write
    monkeypatch.setattr(stream_out.StreamWriter, "write",
                        lambda self, audio: (real_write(self, audio), sizes.append(self.samples))[0])
    run(tmp_path / "streamed.wav", "--stream", "--chunk-frames", "5")
    got, sr2 = sf.read(tmp_path / "streamed.wav", dtype="int16")
    assert sr == sr2 == 16000 and got.shape == ref.shape == (int(3.5 * sr),)  # the 3 s prompt and 0.5 s more
    steps = sorted(set(s for s in sizes if s))
    assert len(steps) >= 8 and steps[0] <= 3 * sr  # the prompt's audio first, then chunk after chunk
    assert np.abs(got[3 * sr:].astype(int)).max() > 0
