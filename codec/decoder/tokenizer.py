"""A tokenizer that encodes with a codec and decodes its tokens with a second decoder.

:class:`DecodedWith` is what ``--decoder DIR`` turns ``--codec SPEC`` into: ``encode``,
``codec_id`` and every other attribute are the codec's (the tokens are the same, so are the
language models that speak them); ``decode(codes)`` is the decoder's reading of the codec's
dequantized latent of those ``K`` codebooks. A decoder trained on another codec's tokens is refused.
"""

from __future__ import annotations

from typing import Any

import torch

from codec.decoder.model import TokenDecoder


class DecodedWith:
    def __init__(self, tokenizer: Any, decoder: TokenDecoder) -> None:
        want = getattr(decoder, "codec_id", None)
        if want is not None and want != tokenizer.codec_id:
            raise ValueError(f"this decoder reads the tokens of codec {want}, not of codec {tokenizer.codec_id}: "
                             "pass the --codec it was trained on (its export records the spec) or train one for "
                             "this codec with `codeclm decoder fit`")
        if not hasattr(tokenizer, "dequantize"):
            raise ValueError(f"{type(tokenizer).__name__} gives no latent for a second decoder to read")
        self.tokenizer, self.decoder = tokenizer, decoder

    def __getattr__(self, name: str) -> Any:
        if name in ("tokenizer", "decoder"):  # not set yet (e.g. while unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.tokenizer, name)

    def encode(self, wav: torch.Tensor, num_codebooks: int | None = None) -> torch.Tensor:
        return self.tokenizer.encode(wav, num_codebooks)

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        latent = self.tokenizer.dequantize(codes)
        device = next(self.decoder.parameters()).device
        return self.decoder(latent.to(device, torch.float32), codes.shape[1])

    def stream(self, *args: Any, **kwargs: Any) -> Any:
        raise ValueError("a second decoder cannot stream: it decodes whole signals (stream with the causal "
                         "codec's own decoder, without --decoder)")

    streaming = stream

    def to(self, device: str | torch.device) -> "DecodedWith":
        self.tokenizer.to(device)
        self.decoder.to(device)
        return self
