"""Delay estimation and alignment of a processed signal against its reference (pure functions).

Codecs delay their output (Codec2 by ~15 ms, Opus by its look-ahead when a tool does not trim it);
metrics that compare sample by sample (SI-SDR) or frame by frame (STOI, mel distance) must see the
two signals aligned. :func:`estimate_delay` finds the lag that maximises the cross-correlation
(computed with an FFT); :func:`align` shifts the processed signal by it and cuts both to a common
length.
"""

from __future__ import annotations

import numpy as np


def estimate_delay(reference: np.ndarray, processed: np.ndarray, max_lag: int) -> int:
    """The lag ``d`` (samples, ``|d| <= max_lag``) for which ``processed[n] ~ reference[n - d]``.

    Both are 1-D. Positive ``d``: the processed signal is late. The correlation peak is taken in
    absolute value, so a polarity flip does not hide the delay.
    """
    ref = np.asarray(reference, dtype=np.float64).ravel()
    out = np.asarray(processed, dtype=np.float64).ravel()
    if ref.size == 0 or out.size == 0 or max_lag <= 0:
        return 0
    n = ref.size + out.size - 1
    size = 1 << (n - 1).bit_length()
    # corr[k] = sum_n out[n] ref[n - k]: lags 0..len(out)-1 at the start, negative lags wrap to the end
    corr = np.fft.irfft(np.fft.rfft(out, size) * np.conj(np.fft.rfft(ref, size)), size)
    pos = corr[: min(max_lag, out.size - 1) + 1]
    neg = corr[size - min(max_lag, ref.size - 1):] if ref.size > 1 else np.zeros(0)
    lags = np.concatenate([np.arange(-neg.size, 0), np.arange(pos.size)])
    values = np.abs(np.concatenate([neg, pos]))
    if not np.isfinite(values).all() or values.max() <= 0:
        return 0
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
