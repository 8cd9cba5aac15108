"""Audio written as it is generated: ``generate clone|continue|music --stream``.

:class:`StreamWriter` takes ``[C, n]`` chunks and writes each at once, to a wav file (16-bit PCM,
its header completed when the stream ends; a stream that fails leaves no file behind) or, for
``-``, as raw signed 16-bit little-endian PCM on stdout (``| aplay -f S16_LE -r 16000 -c 1``).
It measures the time to the first audio and the real-time factor (generation time over audio
time), which the commands print.

:class:`ChunkDecoder` turns the codes a generator yields into audio through the codec's stream
(:func:`codec.stream.decode_stream`: a causal codec streams, another decodes in windows of its
measured reach), after priming it with the prompt's codes, whose audio is not written.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import numpy as np


def pcm16_bytes(audio: np.ndarray, sample_rate: int) -> bytes:
    """``[C, n]`` float audio as interleaved 16-bit little-endian PCM, converted exactly as a
    16-bit wav file of it is (libsndfile's conversion)."""
    import io

    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, np.clip(audio, -1.0, 1.0).T, sample_rate, format="RAW", subtype="PCM_16", endian="LITTLE")
    return buf.getvalue()


def add_stream_args(p, what: str = "audio") -> None:
    """``--stream`` and ``--chunk-frames`` of the generate commands."""
    p.add_argument("--stream", action="store_true",
                   help=f"write the {what} as it is generated, chunk by chunk (prints the time to first audio and the "
                        "real-time factor)")
    p.add_argument("--chunk-frames", type=int, default=25,
                   help="with --stream: codec frames per chunk (default 25, half a second at 50 Hz)")


class StreamWriter:
    def __init__(self, out: str, sample_rate: int, channels: int) -> None:
        import soundfile as sf

        self.out, self.sample_rate, self.channels = out, sample_rate, channels
        self.started = time.perf_counter()
        self.first_audio: float | None = None
        self.samples = 0
        self._sink = None
        if out != "-":
            Path(out).parent.mkdir(parents=True, exist_ok=True)
            self._sink = sf.SoundFile(out, "w", sample_rate, channels, "PCM_16", format="WAV")

    def write(self, audio: np.ndarray) -> None:
        """One ``[C, n]`` float chunk (clipped to [-1, 1])."""
        if audio.shape[-1] == 0:
            return
        audio = np.clip(audio, -1.0, 1.0)
        if self._sink is not None:
            self._sink.write(audio.T)
            self._sink.flush()
        else:
            sys.stdout.buffer.write(pcm16_bytes(audio, self.sample_rate))
            sys.stdout.buffer.flush()
        if self.first_audio is None:
            self.first_audio = time.perf_counter() - self.started
        self.samples += audio.shape[-1]

    def close(self, ok: bool = True) -> None:
        if self._sink is not None:
            self._sink.close()
            if not ok or self.samples == 0:  # never a truncated or empty wav left as a result
                Path(self.out).unlink(missing_ok=True)

    @property
    def seconds(self) -> float:
        return self.samples / self.sample_rate

    def summary(self) -> str:
        took = time.perf_counter() - self.started
        first = f"{self.first_audio:.2f} s" if self.first_audio is not None else "never"
        rtf = took / self.seconds if self.samples else float("inf")
        return (f"streamed {self.seconds:.2f} s of audio: first audio after {first}, all of it in {took:.2f} s "
                f"(real-time factor {rtf:.2f})")


class ChunkDecoder:
    """Codes ``[K, n]`` chunks -> final audio ``[C, m]`` (numpy), the prompt's audio dropped."""

    def __init__(self, codec: Any, prompt_codes: Any = None) -> None:
        from codec.stream import decode_stream

        self.stream = decode_stream(codec)
        self.hop = int(round(codec.sample_rate / codec.frame_rate))
        self._skip = 0
        if prompt_codes is not None and prompt_codes.shape[-1]:
            self._skip = prompt_codes.shape[-1] * self.hop
            self._take(self.stream.decode_step(prompt_codes[None]))

    @property
    def latency_ms(self) -> float:
        """How long a frame's audio waits for the frames after it (0 for a causal codec)."""
        return 1000.0 * self.stream.decode_latency_samples / float(self.stream.codec.sample_rate)

    def _take(self, audio) -> np.ndarray:
        audio = audio[0].float().cpu().numpy()
        drop = min(self._skip, audio.shape[-1])
        self._skip -= drop
        return audio[:, drop:]

    def decode(self, codes) -> np.ndarray:
        return self._take(self.stream.decode_step(codes[None]))

    def finish(self) -> np.ndarray:
        return self._take(self.stream.finish())
