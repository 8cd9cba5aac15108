"""Streaming a causal codec: audio in, codes out, and codes in, audio out, chunk by chunk.

A :class:`CodecStream` is one request's stream through a codec whose encoder and decoder are
causal SEANet models (``seanet.causal: true``, e.g. ``configs/codec/tiny-causal.yaml``):

- ``encode_step(wav)`` takes any number of samples (not only whole frames: the rest waits in the
  stream) and returns the codes of the frames completed, possibly none;
- ``flush()`` ends the input: the codes of the last, partial frame, zero-padded exactly as a full
  pass pads it, so the codes of a stream equal ``codec.encode`` of the whole signal;
- ``decode_step(codes)`` returns the ``frames * hop`` samples those frames add, and the decoded
  stream equals ``codec.decode`` of all the codes (the transposed convolutions' overlap waits in
  the stream, never re-decoded).

The convolutions, the transposed convolutions' overlap, and a bottleneck's LSTM state or bounded
key/value cache all live in the stream, not in the model: two streams through one codec may be
interleaved call by call (the model's modules are loaded with a stream's state for the length of
one call, under a lock) and never mix. ``state()`` / ``load_state()`` snapshot and restore a
stream. A non-causal codec, or one with a Fourier (frame-centred STFT) part, refuses with one line.

The algorithmic latency of the encoder is one frame: frame ``i`` needs samples up to
``(i + 1) * hop``; the decoder adds none (a frame's samples are final once it is decoded).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import torch

from codec.model.conv import StreamingModule

_LOCK = threading.Lock()  # one stream's state is loaded into the shared modules at a time


def streaming_problem(codec: Any) -> str | None:
    """Why ``codec`` cannot stream (``None`` when it can)."""
    parts = {"encoder": getattr(codec, "encoder", None), "decoder": getattr(codec, "decoder", None)}
    for name, part in parts.items():
        if not isinstance(part, StreamingModule):
            kind = type(part).__name__ if part is not None else "none"
            return (f"this codec cannot stream: its {name} ({kind}) works on whole signals; streaming needs "
                    "a causal SEANet encoder and decoder (seanet.causal: true, e.g. configs/codec/tiny-causal.yaml)")
        try:
            for m in part._streaming_modules():
                m.check_streamable()
        except ValueError as e:
            return f"this codec cannot stream: its {name} is not causal ({e})"
    return None


@dataclass
class StreamState:
    """A snapshot of one stream: the encoder's and decoder's module states and the counters."""

    encoder: list[Any] | None
    decoder: list[Any] | None
    samples_in: int
    frames_out: int
    frames_in: int
    ended: bool


class CodecStream:
    """One stream through ``codec`` (see the module docstring). ``batch_size`` streams of the same
    length run together; ``num_codebooks`` (default all) is how many levels ``encode_step`` emits."""

    def __init__(self, codec: Any, batch_size: int = 1, num_codebooks: int | None = None) -> None:
        problem = streaming_problem(codec)
        if problem:
            raise ValueError(problem)
        k = num_codebooks or codec.num_codebooks
        if not 1 <= k <= codec.num_codebooks:
            raise ValueError(f"num_codebooks must be in 1..{codec.num_codebooks}, got {k}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.codec, self.batch_size, self.num_codebooks = codec, batch_size, k
        self.hop_length: int = codec.hop_length
        self._state = StreamState(None, None, 0, 0, 0, False)

    # ---------------------------------------------------------------- state
    @property
    def samples_in(self) -> int:
        """Samples given to ``encode_step`` so far (per item)."""
        return self._state.samples_in

    @property
    def frames_out(self) -> int:
        """Frames of codes emitted so far."""
        return self._state.frames_out

    @property
    def latency_samples(self) -> int:
        """Algorithmic latency: a frame's codes need the ``hop`` samples it covers."""
        return self.hop_length

    def state(self) -> StreamState:
        """A snapshot of this stream; ``load_state`` of it resumes exactly here."""
        s = self._state
        return StreamState(s.encoder, s.decoder, s.samples_in, s.frames_out, s.frames_in, s.ended)

    def load_state(self, state: StreamState) -> None:
        self._state = StreamState(state.encoder, state.decoder, state.samples_in, state.frames_out,
                                  state.frames_in, state.ended)

    def reset(self) -> None:
        """Start a new stream (both directions)."""
        self._state = StreamState(None, None, 0, 0, 0, False)

    def _run(self, part: StreamingModule, state: list[Any] | None, x: torch.Tensor,
             final: bool = False) -> tuple[torch.Tensor, list[Any]]:
        with _LOCK, torch.no_grad(), part.streaming():
            part.load_stream_state(state)
            if final:
                with part.flushing():
                    y = part(x)
            else:
                y = part(x)
            return y, part.stream_state()

    # ---------------------------------------------------------------- encode
    def _check_wav(self, wav: torch.Tensor) -> torch.Tensor:
        c = self.codec.channels
        if wav.dim() == 2 and self.batch_size == 1 and wav.shape[0] == c:
            wav = wav[None]
        if wav.dim() != 3 or wav.shape[0] != self.batch_size or wav.shape[1] != c:
            raise ValueError(f"expected an audio chunk [{self.batch_size}, {c}, n], got {tuple(wav.shape)}")
        return wav

    def encode_step(self, wav: torch.Tensor) -> torch.Tensor:
        """A chunk ``[B, C, n]`` (any ``n >= 0``) -> codes ``[B, K, f]`` of the ``f >= 0`` frames it completes."""
        if self._state.ended:
            raise RuntimeError("this stream was flushed: reset() starts a new one")
        wav = self._check_wav(wav)
        latent, state = self._run(self.codec.encoder, self._state.encoder, wav)
        self._state.encoder = state
        self._state.samples_in += wav.shape[-1]
        return self._quantize(latent)

    def flush(self) -> torch.Tensor:
        """End the input: codes ``[B, K, f]`` of the frames a full pass makes from the samples still
        held (the last partial frame, zero-padded); the stream then takes no more audio."""
        if self._state.ended:
            raise RuntimeError("this stream was already flushed")
        empty = torch.zeros(self.batch_size, self.codec.channels, 0, device=self._device())
        latent, state = self._run(self.codec.encoder, self._state.encoder, empty, final=True)
        self._state.encoder, self._state.ended = state, True
        return self._quantize(latent)

    def _quantize(self, latent: torch.Tensor) -> torch.Tensor:
        if latent.shape[-1] == 0:
            return torch.zeros(self.batch_size, self.num_codebooks, 0, dtype=torch.long, device=latent.device)
        with torch.no_grad():
            codes = self.codec.quantizer.encode(latent, self.num_codebooks)
        self._state.frames_out += codes.shape[-1]
        return codes

    # ---------------------------------------------------------------- decode
    def decode_step(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes ``[B, K, f]`` of the next ``f >= 0`` frames -> the ``[B, C, f * hop]`` samples they add."""
        if codes.dim() == 2 and self.batch_size == 1:
            codes = codes[None]
        if codes.dim() != 3 or codes.shape[0] != self.batch_size:
            raise ValueError(f"expected codes [{self.batch_size}, K, f], got {tuple(codes.shape)}")
        if codes.shape[-1] == 0:
            return torch.zeros(self.batch_size, self.codec.channels, 0, device=codes.device)
        latent = self.codec.dequantize(codes)
        audio, state = self._run(self.codec.decoder, self._state.decoder, latent)
        self._state.decoder = state
        self._state.frames_in += codes.shape[-1]
        return audio

    def _device(self) -> torch.device:
        return next(self.codec.parameters()).device
