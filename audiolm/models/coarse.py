"""AudioLM's coarse acoustic stage: semantic units in, the first ``Qc`` codebooks out.

``CoarseLM(cfg)`` reads ``[s_0 ... s_{S-1} ; BOS c_0 ... c_{N-1}]`` where ``s`` are semantic units
(their own embedding) and ``c`` the first ``coarse_codebooks`` codebooks flattened time-major
(``FlattenPattern``: ``t0k0, t0k1, ..., t1k0, ...``; ``N = Qc * T``). Coarse ids are offset per
codebook (``offset_tokens``) into one embedding table; the output head has one projection per
codebook, so a position only scores the codes of its own codebook. Attention is causal over the
whole sequence, and the loss covers the coarse tokens only (``LMOutput.codebook_loss`` has ``Qc``
entries).

With ``cfg.semantic_prefix = False`` the model is a plain codec LM: the sequence starts at BOS and
no semantic units are read (codec-only continuation, no semantic model needed).

Right padding of the units and of the frames is masked from attention and loss; RoPE positions
count the real tokens of each row. Training crops to ``max_frames`` frames and ``max_semantic``
units: with ``units_per_frame`` set (semantic rate / codec frame rate), a random window of frames
and the units under it; otherwise both from the start.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from einops import einsum, rearrange
from torch import nn

from audiolm.models.semantic import ARPrompt
from audiolm.nn import Transformer, TransformerConfig, init_weights
from audiolm.output import LMOutput, masked_codebook_stats
from audiolm.patterns import FlattenPattern, offset_tokens
from data.batch import TokenBatch, lengths_to_mask


@dataclass
class CoarseLMConfig:
    """cardinality: codes per codebook; coarse_codebooks: Qc codebooks predicted; n_units: semantic
    vocabulary; semantic_prefix: read semantic units first (False: codec-only LM); max_frames /
    max_semantic: longest frames and units one forward takes; units_per_frame: semantic units per
    codec frame (aligned random crops while training; None crops from the start)."""

    cardinality: int = 1024
    coarse_codebooks: int = 2
    n_units: int = 100
    semantic_prefix: bool = True
    max_frames: int = 256
    max_semantic: int = 256
    units_per_frame: float | None = None
    dim: int = 256
    layers: int = 4
    heads: int = 4
    mlp_ratio: float = 4.0
    dropout: float = 0.0

    def __post_init__(self) -> None:
        for name in ("cardinality", "coarse_codebooks", "n_units", "max_frames", "dim", "layers", "heads"):
            if getattr(self, name) < 1:
                raise ValueError(f"CoarseLMConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.semantic_prefix and self.max_semantic < 1:
            raise ValueError("CoarseLMConfig: semantic_prefix needs max_semantic >= 1")
        if self.units_per_frame is not None and self.units_per_frame <= 0:
            raise ValueError(f"CoarseLMConfig.units_per_frame must be > 0, got {self.units_per_frame}")

    @property
    def prefix_len(self) -> int:
        return self.max_semantic if self.semantic_prefix else 0

    @property
    def max_seq_len(self) -> int:
        return self.prefix_len + 1 + self.coarse_codebooks * self.max_frames


class CoarseLM(nn.Module):
    """Semantic prefix, then flattened coarse codebooks; see the module doc."""

    def __init__(self, cfg: CoarseLMConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.pattern = FlattenPattern(cfg.coarse_codebooks)
        self.bos = cfg.coarse_codebooks * cfg.cardinality
        self.code_emb = nn.Embedding(self.bos + 1, cfg.dim)
        self.unit_emb = nn.Embedding(cfg.n_units, cfg.dim) if cfg.semantic_prefix else None
        self.transformer = Transformer(TransformerConfig(
            dim=cfg.dim, num_layers=cfg.layers, num_heads=cfg.heads, max_seq_len=cfg.max_seq_len,
            mlp_ratio=cfg.mlp_ratio, dropout=cfg.dropout))
        self.heads = nn.Parameter(torch.empty(cfg.coarse_codebooks, cfg.dim, cfg.cardinality))
        init_weights(self, cfg.layers)
        nn.init.normal_(self.heads, std=0.02)

    # ---- training ------------------------------------------------------------------------------
    def _crop(self, batch: TokenBatch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """Coarse codes ``[B, Qc, T]`` with frame lengths, units ``[B, S]`` with lengths (or None)."""
        cfg = self.cfg
        codes, lengths = batch.codes[:, : cfg.coarse_codebooks], batch.lengths
        if codes.shape[1] < cfg.coarse_codebooks:
            raise ValueError(f"CoarseLM predicts {cfg.coarse_codebooks} codebooks, the batch has {codes.shape[1]}")
        units = unit_len = None
        if cfg.semantic_prefix:
            if batch.semantic is None:
                raise ValueError("CoarseLM with semantic_prefix needs semantic units in the batch: label the "
                                 "token shards (audiolm.semantic_labels.add_semantic_units) or set semantic_prefix: false")
            units = batch.semantic
            unit_len = batch.semantic_lengths if batch.semantic_lengths is not None else torch.full(
                (units.shape[0],), units.shape[1], device=units.device)
        w, r = cfg.max_frames, cfg.units_per_frame
        if codes.shape[-1] <= w and (units is None or units.shape[1] <= cfg.max_semantic):
            return codes, lengths, units, unit_len
        code_rows, unit_rows, new_unit_len = [], [], []
        for i in range(codes.shape[0]):
            extra = int(lengths[i]) - w
            start = int(torch.randint(0, extra + 1, ())) if self.training and extra > 0 and r else 0
            code_rows.append(nn.functional.pad(codes[i, :, start:start + w], (0, max(0, w - codes.shape[-1]))))
            if units is not None:
                u0 = math.floor(start * r) if r else 0
                u1 = math.ceil((start + w) * r) if r else units.shape[1]
                u1 = min(u1, u0 + cfg.max_semantic, int(unit_len[i]))
                row = units[i, u0:max(u0, u1)]
                new_unit_len.append(row.shape[0])
                unit_rows.append(nn.functional.pad(row, (0, cfg.max_semantic - row.shape[0])))
        codes, lengths = torch.stack(code_rows)[..., :w], lengths.clamp(max=w)
        if units is not None:
            units = torch.stack(unit_rows)
            unit_len = torch.tensor(new_unit_len, dtype=torch.long, device=units.device)
            units = units[:, : max(1, int(unit_len.max()))]
        return codes, lengths, units, unit_len

    def loss(self, batch: TokenBatch) -> LMOutput:
        cfg = self.cfg
        codes, lengths, units, unit_len = self._crop(batch)
        b, q, t = codes.shape
        device = codes.device
        flat = self.pattern.build(offset_tokens(codes, cfg.cardinality)).tokens  # [B, Qc*T]
        bos = torch.full((b, 1), self.bos, dtype=torch.long, device=device)
        seq = torch.cat([bos, flat[:, :-1]], dim=1)  # [B, N]: position j predicts coarse token j
        x = self.code_emb(seq)
        n = seq.shape[1]
        valid = lengths_to_mask(lengths * q, n)
        valid[:, 0] = True  # BOS
        positions = rearrange(torch.arange(n, device=device), "n -> 1 n").expand(b, -1)
        s = 0
        if units is not None and unit_len is not None:
            s = units.shape[1]
            x = torch.cat([self.unit_emb(units), x], dim=1)
            unit_pos = rearrange(torch.arange(s, device=device), "s -> 1 s").expand(b, -1)
            positions = torch.cat([unit_pos, positions + unit_len[:, None]], dim=1)
            valid = torch.cat([lengths_to_mask(unit_len, s), valid], dim=1)
        h = self.transformer(x, positions=positions, key_padding_mask=valid)[:, s:]  # [B, N, D]
        h = rearrange(h, "b (t k) d -> b k t d", k=q)
        logits = einsum(h, self.heads, "b k t d, k d c -> b k t c")
        mask = rearrange(lengths_to_mask(lengths, t), "b t -> b 1 t").expand(b, q, t)
        return masked_codebook_stats(logits, codes, mask)

    # ---- generation ----------------------------------------------------------------------------
    def prompt(self, units: torch.Tensor | None = None) -> ARPrompt:
        """``[units ; BOS]`` for one sequence: ``units`` ``[S]`` (at most ``max_semantic`` used)."""
        device = self.code_emb.weight.device
        x = self.code_emb(torch.full((1, 1), self.bos, dtype=torch.long, device=device))
        if not self.cfg.semantic_prefix:
            return ARPrompt(x)
        if units is None or units.numel() == 0:
            raise ValueError("this CoarseLM reads semantic units first (semantic_prefix): give them, "
                             "or use a coarse model trained with semantic_prefix: false")
        u = self.unit_emb(units.to(device).reshape(1, -1)[:, : self.cfg.max_semantic])
        return ARPrompt(torch.cat([u, x], dim=1))

    def embed_tokens(self, tokens: torch.Tensor, start: int) -> torch.Tensor:
        """Coarse codes ``[B, N]`` in flattened order, the first at stream index ``start``."""
        q = self.cfg.coarse_codebooks
        books = (torch.arange(tokens.shape[1], device=tokens.device) + start) % q
        return self.code_emb(tokens + books * self.cfg.cardinality)

    def next_logits(self, h: torch.Tensor, index: int) -> torch.Tensor:
        """Hidden ``[B, D]`` -> logits ``[B, cardinality]`` of flattened coarse token ``index``."""
        return h @ self.heads[index % self.cfg.coarse_codebooks]

    @property
    def token_budget(self) -> int:
        return self.cfg.coarse_codebooks * self.cfg.max_frames

    @property
    def token_align(self) -> int:
        return self.cfg.coarse_codebooks
