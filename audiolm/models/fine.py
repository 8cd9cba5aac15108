"""AudioLM's fine acoustic stage: codebooks ``Qc .. K-1`` from the coarse codebooks.

AudioLM's own fine stage is a causal LM over flattened windows of all codebooks. This one is the
simpler parallel form (as in VALL-E's non-autoregressive stage): the fine codes of a frame depend
mostly on the coarse codes around it, so each fine level ``q`` is predicted for every frame at
once, by a bidirectional transformer over frames that reads

    x_t = sum_{k < q} E_k[codes[k, t]] + L[q]      (one embedding per codebook, one per level)

and scores the codes of level ``q`` with that level's head. ``loss(batch)`` teacher-forces every
fine level in one pass (the batch is repeated per level); ``codebook_loss`` has ``K`` entries,
NaN for the coarse codebooks, which are inputs only. Generation (``predict``) runs ``K - Qc``
passes, level by level, over windows of at most ``max_frames`` frames.

Right padding is masked from attention and loss. Longer utterances are cropped to ``max_frames``
(a random window while training, the start otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from einops import einsum, rearrange, repeat
from torch import nn

from audiolm.nn import Transformer, TransformerConfig, init_weights
from audiolm.output import LMOutput, masked_codebook_stats
from audiolm.sampling import SamplingConfig, select_tokens
from data.batch import TokenBatch, lengths_to_mask


@dataclass
class FineLMConfig:
    """cardinality: codes per codebook; num_codebooks: K; coarse_codebooks: Qc given as input;
    max_frames: frames one forward takes; causal: causal attention over frames instead of
    bidirectional; dim / layers / heads / mlp_ratio / dropout: the transformer."""

    cardinality: int = 1024
    num_codebooks: int = 8
    coarse_codebooks: int = 2
    max_frames: int = 512
    causal: bool = False
    dim: int = 256
    layers: int = 4
    heads: int = 4
    mlp_ratio: float = 4.0
    dropout: float = 0.0

    def __post_init__(self) -> None:
        for name in ("cardinality", "num_codebooks", "coarse_codebooks", "max_frames", "dim", "layers", "heads"):
            if getattr(self, name) < 1:
                raise ValueError(f"FineLMConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.coarse_codebooks >= self.num_codebooks:
            raise ValueError(f"FineLMConfig: coarse_codebooks ({self.coarse_codebooks}) must be fewer than "
                             f"num_codebooks ({self.num_codebooks}): there is nothing fine to predict")

    @property
    def fine_codebooks(self) -> int:
        return self.num_codebooks - self.coarse_codebooks


class FineLM(nn.Module):
    """Level-by-level parallel prediction of the fine codebooks; see the module doc."""

    def __init__(self, cfg: FineLMConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.code_emb = nn.Embedding(cfg.num_codebooks * cfg.cardinality, cfg.dim)
        self.level_emb = nn.Embedding(cfg.fine_codebooks, cfg.dim)
        self.transformer = Transformer(TransformerConfig(
            dim=cfg.dim, num_layers=cfg.layers, num_heads=cfg.heads, max_seq_len=cfg.max_frames,
            mlp_ratio=cfg.mlp_ratio, dropout=cfg.dropout))
        self.heads = nn.Parameter(torch.empty(cfg.fine_codebooks, cfg.dim, cfg.cardinality))
        init_weights(self, cfg.layers)
        nn.init.normal_(self.heads, std=0.02)

    def logits(self, codes: torch.Tensor, level: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        """Codes ``[B, K', T]`` (at least the first ``Qc + level`` codebooks real; the rest ignored),
        fine level ``[B]`` (0 = codebook Qc), valid frames ``[B, T]`` -> logits ``[B, T, cardinality]``."""
        cfg = self.cfg
        b, k, t = codes.shape
        if t > cfg.max_frames:
            raise ValueError(f"FineLM takes at most {cfg.max_frames} frames a pass, got {t}")
        offsets = torch.arange(k, device=codes.device) * cfg.cardinality
        emb = self.code_emb(codes + offsets[:, None])  # [B, K', T, D]
        used = torch.arange(k, device=codes.device)[None, :] < (cfg.coarse_codebooks + level)[:, None]  # [B, K']
        x = einsum(emb, used.to(emb.dtype), "b k t d, b k -> b t d") + self.level_emb(level)[:, None]
        h = self.transformer(x, key_padding_mask=valid, causal=cfg.causal)
        return einsum(h, self.heads[level], "b t d, b d c -> b t c")

    def loss(self, batch: TokenBatch) -> LMOutput:
        cfg = self.cfg
        codes, lengths = batch.codes, batch.lengths
        if codes.shape[1] < cfg.num_codebooks:
            raise ValueError(f"FineLM needs {cfg.num_codebooks} codebooks, the batch has {codes.shape[1]}")
        codes = codes[:, : cfg.num_codebooks]
        codes, lengths = self._crop(codes, lengths)
        b, k, t = codes.shape
        f = cfg.fine_codebooks
        levels = repeat(torch.arange(f, device=codes.device), "f -> (f b)", b=b)
        valid = lengths_to_mask(lengths, t)
        logits = self.logits(repeat(codes, "b k t -> (f b) k t", f=f), levels,
                             repeat(valid, "b t -> (f b) t", f=f))
        logits = rearrange(logits, "(f b) t c -> b f t c", f=f)
        mask = repeat(valid, "b t -> b f t", f=f)
        out = masked_codebook_stats(logits, codes[:, cfg.coarse_codebooks:], mask)
        pad = torch.full((cfg.coarse_codebooks,), float("nan"), device=codes.device)
        out.codebook_loss = torch.cat([pad, out.codebook_loss])
        out.codebook_accuracy = torch.cat([pad, out.codebook_accuracy])
        return out

    def _crop(self, codes: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        w = self.cfg.max_frames
        if codes.shape[-1] <= w:
            return codes, lengths
        rows = []
        for i in range(codes.shape[0]):
            extra = int(lengths[i]) - w
            start = int(torch.randint(0, extra + 1, ())) if self.training and extra > 0 else 0
            rows.append(codes[i, :, start:start + w])
        return torch.stack(rows), lengths.clamp(max=w)

    @torch.no_grad()
    def predict(self, coarse: torch.Tensor, sampling: SamplingConfig | None = None,
                generator: torch.Generator | None = None, known: torch.Tensor | None = None,
                context: int | None = None) -> torch.Tensor:
        """Coarse codes ``[Qc, T]`` -> all codes ``[K, T]``.

        known: ``[K, Tp]`` codes whose fine levels are kept as they are for the first ``Tp`` frames
        (an acoustic prompt). Utterances longer than ``max_frames`` go through windows of
        ``max_frames`` frames that overlap by ``context`` frames (default a quarter): each window
        keeps its predictions after its overlap.
        """
        cfg = self.cfg
        sampling = sampling or SamplingConfig(temperature=0.0)
        if coarse.dim() != 2 or coarse.shape[0] != cfg.coarse_codebooks:
            raise ValueError(f"coarse codes must be [{cfg.coarse_codebooks}, T], got {tuple(coarse.shape)}")
        t = coarse.shape[1]
        device = self.code_emb.weight.device
        codes = torch.zeros(cfg.num_codebooks, t, dtype=torch.long, device=device)
        codes[: cfg.coarse_codebooks] = coarse.to(device)
        tp = 0 if known is None else min(known.shape[1], t)
        if tp:
            codes[:, :tp] = known[: cfg.num_codebooks, :tp].to(device)
        w = cfg.max_frames
        context = w // 4 if context is None else context
        if not 0 <= context < w:
            raise ValueError(f"context must be in [0, {w}), got {context}")
        for level in range(cfg.fine_codebooks):
            k = cfg.coarse_codebooks + level
            start, new = 0, codes[k].clone()
            while start < t:
                window = codes[None, :k + 1, start:start + w]
                lv = torch.full((1,), level, dtype=torch.long, device=device)
                ids = select_tokens(self.logits(window, lv)[0], sampling, generator=generator)  # [W]
                keep = 0 if start == 0 else context
                new[start + keep:start + window.shape[-1]] = ids[keep:]
                if start + w >= t:
                    break
                start += w - context
            new[:tp] = codes[k, :tp]
            codes[k] = new
        return codes
