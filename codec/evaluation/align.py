"""Delay estimation and alignment of a processed signal against its reference (pure functions).

Codecs delay their output (Codec2 by ~15 ms, Opus by its look-ahead when a tool does not trim it);
metrics that compare sample by sample (SI-SDR) or frame by frame (STOI, mel distance) must see the
two signals aligned. :func:`estimate_delay` finds the lag from the energy envelopes, then refines it
on the waveforms (both cross-correlations by FFT); :func:`align` shifts the processed signal by it
and cuts both to a common length.
"""

from __future__ import annotations

import numpy as np


def _correlation_lags(ref: np.ndarray, out: np.ndarray, max_lag: int) -> tuple[np.ndarray, np.ndarray]:
    """``(lags, corr)`` for ``|lag| <= max_lag``: ``corr[lag] = sum_n out[n] ref[n - lag]`` (by FFT)."""
    n = ref.size + out.size - 1
    size = 1 << (n - 1).bit_length()
    corr = np.fft.irfft(np.fft.rfft(out, size) * np.conj(np.fft.rfft(ref, size)), size)
    pos = corr[: min(max_lag, out.size - 1) + 1]  # lags 0.. at the start, negative lags wrap to the end
    neg = corr[size - min(max_lag, ref.size - 1):] if ref.size > 1 and max_lag > 0 else np.zeros(0)
    return np.concatenate([np.arange(-neg.size, 0), np.arange(pos.size)]), np.concatenate([neg, pos])


def envelope(x: np.ndarray, width: int) -> np.ndarray:
    """Root-mean-square over ``width``-sample windows (same length as ``x``), mean removed."""
    power = np.convolve(np.square(x), np.ones(width) / width, mode="same")
    env = np.sqrt(np.maximum(power, 0.0))
    return env - env.mean()


def estimate_delay(reference: np.ndarray, processed: np.ndarray, max_lag: int, refine: int = 32,
                   window: int | None = None) -> int:
    """The lag ``d`` (samples, ``|d| <= max_lag``) for which ``processed[n] ~ reference[n - d]``.

    Both are 1-D. The lag is found in two steps: the peak of the cross-correlation of the two
    signals' short-time energy envelopes (``window``-sample windows, default ``max_lag // 10``, long
    enough to smooth over pitch periods, whose fine structure a vocoder does not keep), which a decoder that makes
    its own phase (an inverse-STFT or vocoder head, SI-SDR far below zero) still shares with the
    reference, then the peak of the waveforms' cross-correlation in absolute value (so a polarity
    flip does not hide it) within ``refine`` samples of it, which is sample-exact for a codec that
    keeps the waveform. A waveform correlation alone peaks at a random lag for the former.
    """
    ref = np.asarray(reference, dtype=np.float64).ravel()
    out = np.asarray(processed, dtype=np.float64).ravel()
    if ref.size == 0 or out.size == 0 or max_lag <= 0:
        return 0
    width = max(16, max_lag // 10) if window is None else window
    lags, corr = _correlation_lags(envelope(ref, width), envelope(out, width), max_lag)
    if not np.isfinite(corr).all() or np.abs(corr).max() <= 0:
        coarse = 0
    else:
        coarse = int(lags[int(np.argmax(corr))])
    lags, corr = _correlation_lags(ref, out, max_lag)
    values = np.abs(corr)
    near = np.abs(lags - coarse) <= refine
    if not np.isfinite(values).all() or values[near].max(initial=0.0) <= 0:
        return coarse
    values = np.where(near, values, -1.0)
    return int(lags[int(np.argmax(values))])


def align(reference: np.ndarray, processed: np.ndarray, max_lag: int) -> tuple[np.ndarray, np.ndarray, int]:
    """``(reference', processed', delay)``: ``processed`` shifted back by its delay and both cut to
    the length they share (1-D float32 arrays)."""
    ref = np.asarray(reference, dtype=np.float32).ravel()
    out = np.asarray(processed, dtype=np.float32).ravel()
    d = estimate_delay(ref, out, max_lag)
    if d > 0:
        out = out[d:]
    elif d < 0:
        ref = ref[-d:]
    n = min(ref.size, out.size)
    return ref[:n], out[:n], d
