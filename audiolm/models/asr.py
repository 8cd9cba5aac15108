"""Speech recognition from speech tokens: the codec's codes in, text pieces out (CTC).

``TokenASR(cfg)`` reads codes ``[B, K, T]`` (the first ``num_codebooks`` levels of the codec):

1. each level has its own embedding table; a frame is the weighted sum of its levels' vectors
   (one learned weight per level), so every codebook contributes and a model trained on K levels
   still reads fewer;
2. training augments the tokens: the upper levels are dropped (all levels above a random one,
   with probability ``level_dropout``) and ``time_masks`` spans of up to ``time_mask_frames``
   frames are replaced by a learned mask vector (SpecAugment on token embeddings);
3. a strided convolution halves the frame rate (``subsample``), then a bidirectional transformer
   of ``audiolm/nn`` blocks (RoPE, key padding) and a linear head give, per subsampled frame, log
   probabilities over the text pieces plus the CTC blank (the last class).

``loss(batch)`` is the CTC loss of the batch's text tokens (``TokenBatch.text_tokens``: sentencepiece
pieces from ``data.text_model``; 0 is padding and never a target), averaged per target token.
``greedy(codes, lengths)`` decodes by the best class per frame, merging repeats and dropping blanks
(batched and one at a time give the same pieces: padding never reaches a real frame);
``beam_search(codes, lengths, beam)`` keeps the ``beam`` likeliest prefixes with their exact CTC
prefix probabilities (:func:`ctc_prefix_beam_search`). The model
keeps its config in its state dict, so ``load_stage`` rebuilds it from a checkpoint alone.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from audiolm.nn import Transformer, TransformerConfig, init_weights
from audiolm.output import LMOutput
from data.batch import TokenBatch, lengths_to_mask


@dataclass
class ASRConfig:
    """cardinality / num_codebooks: the codec's codes read; text_vocab: text pieces (0 = padding,
    the blank is an extra class); dim / layers / heads: the encoder; max_frames: longest input in
    codec frames; subsample: frame-rate reduction before the encoder (1 or 2); level_dropout /
    time_masks / time_mask_frames: token augmentation in training."""

    cardinality: int = 256
    num_codebooks: int = 4
    text_vocab: int = 512
    dim: int = 192
    layers: int = 6
    heads: int = 4
    max_frames: int = 1000
    subsample: int = 2
    dropout: float = 0.1
    level_dropout: float = 0.2
    time_masks: int = 2
    time_mask_frames: int = 10

    def __post_init__(self) -> None:
        if self.subsample not in (1, 2, 4):
            raise ValueError(f"ASRConfig.subsample must be 1, 2 or 4, got {self.subsample}")
        if self.num_codebooks < 1 or self.text_vocab < 2:
            raise ValueError("ASRConfig needs num_codebooks >= 1 and text_vocab >= 2")

    @property
    def blank(self) -> int:
        return self.text_vocab


class TokenASR(nn.Module):
    """See the module doc. ``forward(codes, lengths) -> (log_probs [B, T', V + 1], out_lengths [B])``."""

    kind = "token_asr"

    def __init__(self, cfg: ASRConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = nn.ModuleList(nn.Embedding(cfg.cardinality, cfg.dim) for _ in range(cfg.num_codebooks))
        self.level_weight = nn.Parameter(torch.ones(cfg.num_codebooks))
        self.mask_vector = nn.Parameter(torch.zeros(cfg.dim))
        s = cfg.subsample
        self.subsample = nn.Conv1d(cfg.dim, cfg.dim, 2 * s - 1 if s > 1 else 1, stride=s, padding=s - 1)
        self.encoder = Transformer(TransformerConfig(dim=cfg.dim, num_layers=cfg.layers, num_heads=cfg.heads,
                                                     max_seq_len=cfg.max_frames // s + 1, dropout=cfg.dropout))
        self.head = nn.Linear(cfg.dim, cfg.text_vocab + 1)
        init_weights(self, cfg.layers)

    # ------------------------------------------------------------------ state
    def get_extra_state(self) -> dict[str, Any]:
        return {"kind": self.kind, "config": asdict(self.cfg)}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        if not isinstance(state, dict):
            return
        if state.get("kind") != self.kind or state.get("config") != asdict(self.cfg):
            raise ValueError(f"checkpoint holds a {state.get('kind')} model with config {state.get('config')}, "
                             f"not this {self.kind} model ({asdict(self.cfg)})")

    # ------------------------------------------------------------------ model
    def out_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        return torch.div(lengths + self.cfg.subsample - 1, self.cfg.subsample, rounding_mode="floor")

    def _embed(self, codes: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        b, k, t = codes.shape
        if k < 1 or k > self.cfg.num_codebooks:
            raise ValueError(f"codes must have 1..{self.cfg.num_codebooks} levels, got {k}")
        if t > self.cfg.max_frames:
            raise ValueError(f"{t} frames exceed the model's max_frames {self.cfg.max_frames}: split the audio")
        keep = torch.ones(b, k, device=codes.device)
        if self.training and self.cfg.level_dropout > 0 and k > 1:
            drop = torch.rand(b, device=codes.device) < self.cfg.level_dropout
            top = torch.randint(1, k, (b,), device=codes.device)  # keep levels < top
            levels = torch.arange(k, device=codes.device)[None]
            keep = torch.where(drop[:, None], (levels < top[:, None]).float(), keep)
        weights = self.level_weight[:k][None, :, None] * keep[:, :, None]  # [B, K, 1]
        x = sum(self.embed[i](codes[:, i].clamp(0, self.cfg.cardinality - 1)) * weights[:, i, :, None]
                for i in range(k))  # [B, T, D]
        if self.training and self.cfg.time_masks > 0 and self.cfg.time_mask_frames > 0:
            pos = torch.arange(t, device=codes.device)[None]
            for _ in range(self.cfg.time_masks):
                width = torch.randint(0, self.cfg.time_mask_frames + 1, (b, 1), device=codes.device)
                start = (torch.rand(b, 1, device=codes.device) * (lengths[:, None] - width).clamp_min(1)).long()
                masked = (pos >= start) & (pos < start + width)
                x = torch.where(masked[..., None], self.mask_vector.to(x.dtype), x)
        return x

    def forward(self, codes: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self._embed(codes, lengths)
        x = x * lengths_to_mask(lengths, codes.shape[-1])[..., None]  # padding stays zero through the conv
        x = self.subsample(x.transpose(1, 2)).transpose(1, 2)  # [B, T', D]
        out = self.out_lengths(lengths)
        x = x[:, : int(out.max())] if x.shape[1] else x
        valid = lengths_to_mask(out, x.shape[1])
        h = self.encoder(x, key_padding_mask=valid, causal=False)
        return F.log_softmax(self.head(h).float(), dim=-1), out

    def loss(self, batch: TokenBatch) -> LMOutput:
        if batch.text_tokens is None or batch.text_lengths is None:
            raise ValueError("TokenASR trains on transcripts: set data.loader.text to `text` and data.text_model "
                             "to a sentencepiece model")
        codes = batch.codes[:, : self.cfg.num_codebooks]
        log_probs, out = self(codes, batch.lengths)
        targets, tl = batch.text_tokens, batch.text_lengths
        if int(targets.max()) >= self.cfg.text_vocab:
            raise ValueError(f"text ids reach {int(targets.max())}, beyond text_vocab {self.cfg.text_vocab}: "
                             "give the model the sentencepiece model's size")
        nll = F.ctc_loss(log_probs.transpose(0, 1), targets, out, tl, blank=self.cfg.blank, reduction="sum",
                         zero_infinity=True)
        n = int(tl.sum())
        loss = nll / max(1, n)
        with torch.no_grad():
            hyp = self.decode_best(log_probs, out)
            errors = sum(_edit_distance(h, t[: int(length)].tolist()) for h, t, length in zip(hyp, targets, tl))
            accuracy = 1.0 - errors / max(1, n)
        return LMOutput(loss=loss, codebook_loss=loss.detach()[None], codebook_accuracy=torch.tensor([accuracy]),
                        tokens=n)

    # ------------------------------------------------------------------ decoding
    def decode_best(self, log_probs: torch.Tensor, lengths: torch.Tensor) -> list[list[int]]:
        """Greedy CTC: the best class per frame, repeats merged, blanks dropped."""
        best = log_probs.argmax(-1)
        out = []
        for row, n in zip(best.tolist(), lengths.tolist()):
            pieces, prev = [], None
            for c in row[:n]:
                if c != prev and c != self.cfg.blank:
                    pieces.append(c)
                prev = c
            out.append(pieces)
        return out

    @torch.no_grad()
    def greedy(self, codes: torch.Tensor, lengths: torch.Tensor | None = None) -> list[list[int]]:
        """Codes ``[B, K, T]`` (right-padded; ``lengths`` default all ``T``) -> text piece ids per row."""
        if lengths is None:
            lengths = torch.full((codes.shape[0],), codes.shape[-1], dtype=torch.long, device=codes.device)
        log_probs, out = self(codes[:, : self.cfg.num_codebooks], lengths)
        return self.decode_best(log_probs, out)


    @torch.no_grad()
    def aligned(self, codes: torch.Tensor, lengths: torch.Tensor | None = None) -> list[list[tuple[int, int, int, float]]]:
        """Greedy CTC with its alignment: per row, ``(piece, first frame, last frame, confidence)``
        for each emitted piece, frames counted in codec frames (before subsampling) and the
        confidence the mean probability of the piece's best class over its frames."""
        if lengths is None:
            lengths = torch.full((codes.shape[0],), codes.shape[-1], dtype=torch.long, device=codes.device)
        log_probs, out = self(codes[:, : self.cfg.num_codebooks], lengths)
        probs, best = log_probs.exp().max(-1)
        s = self.cfg.subsample
        rows = []
        for b, n in enumerate(out.tolist()):
            spans: list[list] = []  # [piece, first, last, sum of probs, frames]
            prev = None
            for t in range(n):
                c = int(best[b, t])
                if c != self.cfg.blank:
                    if c == prev and spans:
                        spans[-1][2] = t
                        spans[-1][3] += float(probs[b, t])
                        spans[-1][4] += 1
                    else:
                        spans.append([c, t, t, float(probs[b, t]), 1])
                prev = c
            last = int(lengths[b]) - 1
            rows.append([(c, f * s, min(last, (e + 1) * s - 1), total / k) for c, f, e, total, k in spans])
        return rows

    @torch.no_grad()
    def beam_search(self, codes: torch.Tensor, lengths: torch.Tensor | None = None, beam: int = 8) -> list[list[int]]:
        """Like :meth:`greedy`, by CTC prefix beam search of width ``beam`` (1 is greedy's labeling
        unless two paths of one labeling outweigh the best path)."""
        if lengths is None:
            lengths = torch.full((codes.shape[0],), codes.shape[-1], dtype=torch.long, device=codes.device)
        log_probs, out = self(codes[:, : self.cfg.num_codebooks], lengths)
        return [ctc_prefix_beam_search(lp[: int(n)], self.cfg.blank, beam)[0][0] for lp, n in zip(log_probs, out)]


def _edit_distance(a: list[int], b: list[int]) -> int:
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


def ctc_prefix_beam_search(log_probs: torch.Tensor, blank: int, beam: int = 8) -> list[tuple[list[int], float]]:
    """The ``beam`` likeliest labelings of one utterance's CTC output ``log_probs [T, V]`` (natural
    log), best first, each with its log probability summed over every alignment that collapses to it
    (blank-ending and label-ending paths kept apart, so a repeated label needs a blank between).
    Without pruning (a beam as large as the number of prefixes) the scores are exact."""
    lp = log_probs.double().cpu()
    neg = float("-inf")

    def add(a: float, b: float) -> float:
        if a == neg:
            return b
        if b == neg:
            return a
        hi, lo = (a, b) if a > b else (b, a)
        return hi + math.log1p(math.exp(lo - hi))

    beams: dict[tuple[int, ...], tuple[float, float]] = {(): (0.0, neg)}  # prefix -> (p_blank, p_label)
    for t in range(lp.shape[0]):
        row = lp[t].tolist()
        nxt: dict[tuple[int, ...], tuple[float, float]] = {}

        def put(prefix: tuple[int, ...], pb: float, pn: float) -> None:
            ob, on = nxt.get(prefix, (neg, neg))
            nxt[prefix] = (add(ob, pb), add(on, pn))

        for prefix, (pb, pn) in beams.items():
            total = add(pb, pn)
            put(prefix, total + row[blank], neg)  # a blank: the prefix stays, now blank-ending
            last = prefix[-1] if prefix else None
            for c, score in enumerate(row):
                if c == blank or score == neg:
                    continue
                if c == last:
                    put(prefix, neg, pn + score)  # the label repeats: merged into the prefix
                    put(prefix + (c,), neg, pb + score)  # after a blank: a new label
                else:
                    put(prefix + (c,), neg, total + score)
        beams = dict(sorted(nxt.items(), key=lambda kv: -add(*kv[1]))[:beam])
    ranked = sorted(((list(p), add(pb, pn)) for p, (pb, pn) in beams.items()), key=lambda x: -x[1])
    return ranked
