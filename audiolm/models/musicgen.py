"""MusicGen-style text-to-music LM: one Transformer over the delay pattern of K codebooks.

Codes ``[B, K, T]`` are laid out by ``DelayPattern.musicgen(K)`` (codebook ``k`` delayed by ``k``
steps) into ``[B, K, S]`` with ``S = T + K - 1``; fill positions and padded frames hold the
special id ``cardinality``. Step ``s`` reads column ``s - 1`` (a column of special ids at step 0,
acting as BOS): the K codes of that column are embedded by K tables and summed, the Transformer
(causal in pattern time, cross-attending to the encoded text) gives hidden ``[B, S, D]``, and
K heads score column ``s``: logits ``[B, K, S, cardinality]``.

The loss is the cross-entropy of every real code (valid pattern position, frame inside the
example's length), averaged over codes, with per-codebook statistics (``LMOutput``). During
training the text condition of each example is dropped with probability ``cond_dropout``, so
the same model gives the unconditional logits classifier-free guidance needs (see
``musicgen_generate.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from einops import rearrange
from torch import nn

from audiolm.conditioning import ConditionDropout, TextCondition, TextEncoder, TextEncoderConfig, text_mask
from audiolm.nn import KVCache, Transformer, TransformerConfig, init_weights
from audiolm.output import LMOutput, masked_codebook_stats
from audiolm.patterns import DelayPattern
from data.batch import TokenBatch


@dataclass
class MusicGenConfig:
    """cardinality / num_codebooks: the codec's codebook size and the K codebooks modelled;
    dim / layers / heads: the decoder; text_vocab / text_dim / text_layers / text_heads: the text
    encoder (``text_vocab`` at least the sentencepiece model's pieces); max_frames: longest
    generation or training crop in frames; max_text_len: longest text in pieces; cond_dropout:
    probability of training an example unconditionally (classifier-free guidance); dropout:
    residual/attention dropout of both Transformers."""

    cardinality: int = 256
    num_codebooks: int = 4
    dim: int = 128
    layers: int = 4
    heads: int = 4
    text_vocab: int = 512
    text_dim: int = 128
    text_layers: int = 2
    text_heads: int = 4
    max_frames: int = 500
    max_text_len: int = 256
    cond_dropout: float = 0.1
    dropout: float = 0.0

    def __post_init__(self) -> None:
        for name in ("cardinality", "num_codebooks", "dim", "layers", "heads", "text_vocab", "text_dim",
                     "text_layers", "text_heads", "max_frames", "max_text_len"):
            if getattr(self, name) < 1:
                raise ValueError(f"MusicGenConfig.{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 <= self.cond_dropout <= 1.0:
            raise ValueError(f"MusicGenConfig.cond_dropout must be in [0, 1], got {self.cond_dropout}")

    @property
    def special(self) -> int:
        """The fill / BOS id, one past the last code."""
        return self.cardinality


class MusicGen(nn.Module):
    """Delay-pattern decoder with text cross-attention; see the module doc."""

    def __init__(self, cfg: MusicGenConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.pattern = DelayPattern.musicgen(cfg.num_codebooks)
        self.text_encoder = TextEncoder(TextEncoderConfig(vocab=cfg.text_vocab, dim=cfg.text_dim,
                                                          layers=cfg.text_layers, heads=cfg.text_heads,
                                                          max_len=cfg.max_text_len, dropout=cfg.dropout))
        self.cond_dropout = ConditionDropout(cfg.cond_dropout)
        self.embed = nn.ModuleList(nn.Embedding(cfg.cardinality + 1, cfg.dim) for _ in range(cfg.num_codebooks))
        self.transformer = Transformer(TransformerConfig(
            dim=cfg.dim, num_layers=cfg.layers, num_heads=cfg.heads,
            max_seq_len=self.pattern.length(cfg.max_frames), dropout=cfg.dropout,
            cross_attention=True, cross_dim=cfg.text_dim))
        self.heads = nn.ModuleList(nn.Linear(cfg.dim, cfg.cardinality, bias=False)
                                   for _ in range(cfg.num_codebooks))
        init_weights(self.embed, cfg.layers)
        init_weights(self.heads, cfg.layers)

    @property
    def special(self) -> int:
        return self.cfg.special

    # ---- conditioning ---------------------------------------------------------------------------
    def encode_text(self, tokens: torch.Tensor | None, lengths: torch.Tensor | None = None,
                    batch: int | None = None) -> TextCondition:
        """Text ids ``[B, L]`` (0-padded) to a condition; None gives an empty one for ``batch`` rows."""
        if tokens is None:
            if batch is None:
                raise ValueError("encode_text needs tokens or a batch size")
            device = next(self.parameters()).device
            tokens = torch.zeros(batch, 1, dtype=torch.long, device=device)
            return self.text_encoder(tokens, torch.zeros_like(tokens, dtype=torch.bool))
        return self.text_encoder(tokens, text_mask(tokens, lengths))

    # ---- the network ----------------------------------------------------------------------------
    def forward(self, inputs: torch.Tensor, cond: TextCondition, cache: KVCache | None = None) -> torch.Tensor:
        """inputs: pattern columns ``[B, K, S]`` (ids in ``[0, cardinality]``) read at steps
        ``cache.length ..`` (0 without a cache) -> logits ``[B, K, S, cardinality]`` for the columns
        that follow. With a cache whose cross-attention is filled, ``cond`` is not re-projected."""
        b, k, s = inputs.shape
        if k != self.cfg.num_codebooks:
            raise ValueError(f"MusicGen expects inputs [B, {self.cfg.num_codebooks}, S], got {tuple(inputs.shape)}")
        x = sum(self.embed[i](inputs[:, i]) for i in range(k))  # [B, S, D]
        h = self.transformer(x, cross=cond.hidden, cross_mask=cond.mask, cache=cache)  # [B, S, D]
        logits = torch.stack([head(h) for head in self.heads], dim=1)  # [B, K, S, V]
        return logits

    def shifted_inputs(self, tokens: torch.Tensor) -> torch.Tensor:
        """Pattern tokens ``[B, K, S]`` to the columns each step reads: BOS then ``tokens[..., :-1]``."""
        bos = torch.full_like(tokens[:, :, :1], self.special)
        return torch.cat([bos, tokens[:, :, :-1]], dim=2)

    # ---- training -------------------------------------------------------------------------------
    def loss(self, batch: TokenBatch, generator: torch.Generator | None = None) -> LMOutput:
        codes = batch.codes
        b, k, t = codes.shape
        if k != self.cfg.num_codebooks:
            raise ValueError(f"MusicGen models {self.cfg.num_codebooks} codebooks, the batch has {k}: set "
                             "data.loader.num_codebooks or model cfg.num_codebooks to match")
        if t > self.cfg.max_frames:
            raise ValueError(f"batch of {t} frames exceeds max_frames {self.cfg.max_frames}: lower "
                             "data.loader.max_frames")
        frame_mask = batch.mask.to(codes.device)  # [B, T]
        if bool((codes[rearrange(frame_mask, 'b t -> b 1 t').expand_as(codes)] >= self.cfg.cardinality).any()):
            raise ValueError(f"codes reach the cardinality {self.cfg.cardinality}: the codec and "
                             "cfg.cardinality disagree")
        # padded frames become fill, so a short example looks exactly like a generation of its length
        codes = codes.masked_fill(~rearrange(frame_mask, "b t -> b 1 t"), self.special)
        seq = self.pattern.build(codes, fill=self.special)
        cond = self.encode_text(batch.text_tokens, batch.text_lengths, batch=b)
        cond = self.cond_dropout(cond, generator)
        logits = self(self.shifted_inputs(seq.tokens), cond)  # [B, K, S, V]
        code_logits = self.pattern.revert_logits(logits)  # [B, K, T, V]
        mask = rearrange(frame_mask, "b t -> b 1 t").expand(b, k, t)
        return masked_codebook_stats(code_logits, batch.codes, mask)
