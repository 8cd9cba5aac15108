"""Reference codecs run on the same clips as the codec under test.

- Opus through ``opusenc``/``opusdec`` (Debian ``opus-tools``) or ``ffmpeg`` with ``libopus``, at the
  requested bitrates (Opus goes no lower than 6 kbps);
- Codec2 at 3.2 kbps through ``c2enc``/``c2dec`` (Debian ``codec2``) on speech resampled to 8 kHz;
- EnCodec 24 kHz through the project's adapter (:mod:`codec.encodec`) when its weights are on disk
  (see :mod:`codec.evaluation.systems`).

Each external baseline is a :class:`ToolCodec`: ``process(wav [T], sr) -> wav [T'] at sr``. Finding
the tools never fails: :func:`find_opus` / :func:`find_codec2` return None with a reason, and the
report says which tool ran or that it is absent.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from codec.evaluation.metrics import _resample_np

OPUS_MIN_KBPS = 6.0
CODEC2_KBPS = 3.2
CODEC2_RATE = 8000


@dataclass(frozen=True)
class Tool:
    """An external program (or pair) found on PATH; ``description`` names it for the report."""

    kind: str  # "opusenc" | "ffmpeg" | "c2enc"
    description: str


def _version(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    lines = (out.stdout or out.stderr).strip().splitlines()
    return lines[0].strip() if lines else ""


def find_opus() -> tuple[Tool | None, str]:
    """``(tool, note)``: opus-tools first, else ffmpeg built with libopus; note says why when absent."""
    if shutil.which("opusenc") and shutil.which("opusdec"):
        return Tool("opusenc", _version(["opusenc", "--version"]) or "opusenc/opusdec (opus-tools)"), ""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg:
        encoders = subprocess.run([ffmpeg, "-hide_banner", "-encoders"], capture_output=True, text=True).stdout
        if "libopus" in encoders:
            return Tool("ffmpeg", _version([ffmpeg, "-version"]) + " (libopus)"), ""
        return None, "ffmpeg has no libopus encoder; install opus-tools (apt-get install opus-tools)"
    return None, "no opusenc/opusdec or ffmpeg on PATH; install opus-tools or ffmpeg (apt-get install opus-tools)"


def find_codec2() -> tuple[Tool | None, str]:
    if shutil.which("c2enc") and shutil.which("c2dec"):
        return Tool("c2enc", "c2enc/c2dec (codec2)"), ""
    return None, "no c2enc/c2dec on PATH; install codec2 (apt-get install codec2)"


def _run(cmd: list[str], what: str) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed (exit {proc.returncode}): {(proc.stderr or proc.stdout).strip()[:300]}")


class ToolCodec:
    """A baseline codec run by an external tool at one bitrate."""

    name: str
    kbps: float

    def process(self, wav: np.ndarray, sr: int) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError


class OpusCodec(ToolCodec):
    def __init__(self, tool: Tool, kbps: float) -> None:
        if kbps < OPUS_MIN_KBPS:
            raise ValueError(f"Opus goes no lower than {OPUS_MIN_KBPS:g} kbps, not {kbps:g}")
        self.tool, self.name, self.kbps = tool, "opus", float(kbps)

    def process(self, wav: np.ndarray, sr: int) -> np.ndarray:
        with tempfile.TemporaryDirectory(prefix="codeclm-opus-") as tmp:
            src, enc, dec = Path(tmp) / "in.wav", Path(tmp) / "enc.opus", Path(tmp) / "out.wav"
            sf.write(src, np.clip(wav, -1, 1), sr, subtype="PCM_16")
            if self.tool.kind == "opusenc":
                _run(["opusenc", "--quiet", "--bitrate", f"{self.kbps:g}", str(src), str(enc)], "opusenc")
                _run(["opusdec", "--quiet", "--rate", "48000", str(enc), str(dec)], "opusdec")
            else:
                _run(["ffmpeg", "-v", "error", "-y", "-i", str(src), "-c:a", "libopus", "-b:a", f"{self.kbps * 1000:.0f}",
                      str(enc.with_suffix(".ogg"))], "ffmpeg (libopus encode)")
                _run(["ffmpeg", "-v", "error", "-y", "-i", str(enc.with_suffix(".ogg")), "-ar", "48000", str(dec)],
                     "ffmpeg (opus decode)")
            out, out_sr = sf.read(dec, dtype="float32", always_2d=True)
        return _resample_np(out.mean(axis=1), out_sr, sr)


class Codec2Codec(ToolCodec):
    """Codec2 3200 mode: 8 kHz 16-bit speech in, 8 kHz out (resampled back to the caller's rate)."""

    def __init__(self, tool: Tool) -> None:
        self.tool, self.name, self.kbps = tool, "codec2", CODEC2_KBPS

    def process(self, wav: np.ndarray, sr: int) -> np.ndarray:
        narrow = _resample_np(wav, sr, CODEC2_RATE)
        pcm = (np.clip(narrow, -1, 1) * 32767).round().astype("<i2")
        with tempfile.TemporaryDirectory(prefix="codeclm-codec2-") as tmp:
            src, enc, dec = Path(tmp) / "in.raw", Path(tmp) / "enc.c2", Path(tmp) / "out.raw"
            src.write_bytes(pcm.tobytes())
            _run(["c2enc", "3200", str(src), str(enc)], "c2enc")
            _run(["c2dec", "3200", str(enc), str(dec)], "c2dec")
            out = np.frombuffer(dec.read_bytes(), dtype="<i2").astype(np.float32) / 32768.0
        return _resample_np(out, CODEC2_RATE, sr)
