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

    @property
    def decode_latency_samples(self) -> int:
        """A causal decoder's samples are final when their frame is decoded."""
        return 0

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

    def finish(self) -> torch.Tensor:
        """A causal decoder holds nothing back: no samples remain when the codes end."""
        return torch.zeros(self.batch_size, self.codec.channels, 0, device=self._device())

    def _device(self) -> torch.device:
        return next(self.codec.parameters()).device


def receptive_field(codec: Any, probe_frames: int = 64) -> tuple[int, int]:
    """How many frames before and after a frame its codes change the decoded samples: ``(left, right)``,
    measured by changing one frame's codes in the middle of ``2 * probe_frames + 1`` random frames
    (outside its reach the decoder's output is bitwise unchanged). A decoder whose reach spans the
    probe (a global normalisation, an unbounded attention) raises ``ValueError``."""
    gen = torch.Generator().manual_seed(0)
    n, mid = 2 * probe_frames + 1, probe_frames
    device = next(codec.parameters()).device if hasattr(codec, "parameters") else "cpu"
    k = codec.num_codebooks
    codes = torch.randint(0, codec.cardinality, (1, k, n), generator=gen)
    changed = codes.clone()
    changed[:, :, mid] = (codes[:, :, mid] + 1 + torch.randint(0, codec.cardinality - 1, (k,), generator=gen)) % codec.cardinality
    with torch.no_grad():
        a, b = codec.decode(codes.to(device)), codec.decode(changed.to(device))
    hop = a.shape[-1] // n
    differ = (a != b).flatten(0, 1).any(dim=0).nonzero().flatten()
    if differ.numel() == 0:
        return 0, 0
    first, last = int(differ[0]) // hop, int(differ[-1]) // hop
    if first == 0 or last == n - 1:
        raise ValueError(f"this codec's decoder reaches further than {probe_frames} frames: it cannot decode in windows")
    return mid - first, last - mid


class WindowedDecodeStream:
    """Decoding chunk by chunk with a codec whose decoder cannot stream (it is not causal, e.g. a
    frame-centred inverse STFT): a frame's samples are final once ``lookahead`` frames after it
    have arrived, and each window is decoded with ``context`` frames before it. With both at least
    the decoder's :func:`receptive_field` (the default), the concatenated output equals
    ``codec.decode`` of all the codes up to float rounding; the cost per chunk stays bounded (the
    context is re-decoded, earlier audio never), and the latency is ``lookahead`` frames.
    ``decode_step(codes)`` returns the samples that became final; ``finish()`` the rest."""

    def __init__(self, codec: Any, context: int | None = None, lookahead: int | None = None) -> None:
        # frame m reaches the samples of frames m - left .. m + right, so frame f's samples depend
        # on frames f - right .. f + left: `right` frames of context, `left` of lookahead
        left, right = receptive_field(codec) if context is None or lookahead is None else (0, 0)
        self.codec = codec
        self.context = right if context is None else context
        self.lookahead = left if lookahead is None else lookahead
        self.hop_length = int(round(codec.sample_rate / codec.frame_rate))
        self._codes: torch.Tensor | None = None  # [B, K, kept frames]
        self._offset = 0  # frame index of _codes[..., 0]
        self._emitted = 0  # frames whose samples are out
        self._finished = False

    @property
    def decode_latency_samples(self) -> int:
        """A frame's samples wait for ``lookahead`` frames after it."""
        return self.lookahead * self.hop_length

    def _decode_until(self, ready: int, total: int) -> torch.Tensor:
        assert self._codes is not None
        start = max(0, self._emitted - self.context)
        end = min(total, ready + self.lookahead)
        window = self._codes[..., start - self._offset: end - self._offset]
        with torch.no_grad():
            audio = self.codec.decode(window)
        out = audio[..., (self._emitted - start) * self.hop_length: (ready - start) * self.hop_length]
        self._emitted = ready
        keep_from = max(0, ready - self.context)  # what the next window can need
        self._codes = self._codes[..., keep_from - self._offset:]
        self._offset = keep_from
        return out

    def decode_step(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes ``[B, K, f]`` of the next frames -> the samples now final ``[B, C, n * hop]``, ``n >= 0``."""
        if self._finished:
            raise RuntimeError("this stream was finished: open a new one")
        if codes.dim() == 2:
            codes = codes[None]
        self._codes = codes if self._codes is None else torch.cat([self._codes, codes], dim=-1)
        total = self._offset + self._codes.shape[-1]
        ready = total - self.lookahead
        if ready <= self._emitted:
            return torch.zeros(codes.shape[0], self.codec.channels, 0, device=codes.device)
        return self._decode_until(ready, total)

    def finish(self) -> torch.Tensor:
        """The samples of the frames still held (the stream has ended: no more lookahead comes)."""
        self._finished = True
        if self._codes is None:
            return torch.zeros(1, self.codec.channels, 0)
        total = self._offset + self._codes.shape[-1]
        if total <= self._emitted:
            return torch.zeros(self._codes.shape[0], self.codec.channels, 0, device=self._codes.device)
        return self._decode_until(total, total)


def decode_stream(codec: Any, batch_size: int = 1) -> CodecStream | WindowedDecodeStream:
    """The way to decode ``codec``'s codes chunk by chunk: its own stream when it is causal, else
    windows over its measured receptive field. Both have ``decode_step``, ``finish`` (nothing
    more for a causal stream) and ``decode_latency_samples``."""
    if streaming_problem(codec) is None:
        return CodecStream(codec, batch_size)
    return WindowedDecodeStream(codec)
