"""Audio I/O and signal helpers: pure functions over numpy arrays and tensors.

Audio arrays are float32 ``[C, T]`` in [-1, 1]. Everything that reads untrusted bytes checks them
before allocating: a header claiming more frames than the bytes can hold, an empty or non-finite
signal, all end in :class:`AudioError` with a reason code the loaders count.
"""

from __future__ import annotations

import io
import math
import struct
from pathlib import Path
from typing import BinaryIO

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

# Largest decoded clip accepted from any input (samples per channel x channels): 30 min at 48 kHz.
MAX_SAMPLES = 48_000 * 60 * 30
# Compressed formats never expand beyond this many decoded bytes per input byte in practice.
_MAX_EXPANSION = {"FLAC": 40, "OGG": 200, "MP3": 200}


class AudioError(ValueError):
    """Bad audio input. ``reason`` is a short code ("unreadable", "empty", "nonfinite", ...)."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def _check_info(info: sf._SoundFileInfo, nbytes: int | None, where: str, max_samples: int) -> None:
    if info.channels < 1 or info.samplerate < 1:
        raise AudioError("bad_header", f"{where}: header has {info.channels} channels at {info.samplerate} Hz")
    total = info.frames * info.channels
    if total <= 0:
        raise AudioError("empty", f"{where}: no audio frames")
    if total > max_samples:
        raise AudioError("too_long", f"{where}: {info.frames} frames x {info.channels} ch exceeds the {max_samples} sample cap")
    if nbytes is not None:
        fmt = info.format.upper()
        if fmt in ("WAV", "AIFF", "W64", "RF64") and info.subtype.upper().startswith(("PCM", "FLOAT", "DOUBLE")):
            width = {"PCM_U8": 1, "PCM_S8": 1, "PCM_16": 2, "PCM_24": 3, "PCM_32": 4, "FLOAT": 4, "DOUBLE": 8}.get(
                info.subtype.upper(), 4
            )
            if total * width > nbytes + 1024:
                raise AudioError(
                    "truncated", f"{where}: header claims {total * width} bytes of samples but the input has {nbytes}"
                )
        elif total * 2 > nbytes * _MAX_EXPANSION.get(fmt, 400):
            raise AudioError("bad_header", f"{where}: header claims {info.frames} frames, implausible for {nbytes} bytes")


def check_riff(f: BinaryIO, size: int, where: str) -> None:
    """Catch what libsndfile lets through: zero bytes, and a WAV whose data chunk is cut short
    (libsndfile quietly shortens it to the bytes present, so a truncated file would pass as a
    shorter clip whose transcript no longer matches)."""
    if size == 0:
        raise AudioError("empty", f"{where}: zero bytes")
    f.seek(0)
    head = f.read(12)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return
    pos = 12
    while pos + 8 <= size:
        f.seek(pos)
        cid, n = struct.unpack("<4sI", f.read(8))
        if cid == b"data":
            present = size - pos - 8
            # 0 and 0xFFFFFFFF mark streamed WAVs of unknown length; a few bytes short is harmless
            if n not in (0, 0xFFFFFFFF) and n > present + max(1024, n // 100):
                raise AudioError("truncated", f"{where}: header declares {n} bytes of samples but only {present} are present")
            return
        pos += 8 + n + (n & 1)


def _finish(wav: np.ndarray, where: str) -> np.ndarray:
    wav = np.ascontiguousarray(wav.T, dtype=np.float32)  # soundfile gives [T, C]
    if wav.shape[-1] == 0:
        raise AudioError("empty", f"{where}: decoded to zero samples")
    if not np.isfinite(wav).all():
        raise AudioError("nonfinite", f"{where}: audio contains NaN or Inf")
    return wav


def read_audio(path: str | Path, max_samples: int = MAX_SAMPLES) -> tuple[np.ndarray, int]:
    """Read an audio file to ``([C, T] float32, sample_rate)``; raise :class:`AudioError` if bad."""
    where = str(path)
    try:
        size = Path(path).stat().st_size
        with open(path, "rb") as f:
            check_riff(f, size, where)
    except OSError as e:
        raise AudioError("unreadable", f"{where}: cannot open ({e.strerror or e})") from None
    try:
        info = sf.info(where)
    except Exception as e:  # libsndfile says what it could not parse
        raise AudioError("unreadable", f"{where}: not readable audio ({e})") from None
    _check_info(info, size, where, max_samples)
    try:
        wav, sr = sf.read(where, dtype="float32", always_2d=True)
    except Exception as e:
        raise AudioError("unreadable", f"{where}: decoding failed ({e})") from None
    return _finish(wav, where), sr


def decode_audio(data: bytes, where: str = "<bytes>", max_samples: int = MAX_SAMPLES) -> tuple[np.ndarray, int]:
    """Decode encoded audio bytes (flac, wav, ogg, ...) to ``([C, T] float32, sample_rate)``."""
    check_riff(io.BytesIO(data), len(data), where)
    try:
        with sf.SoundFile(io.BytesIO(data)) as f:
            info = sf._SoundFileInfo.__new__(sf._SoundFileInfo)
            info.frames, info.channels, info.samplerate = f.frames, f.channels, f.samplerate
            info.format, info.subtype = f.format, f.subtype
            _check_info(info, len(data), where, max_samples)
            wav = f.read(dtype="float32", always_2d=True)
            sr = f.samplerate
    except AudioError:
        raise
    except Exception as e:
        raise AudioError("unreadable", f"{where}: not decodable audio ({e})") from None
    return _finish(wav, where), sr


def encode_flac(wav: np.ndarray, sample_rate: int) -> bytes:
    """Encode ``[C, T]`` float audio as 16-bit FLAC bytes."""
    buf = io.BytesIO()
    sf.write(buf, np.clip(wav, -1.0, 1.0).T, sample_rate, format="FLAC", subtype="PCM_16")
    return buf.getvalue()


def resample(wav: torch.Tensor, orig_sr: int, new_sr: int) -> torch.Tensor:
    """Band-limited resampling along the last axis (torchaudio's windowed sinc)."""
    if orig_sr == new_sr:
        return wav
    g = math.gcd(orig_sr, new_sr)
    return AF.resample(wav, orig_sr // g, new_sr // g)


def to_channels(wav: torch.Tensor, channels: int) -> torch.Tensor:
    """``[C, T]`` to ``[channels, T]``: average down to mono, repeat mono up."""
    c = wav.shape[0]
    if c == channels:
        return wav
    if channels == 1:
        return wav.mean(dim=0, keepdim=True)
    if c == 1:
        return wav.expand(channels, -1).clone()
    raise ValueError(f"cannot map {c} channels to {channels}")


def loudness_normalize(wav: torch.Tensor, target_db: float = -23.0, eps: float = 1e-8) -> torch.Tensor:
    """Scale to a target RMS level in dBFS (a simple, robust loudness proxy); peaks kept below 1."""
    rms = wav.pow(2).mean().sqrt()
    if rms < eps:
        return wav
    gain = 10 ** (target_db / 20) / rms
    out = wav * gain
    peak = out.abs().max()
    return out / peak * 0.99 if peak > 0.99 else out


def random_crop(
    wav: torch.Tensor, length: int, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, int]:
    """Crop ``[C, T]`` to ``length`` samples at a random offset, zero-padding short clips.

    Returns the crop and the number of real (non-padding) samples in it.
    """
    t = wav.shape[-1]
    if t >= length:
        start = int(torch.randint(0, t - length + 1, (1,), generator=generator)) if t > length else 0
        return wav[..., start : start + length], length
    out = wav.new_zeros(wav.shape[0], length)
    out[..., :t] = wav
    return out, t
