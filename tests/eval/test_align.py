"""Delay estimation: sample-exact for a codec that keeps the waveform, close for one that makes its own phase."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from codec.evaluation.align import align, estimate_delay
from codec.model.fourier import ISTFTHead

SR = 16000


def syllables(seconds: float = 2.0, seed: int = 0) -> np.ndarray:
    """A harmonic voice (f0 wandering around 130 Hz) switched on and off at syllable rate."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    f0 = 130 + 20 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / SR
    voice = sum(np.sin(k * phase) / k for k in range(1, 25))
    gates = np.repeat(rng.random(int(seconds * 5)) > 0.35, SR // 5)[: t.size]
    env = np.convolve(gates.astype(float), np.hanning(400) / 200, mode="same")
    return (0.2 * voice * env).astype(np.float32)


def new_phase(x: np.ndarray, seed: int) -> np.ndarray:
    """The same short-time magnitudes with random phases: what a vocoder-style decoder can output."""
    n = (x.size // 160) * 160
    head = ISTFTHead(640, 160)
    spec = head.stft(torch.from_numpy(x[:n])[None])
    g = torch.Generator().manual_seed(seed)
    phase = torch.rand(spec.shape, generator=g) * 2 * np.pi
    return head(spec.abs().clamp_min(1e-9).log(), phase)[0].numpy()


def delayed(x: np.ndarray, d: int) -> np.ndarray:
    return np.concatenate([np.zeros(d, np.float32), x[: x.size - d]]) if d >= 0 else np.concatenate(
        [x[-d:], np.zeros(-d, np.float32)])


@pytest.mark.parametrize("d", [0, 37, 240, -90])
def test_a_waveform_codec_is_aligned_to_the_sample(d: int) -> None:
    x = syllables()
    y = 0.8 * delayed(x, d) + 0.01 * np.random.default_rng(1).standard_normal(x.size).astype(np.float32)
    assert estimate_delay(x, y, SR // 10) == d
    assert estimate_delay(x, -y, SR // 10) == d  # a polarity flip does not hide it


@pytest.mark.parametrize("seed", range(4))
def test_a_codec_that_makes_its_own_phase_is_aligned_within_8_ms(seed: int) -> None:
    x = syllables(seed=seed)
    y = new_phase(x, seed)
    waveform_only = []
    for d in (0, 120, -200):
        got = estimate_delay(x, delayed(y, d), SR // 10)
        assert abs(got - d) <= 128, (d, got)  # a third of a STOI frame
        waveform_only.append(abs(int(np.argmax(np.abs(np.correlate(delayed(y, d)[2000:4000], x[1000:5000], "valid"))))
                                 - 1000 - d))
    # the waveforms alone do not share a peak: phase-free output is why the envelope step exists
    assert max(waveform_only) > 80
    ref, out, delay = align(x, delayed(y, 120), SR // 10)
    assert ref.size == out.size and abs(delay - 120) <= 128
