"""A small bidirectional Transformer over sentencepiece ids: the text condition of MusicGen-style
models (a stand-in for a large pretrained text encoder, trained with the LM from scratch).

``TextEncoder(cfg)(tokens [B, L], mask [B, L]) -> TextCondition(hidden [B, L, D], mask [B, L])``.
Id 0 is padding (see ``data.text``); ``mask`` is True on real pieces. A row whose mask is all
False carries no condition: cross-attention gives it zeros, which is exactly what condition
dropout and the unconditional stream of classifier-free guidance rely on.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from audiolm.nn import Transformer, TransformerConfig, init_weights


@dataclass
class TextCondition:
    """hidden: ``[B, L, D]`` encoded text; mask: ``[B, L]`` bool, True on real pieces."""

    hidden: torch.Tensor
    mask: torch.Tensor

    def __len__(self) -> int:
        return self.hidden.shape[0]

    def without(self, drop: torch.Tensor) -> TextCondition:
        """The same condition with the rows where ``drop [B]`` is True emptied (mask all False)."""
        return TextCondition(hidden=self.hidden, mask=self.mask & ~drop[:, None].to(self.mask.device))


@dataclass
class TextEncoderConfig:
    """vocab: sentencepiece pieces (id 0 = pad); dim / layers / heads: the encoder's Transformer;
    max_len: longest text in pieces (longer texts are an error, crop them upstream)."""

    vocab: int
    dim: int = 256
    layers: int = 2
    heads: int = 4
    max_len: int = 256
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if self.vocab < 2:
            raise ValueError(f"TextEncoderConfig.vocab must be >= 2 (0 is padding), got {self.vocab}")


def text_mask(tokens: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
    """``[B, L]`` True on real pieces: from ``lengths [B]`` when given, else ``tokens != 0``."""
    if lengths is None:
        return tokens != 0
    return torch.arange(tokens.shape[1], device=tokens.device)[None, :] < lengths.to(tokens.device)[:, None]


class TextEncoder(nn.Module):
    """Piece embedding + bidirectional rotary Transformer (final norm applied)."""

    def __init__(self, cfg: TextEncoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab, cfg.dim)
        self.transformer = Transformer(TransformerConfig(dim=cfg.dim, num_layers=cfg.layers, num_heads=cfg.heads,
                                                         max_seq_len=cfg.max_len, dropout=cfg.dropout))
        init_weights(self, cfg.layers)

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor | None = None) -> TextCondition:
        if tokens.dim() != 2:
            raise ValueError(f"TextEncoder expects tokens [B, L], got {tuple(tokens.shape)}")
        b, length = tokens.shape
        if length > self.cfg.max_len:
            raise ValueError(f"text of {length} pieces exceeds the text encoder's max_len {self.cfg.max_len}")
        if tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) >= self.cfg.vocab):
            raise ValueError(f"text ids must lie in [0, {self.cfg.vocab}), got [{int(tokens.min())}, "
                             f"{int(tokens.max())}]: the sentencepiece model has more pieces than text_vocab")
        mask = text_mask(tokens) if mask is None else mask.to(torch.bool)
        if tuple(mask.shape) != (b, length):
            raise ValueError(f"text mask must be [B, L] = [{b}, {length}], got {tuple(mask.shape)}")
        h = self.transformer(self.embed(tokens), key_padding_mask=mask, causal=False)  # [B, L, D]
        return TextCondition(hidden=h, mask=mask)
