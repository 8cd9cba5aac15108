"""One way to name a tokenizer: :func:`load_tokenizer` turns a spec string into an
:class:`~codec.tokenizer.AudioTokenizer` in eval mode.

A spec is one of

- an export directory written by ``codeclm codec export`` (``model.safetensors`` + ``config.json``);
- a training checkpoint (``.ckpt``) written by ``codeclm codec fit``;
- ``encodec24k`` / ``encodec48k``: the pretrained EnCodec (downloaded by the ``encodec``
  package), optionally ``encodec24k:/path/to/weights.th`` for local weights.

Bandwidth and codebooks
-----------------------
A ``codec_id`` names the weights and config only, so codes of any number of codebooks ``K`` share
it (fewer codebooks are a prefix of more). EnCodec encodes at a bandwidth, which fixes ``K``:
:func:`use_codebooks` sets the bandwidth that gives ``K`` codebooks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from codec.codec import Codec
from codec.tokenizer import AudioTokenizer

ENCODEC_NAMES = ("encodec24k", "encodec48k")
SPEC_FORMS = ("an export directory (from `codeclm codec export`), a training checkpoint (.ckpt from "
              "`codeclm codec fit`), or encodec24k / encodec48k (optionally ':/path/to/weights.th')")


class CodebookLimit:
    """A :class:`Codec` that encodes ``num_codebooks`` levels by default (a bandwidth setting).

    Everything else (``decode``, ``codec_id``, ``bandwidth(k)``, ...) is the codec's own.
    """

    def __init__(self, codec: Codec, num_codebooks: int) -> None:
        if not 1 <= num_codebooks <= codec.num_codebooks:
            raise ValueError(f"num_codebooks must be in 1..{codec.num_codebooks}, got {num_codebooks}")
        self.codec = codec
        self.num_codebooks = int(num_codebooks)

    def __getattr__(self, name: str) -> Any:
        if name == "codec":  # not set yet (e.g. while unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.codec, name)

    def encode(self, wav: torch.Tensor, num_codebooks: int | None = None) -> torch.Tensor:
        return self.codec.encode(wav, num_codebooks or self.num_codebooks)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        return self.codec.decode(codes)

    def to(self, device: str | torch.device) -> CodebookLimit:
        self.codec.to(device)
        return self


def load_tokenizer(spec: str, device: str | torch.device = "cpu", bandwidth: float | None = None,
                   decoder: str | None = None) -> AudioTokenizer:
    """The tokenizer named by ``spec`` (see the module doc), in eval mode on ``device``.

    ``bandwidth`` (kbps): how many codebooks ``encode`` returns by default (all when None); for the
    project's codec it must be a whole number of codebooks, for EnCodec one of its bandwidths.
    ``decoder``: a second decoder trained on this codec's tokens (an export directory of
    ``codeclm decoder export`` or a ``decoder fit`` checkpoint) that ``decode`` uses instead of the
    codec's own (:mod:`codec.decoder.tokenizer`).
    """
    tokenizer = _load(spec, device, bandwidth)
    if not decoder:
        return tokenizer
    from codec.decoder.export import load_decoder
    from codec.decoder.tokenizer import DecodedWith

    return DecodedWith(tokenizer, load_decoder(decoder, device))


def _load(spec: str, device: str | torch.device, bandwidth: float | None) -> AudioTokenizer:
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"empty codec spec: give {SPEC_FORMS}")
    spec = spec.strip()
    name, sep, _ = spec.partition(":")
    if name.strip().lower() in ENCODEC_NAMES:
        from codec.encodec import EncodecTokenizer  # imports the encodec package: only when asked for

        return EncodecTokenizer.from_spec(spec, bandwidth=bandwidth, device=device)
    path = Path(spec).expanduser()
    if path.is_file() and path.name in ("model.safetensors", "config.json"):
        path = path.parent  # a file of an export directory names the directory
    if path.is_dir():
        from codec.export import load_export

        codec = load_export(path, device=device)
    elif path.suffix.lower() == ".ckpt":
        from codec.export import load_checkpoint

        codec = load_checkpoint(path).to(device)  # FileNotFoundError when missing
    elif path.exists():
        raise ValueError(f"codec spec {spec!r} is a file but not a training checkpoint (.ckpt): give {SPEC_FORMS}")
    else:
        raise ValueError(f"unknown codec spec {spec!r}: no such file or directory; give {SPEC_FORMS}")
    if bandwidth is None:
        return codec
    return CodebookLimit(codec, codec.codebooks_for_bandwidth(bandwidth))


def codebooks_in_use(tokenizer: AudioTokenizer) -> int:
    """How many codebooks ``tokenizer.encode(wav)`` returns without ``num_codebooks``."""
    per_bandwidth = getattr(tokenizer, "codebooks_per_bandwidth", None)
    if isinstance(per_bandwidth, dict):
        return int(per_bandwidth[tokenizer.bandwidth])
    return int(tokenizer.num_codebooks)


def use_codebooks(tokenizer: AudioTokenizer, num_codebooks: int) -> None:
    """For tokenizers that encode at a bandwidth (EnCodec), switch to the bandwidth that gives
    ``num_codebooks``; other tokenizers are left as they are (range checked)."""
    per_bandwidth = getattr(tokenizer, "codebooks_per_bandwidth", None)
    if isinstance(per_bandwidth, dict):
        for kbps, k in per_bandwidth.items():
            if k == num_codebooks:
                tokenizer.set_bandwidth(kbps)
                return
        options = ", ".join(f"{k} ({b:g} kbps)" for b, k in per_bandwidth.items())
        raise ValueError(f"this EnCodec model encodes {options} codebooks, not {num_codebooks}")
    if not 1 <= num_codebooks <= tokenizer.num_codebooks:
        raise ValueError(f"this codec has 1..{tokenizer.num_codebooks} codebooks, not {num_codebooks}")
