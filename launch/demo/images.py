"""Waveform and spectrogram pictures as PNG bytes, drawn with numpy alone.

``png_bytes(rgb [H, W, 3] uint8)`` writes a plain 8-bit RGB PNG (zlib from the standard library);
``waveform_png(wav [C, T])`` draws the min/max envelope of each pixel column;
``spectrogram_png(wav [C, T], sample_rate)`` draws the log-magnitude STFT (0 Hz at the bottom).
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

WIDTH, HEIGHT = 640, 128
BACKGROUND = (250, 250, 252)
INK = (44, 94, 168)
AXIS = (200, 200, 210)

# A dark-blue -> teal -> yellow ramp (anchor colours, linearly interpolated to 256 entries).
_ANCHORS = np.array([[13, 8, 60], [59, 40, 130], [33, 120, 142], [40, 180, 120], [180, 220, 50], [253, 231, 37]],
                    dtype=np.float64)
COLORMAP = np.stack([np.interp(np.linspace(0, 1, 256), np.linspace(0, 1, len(_ANCHORS)), _ANCHORS[:, c])
                     for c in range(3)], axis=1).round().astype(np.uint8)  # [256, 3]


def png_bytes(rgb: np.ndarray) -> bytes:
    """Encode ``rgb [H, W, 3]`` uint8 as a PNG file."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8 or min(rgb.shape[:2]) < 1:
        raise ValueError(f"png_bytes wants a non-empty [H, W, 3] uint8 array, got {rgb.shape} {rgb.dtype}")
    h, w, _ = rgb.shape

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = np.concatenate([np.zeros((h, 1), dtype=np.uint8), rgb.reshape(h, w * 3)], axis=1)  # filter 0 per row
    header = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)  # 8-bit RGB, no interlace
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows.tobytes(), 6))
            + chunk(b"IEND", b""))


def _mono(wav: np.ndarray) -> np.ndarray:
    wav = np.asarray(wav, dtype=np.float32)
    if wav.ndim == 2:
        wav = wav.mean(axis=0)
    if wav.ndim != 1:
        raise ValueError(f"audio must be [C, T] or [T], got {wav.shape}")
    return np.nan_to_num(wav)


def waveform_image(wav: np.ndarray, width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    """``[height, width, 3]`` uint8: per column, a bar from the lowest to the highest sample."""
    x = _mono(wav)
    img = np.empty((height, width, 3), dtype=np.uint8)
    img[:] = BACKGROUND
    mid = height // 2
    img[mid] = AXIS
    if x.size == 0:
        return img
    edges = np.linspace(0, x.size, width + 1).astype(np.int64)
    edges[1:] = np.maximum(edges[1:], edges[:-1] + 1)  # at least one sample a column
    edges = np.minimum(edges, x.size)
    starts = np.minimum(edges[:-1], x.size - 1)
    lo = np.minimum.reduceat(x, starts)
    hi = np.maximum.reduceat(x, starts)
    peak = max(float(np.abs(x).max()), 1e-4)
    scale = (height / 2 - 2) / peak

    def row(v: np.ndarray) -> np.ndarray:
        return np.clip(np.round(mid - v * scale), 0, height - 1).astype(np.int64)

    top, bottom = row(hi), row(lo)
    ys = np.arange(height)[:, None]
    mask = (ys >= top[None]) & (ys <= bottom[None])  # [H, W]
    img[mask] = INK
    return img


def spectrogram(wav: np.ndarray, sample_rate: int, n_fft: int = 512, hop: int | None = None,
                max_frames: int = WIDTH) -> np.ndarray:
    """Log power (dB) ``[n_fft // 2 + 1, frames]`` of a Hann-windowed STFT; the hop grows with the
    clip so that at most ``max_frames`` frames are computed."""
    x = _mono(wav)
    if x.size < n_fft:
        x = np.pad(x, (0, n_fft - x.size))
    hop = hop or max(n_fft // 4, int(np.ceil((x.size - n_fft) / max(1, max_frames - 1))))
    count = 1 + (x.size - n_fft) // hop
    index = np.arange(n_fft)[None] + hop * np.arange(count)[:, None]  # [F, n_fft]
    frames = x[index] * np.hanning(n_fft).astype(np.float32)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2  # [F, bins]
    return (10.0 * np.log10(power + 1e-10)).T.astype(np.float32)


def spectrogram_image(wav: np.ndarray, sample_rate: int, width: int = WIDTH, height: int = HEIGHT,
                      dynamic_range: float = 80.0) -> np.ndarray:
    """``[height, width, 3]`` uint8: the spectrogram's top ``dynamic_range`` dB, low frequencies at
    the bottom, resampled (nearest) to the picture size."""
    spec = spectrogram(wav, sample_rate)  # [bins, frames]
    top = float(spec.max())
    level = np.clip((spec - (top - dynamic_range)) / dynamic_range, 0.0, 1.0)
    rows = np.linspace(spec.shape[0] - 1, 0, height).round().astype(np.int64)
    cols = np.linspace(0, spec.shape[1] - 1, width).round().astype(np.int64)
    return COLORMAP[(level[rows][:, cols] * 255).round().astype(np.int64)]


def waveform_png(wav: np.ndarray) -> bytes:
    return png_bytes(waveform_image(wav))


def spectrogram_png(wav: np.ndarray, sample_rate: int) -> bytes:
    return png_bytes(spectrogram_image(wav, sample_rate))
