"""The demo's pictures: PNG bytes that decode back to the array drawn, a waveform whose bars follow
the signal, a spectrogram whose brightest row sits at the tone's frequency."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest

from launch.demo.images import (HEIGHT, WIDTH, png_bytes, spectrogram, spectrogram_image, waveform_image,
                                waveform_png)


def decode_png(data: bytes) -> np.ndarray:
    """A strict reader for the PNGs ``png_bytes`` writes (8-bit RGB, filter 0): checks the
    signature and every chunk's CRC, returns ``[H, W, 3]`` uint8."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, {}
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF, kind
        chunks.setdefault(kind, b"")
        chunks[kind] += body
        pos += 12 + length
    assert pos == len(data) and b"IEND" in chunks
    w, h, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", chunks[b"IHDR"])
    assert (depth, color, interlace) == (8, 2, 0)
    rows = np.frombuffer(zlib.decompress(chunks[b"IDAT"]), dtype=np.uint8).reshape(h, 1 + 3 * w)
    assert (rows[:, 0] == 0).all()  # filter type 0 on every row
    return rows[:, 1:].reshape(h, w, 3)


def test_png_round_trip():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (7, 13, 3), dtype=np.uint8)
    assert np.array_equal(decode_png(png_bytes(img)), img)
    with pytest.raises(ValueError, match="uint8"):
        png_bytes(img.astype(np.float32))


def test_waveform_bars_follow_the_signal():
    sr = 8000
    t = np.arange(sr) / sr
    wav = (0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)  # a period (8 samples) within each column
    wav[sr // 2:] = 0.0  # second half silent
    img = decode_png(waveform_png(wav[None]))
    assert img.shape == (HEIGHT, WIDTH, 3)
    ink = (img != img[0, 0]).any(axis=2)  # not background
    height = ink.sum(axis=0)  # inked pixels per column
    assert height[: WIDTH // 2 - 2].min() > HEIGHT * 0.8  # loud half: bars span nearly the full height
    assert height[WIDTH // 2 + 2:].max() <= 2  # silent half: the centre line only
    silence = waveform_image(np.zeros((1, 100), dtype=np.float32))
    assert (silence != silence[0, 0]).any(axis=2).sum() == WIDTH  # just the axis


def test_spectrogram_shows_the_tone_at_its_frequency():
    sr = 16000
    t = np.arange(2 * sr) / sr
    wav = np.sin(2 * np.pi * 2000 * t).astype(np.float32)[None]
    spec = spectrogram(wav, sr)
    assert spec.shape[0] == 257 and 2 <= spec.shape[1] <= WIDTH
    assert abs(int(spec.mean(axis=1).argmax()) - 2000 * 512 // sr) <= 1  # the 2 kHz bin
    img = spectrogram_image(wav, sr).astype(np.int64).sum(axis=2)  # brightness [H, W]
    row = int(img.mean(axis=1).argmax())
    expected = round((1 - 2000 / (sr / 2)) * (HEIGHT - 1))  # 0 Hz at the bottom row
    assert abs(row - expected) <= 1
    tiny = spectrogram_image(np.zeros((1, 10), dtype=np.float32), sr)  # shorter than one window
    assert tiny.shape == (HEIGHT, WIDTH, 3)
