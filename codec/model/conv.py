"""Convolutions with exact output lengths that can also run chunk by chunk.

Length contract (``s`` is the stride, ``T`` the input length):

- ``StreamableConv1d``: ``[B, C_in, T] -> [B, C_out, ceil(T / s)]``, causal or not.
- ``StreamableConvTranspose1d``: ``[B, C_in, T] -> [B, C_out, T * s]``, causal or not.

A conv's padding is ``k_eff - s`` with ``k_eff = (kernel_size - 1) * dilation + 1``, plus up
to ``s - 1`` extra samples on the right so that the last, partial frame is still produced.
Causal convs put the whole ``k_eff - s`` on the left (with zeros): output frame ``i`` then sees
only input samples ``< (i + 1) * s``. Non-causal convs split it between both sides (larger
half on the left). Transposed convs trim ``kernel_size - s`` samples of their full output: all
on the right when causal, split between both sides otherwise.

Streaming (causal convs only): inside ``with module.streaming():`` every call consumes one
chunk and returns the output it makes possible. A ``StreamableConv1d`` keeps the input samples
it has not yet used (at the start, ``k_eff - s`` zeros, its causal padding); a
``StreamableConvTranspose1d`` keeps the ``kernel_size - s`` output samples that the next chunk
still adds to. Concatenating the chunk outputs equals one full pass over the concatenated input
whenever each chunk length is a multiple of the stride; otherwise the leftover samples wait for
the next chunk. The final partial frame, which a full pass pads with zeros, comes out of the
call made inside ``with module.flushing():`` (typically with an empty chunk): each strided conv
then pads what it holds with zeros to the frame count of a full pass over everything it was
given, so the stream's outputs equal the full pass for any chunking.

The state of a stream can be taken out (``stream_state()``) and put back
(``load_stream_state()``): several streams can share one model, each keeping its own state
between calls (``codec/stream.py``).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

NORMS = ("weight_norm", "none")
PAD_MODES = ("constant", "reflect", "replicate")
_NOT_CAUSAL = "only causal convolutions can stream: build the model with causal=True"


class StreamingModule(nn.Module):
    """A module that keeps state between calls while in ``streaming()`` mode.

    Outside that context every call is a stateless full pass. Inside it, each
    ``StreamingModule`` of the tree keeps in ``_stream_state`` what it needs of the past (input
    samples, overlapping output, recurrent state) and treats each call as the next chunk of one
    stream. Use one stream (one batch) per context; ``reset_streaming()`` starts a new one.
    """

    def __init__(self) -> None:
        super().__init__()
        self._is_streaming = False
        self._stream_final = False
        self._stream_state: Any = None

    @property
    def is_streaming(self) -> bool:
        return self._is_streaming

    def _streaming_modules(self) -> list[StreamingModule]:
        return [m for m in self.modules() if isinstance(m, StreamingModule)]

    def check_streamable(self) -> None:
        """Raise ``ValueError`` when this module cannot stream (subclasses override)."""

    @contextmanager
    def streaming(self) -> Iterator[StreamingModule]:
        """Run this module and all its streaming submodules chunk by chunk within the block."""
        modules = self._streaming_modules()
        if any(m._is_streaming for m in modules):
            raise RuntimeError(f"{type(self).__name__} is already streaming")
        for m in modules:
            m.check_streamable()
        for m in modules:
            m._is_streaming, m._stream_state = True, None
        try:
            yield self
        finally:
            for m in modules:
                m._is_streaming, m._stream_state = False, None

    def reset_streaming(self) -> None:
        """Forget the past of the current stream (stay in streaming mode)."""
        for m in self._streaming_modules():
            m._stream_state = None

    @contextmanager
    def flushing(self) -> Iterator[StreamingModule]:
        """Inside a ``streaming()`` block: the calls made here end the stream, emitting the frames
        a full pass would make from the samples still held (zero-padded, as the full pass pads)."""
        if not self._is_streaming:
            raise RuntimeError(f"{type(self).__name__} is not streaming: flush inside streaming()")
        modules = self._streaming_modules()
        for m in modules:
            m._stream_final = True
        try:
            yield self
        finally:
            for m in modules:
                m._stream_final = False

    def stream_state(self) -> list[Any]:
        """What every streaming submodule keeps of the current stream (a snapshot: the modules
        replace their state on each call, never change it in place)."""
        if not self._is_streaming:
            raise RuntimeError(f"{type(self).__name__} is not streaming")
        return [m._stream_state for m in self._streaming_modules()]

    def load_stream_state(self, state: list[Any] | None) -> None:
        """Continue the stream whose :meth:`stream_state` this is (``None``: a new stream)."""
        modules = self._streaming_modules()
        if state is None:
            state = [None] * len(modules)
        if len(state) != len(modules):
            raise ValueError(f"a stream state of {len(state)} modules does not fit this model's {len(modules)}")
        for m, s in zip(modules, state):
            m._stream_state = s


def apply_norm(module: nn.Module, norm: str) -> nn.Module:
    """Wrap a conv's weight in the named reparametrization (``weight_norm`` or ``none``)."""
    if norm == "weight_norm":
        return weight_norm(module)
    if norm == "none":
        return module
    raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")


def pad1d(x: torch.Tensor, left: int, right: int, mode: str = "constant") -> torch.Tensor:
    """Pad the last axis of ``[B, C, T]``; ``reflect`` also works when ``T`` is shorter
    than the padding (the input is first extended with zeros, then the extension removed)."""
    if mode == "constant":
        return F.pad(x, (left, right))
    if mode == "reflect":
        extra = max(0, max(left, right) - x.shape[-1] + 1)
        y = F.pad(F.pad(x, (0, extra)), (left, right), mode="reflect")
        return y[..., : y.shape[-1] - extra]
    return F.pad(x, (left, right), mode=mode)


def _check_input(x: torch.Tensor, channels: int, name: str) -> None:
    if x.dim() != 3 or x.shape[1] != channels:
        raise ValueError(f"{name} expects [B, {channels}, T], got {tuple(x.shape)}")


class StreamableConv1d(StreamingModule):
    """``nn.Conv1d`` mapping ``[B, C_in, T] -> [B, C_out, ceil(T / stride)]`` (module docstring).

    ``pad_mode`` fills the padding in a full pass; streaming needs ``"constant"`` (zeros).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        dilation: int = 1,
        groups: int = 1,
        bias: bool = True,
        causal: bool = False,
        norm: str = "weight_norm",
        pad_mode: str = "constant",
    ) -> None:
        super().__init__()
        effective = (kernel_size - 1) * dilation + 1
        if effective < stride:
            raise ValueError(
                f"effective kernel size {effective} is smaller than stride {stride}: "
                "input samples would be skipped"
            )
        if pad_mode not in PAD_MODES:
            raise ValueError(f"pad_mode must be one of {PAD_MODES}, got {pad_mode!r}")
        conv = nn.Conv1d(in_channels, out_channels, kernel_size, stride, 0, dilation, groups, bias)
        self.conv = apply_norm(conv, norm)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.stride, self.effective_kernel_size = stride, effective
        self.padding_total = effective - stride
        self.causal, self.pad_mode = causal, pad_mode

    def check_streamable(self) -> None:
        if not self.causal:
            raise ValueError(_NOT_CAUSAL)
        if self.pad_mode != "constant":
            raise ValueError(f"streaming needs pad_mode='constant', got {self.pad_mode!r}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C_in, T] -> [B, C_out, ceil(T / stride)]`` (a chunk's frames when streaming)."""
        _check_input(x, self.in_channels, type(self).__name__)
        if self._is_streaming:
            return self._forward_chunk(x)
        length = x.shape[-1]
        frames = -(-length // self.stride)
        extra = frames * self.stride - length
        if self.causal:
            left, right = self.padding_total, extra
        else:
            right = self.padding_total // 2
            left = self.padding_total - right
            right += extra
        return self.conv(pad1d(x, left, right, self.pad_mode))

    def _forward_chunk(self, x: torch.Tensor) -> torch.Tensor:
        # state: (samples not yet consumed, samples seen in all, frames emitted)
        b, c, n = x.shape
        past, seen, emitted = self._stream_state or (x.new_zeros(b, c, self.padding_total), 0, 0)
        if past.shape[0] != b:
            raise ValueError(f"this stream has batch {past.shape[0]}, got a chunk of batch {b}")
        x = torch.cat([past, x], dim=-1)
        seen += n
        available = x.shape[-1]
        frames = 0
        if available >= self.effective_kernel_size:
            frames = (available - self.effective_kernel_size) // self.stride + 1
        if self._stream_final:  # a full pass over `seen` samples makes ceil(seen / stride) frames
            missing = -(-seen // self.stride) - emitted - frames
            if missing > 0:
                x = F.pad(x, (0, (frames + missing - 1) * self.stride + self.effective_kernel_size - available))
                frames += missing
        self._stream_state = (x[..., frames * self.stride :], seen, emitted + frames)
        if frames == 0:
            return x.new_zeros(b, self.out_channels, 0)
        used = (frames - 1) * self.stride + self.effective_kernel_size
        return self.conv(x[..., :used])


class StreamableConvTranspose1d(StreamingModule):
    """``nn.ConvTranspose1d`` mapping ``[B, C_in, T] -> [B, C_out, T * stride]``.

    ``kernel_size`` must be at least ``stride``. See the module docstring for the trimming.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        bias: bool = True,
        causal: bool = False,
        norm: str = "weight_norm",
    ) -> None:
        super().__init__()
        if kernel_size < stride:
            raise ValueError(f"kernel_size {kernel_size} must be >= stride {stride}")
        convtr = nn.ConvTranspose1d(in_channels, out_channels, kernel_size, stride, bias=bias)
        self.convtr = apply_norm(convtr, norm)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride = kernel_size, stride
        self.padding_total = kernel_size - stride
        self.causal = causal

    def check_streamable(self) -> None:
        if not self.causal:
            raise ValueError(_NOT_CAUSAL)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C_in, T] -> [B, C_out, T * stride]``."""
        _check_input(x, self.in_channels, type(self).__name__)
        if self._is_streaming:
            return self._forward_chunk(x)
        y = self.convtr(x)
        if self.causal:
            left, right = 0, self.padding_total
        else:
            right = self.padding_total // 2
            left = self.padding_total - right
        return y[..., left : y.shape[-1] - right]

    def _forward_chunk(self, x: torch.Tensor) -> torch.Tensor:
        b, _, frames = x.shape
        if frames == 0:
            return x.new_zeros(b, self.out_channels, 0)
        # Without bias: the overlapping tail is summed across chunks, the bias added once.
        y = F.conv_transpose1d(x, self.convtr.weight, None, self.stride)
        tail = self._stream_state
        if tail is not None:
            overlap = tail.shape[-1]
            y = torch.cat([y[..., :overlap] + tail, y[..., overlap:]], dim=-1)
        done = frames * self.stride
        self._stream_state = y[..., done:]
        out = y[..., :done]
        if self.convtr.bias is not None:
            out = out + self.convtr.bias.to(out.dtype)[:, None]
        return out
