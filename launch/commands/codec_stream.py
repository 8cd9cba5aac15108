"""``codeclm codec encode --stream`` and ``codec decode --stream``: a causal codec chunk by chunk.

encode: the audio (a file, or ``-``: raw signed 16-bit little-endian PCM at the codec's sample rate
and channels on stdin, as ``ffmpeg -f s16le -ar 16000 -ac 1 -`` writes it) goes through
:class:`codec.stream.CodecStream` ``--chunk-ms`` at a time; the codes file is the one a full pass
writes (the codes are identical). decode: the codes go through the stream ``--chunk-frames`` at a
time and each chunk's audio is written as soon as it is made (to a wav file, or ``-``: raw s16le
PCM on stdout). Both report the algorithmic latency (what a frame waits for before it can be
encoded), the real-time factor measured on this machine and the slowest chunk.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import torch


def _report(what: str, stream, chunk_seconds: list[float], audio_seconds: float, chunk_audio: float,
            err: bool = False) -> None:
    total = sum(chunk_seconds)
    rtf = total / max(audio_seconds, 1e-9)
    worst = max(chunk_seconds, default=0.0)
    hop_ms = 1000 * stream.hop_length / stream.codec.sample_rate
    print(f"{what}: {len(chunk_seconds)} chunks of {1000 * chunk_audio:.0f} ms; algorithmic latency {hop_ms:.0f} ms "
          f"(one {stream.hop_length}-sample frame); real-time factor {rtf:.3f} ({1 / max(rtf, 1e-9):.0f}x real time), "
          f"slowest chunk {1000 * worst:.1f} ms", file=sys.stderr if err else sys.stdout)


def _stdin_chunks(channels: int, samples: int) -> Iterator[np.ndarray]:
    """``[C, n]`` float32 chunks of raw s16le PCM from stdin (the last one may be shorter)."""
    frame_bytes = 2 * channels
    want = samples * frame_bytes
    pending = b""
    while True:
        data = sys.stdin.buffer.read(want - len(pending))
        if not data:
            break
        pending += data
        if len(pending) >= want:
            yield np.frombuffer(pending, "<i2").reshape(-1, channels).T.astype(np.float32) / 32768.0
            pending = b""
    usable = len(pending) - len(pending) % frame_bytes
    if usable:
        yield np.frombuffer(pending[:usable], "<i2").reshape(-1, channels).T.astype(np.float32) / 32768.0


def encode_stream(tokenizer, source: str, chunk_ms: float, k: int, device: str) -> tuple[torch.Tensor, int]:
    """Codes ``[K, T']`` of ``source`` streamed ``chunk_ms`` at a time, and the number of samples read."""
    from data.audio import read_audio, resample, to_channels

    stream = tokenizer.stream(1, k)  # a codec that cannot stream refuses here, in one line
    sr, channels = tokenizer.sample_rate, tokenizer.channels
    chunk = max(1, round(chunk_ms * sr / 1000))
    if source == "-":
        chunks = (torch.from_numpy(c) for c in _stdin_chunks(channels, chunk))
    else:
        wav, file_sr = read_audio(source)
        try:
            audio = to_channels(resample(torch.from_numpy(wav), file_sr, sr), channels)
        except ValueError as e:
            raise ValueError(f"{source}: {e} (the codec reads {channels}-channel audio)") from None
        chunks = iter(audio.split(chunk, dim=-1))
    parts, times, samples = [], [], 0
    for piece in chunks:
        t0 = time.perf_counter()
        parts.append(stream.encode_step(piece[None].to(device)))
        times.append(time.perf_counter() - t0)
        samples += piece.shape[-1]
    if samples == 0:
        raise ValueError(f"{source}: no audio to encode")
    t0 = time.perf_counter()
    parts.append(stream.flush())
    times[-1] += time.perf_counter() - t0
    _report("encode", stream, times, samples / sr, chunk / sr)
    return torch.cat(parts, dim=-1)[0], samples


def decode_stream(tokenizer, codes: torch.Tensor, num_samples: int, out: str, chunk_frames: int) -> int:
    """Decode ``codes [K, T']`` ``chunk_frames`` at a time, writing each chunk's audio as it comes
    (trimmed to ``num_samples``); the samples written."""
    import soundfile as sf

    from launch.commands.stream_out import pcm16_bytes

    if chunk_frames < 1:
        raise ValueError(f"--chunk-frames must be >= 1, got {chunk_frames}")
    stream = tokenizer.stream(1)
    sr, channels = tokenizer.sample_rate, tokenizer.channels
    sink = sf.SoundFile(out, "w", sr, channels, "PCM_16", format="WAV") if out != "-" else None
    written, times, ok = 0, [], False
    try:
        for start in range(0, codes.shape[-1], chunk_frames):
            t0 = time.perf_counter()
            audio = stream.decode_step(codes[None, :, start:start + chunk_frames])[0]
            times.append(time.perf_counter() - t0)
            audio = audio[:, : max(0, num_samples - written)].float().cpu().numpy().clip(-1.0, 1.0)
            if sink is not None:
                sink.write(audio.T)
            else:
                sys.stdout.buffer.write(pcm16_bytes(audio, sr))
                sys.stdout.buffer.flush()
            written += audio.shape[-1]
        ok = True
    finally:
        if sink is not None:
            sink.close()
            if not ok:  # no truncated wav left behind as if it were the result
                Path(out).unlink(missing_ok=True)
    _report("decode", stream, times, written / sr, chunk_frames * stream.hop_length / sr, err=out == "-")
    return written
