"""AudioLM's first stage: a decoder-only LM over semantic units.

``SemanticLM(cfg)`` reads one sequence per utterance, ``[text ; BOS u_0 ... u_{S-1}]``, and predicts
``u_0 ... u_{S-1}, EOS``:

- units ``0 .. n_units-1`` share one embedding with two extra ids, ``BOS = n_units`` (input only)
  and ``EOS = n_units + 1`` (predicted after the last real unit);
- with ``cfg.text_vocab > 0`` and ``batch.text_tokens`` present, the text (0-padded ids) is a
  prefix with its own embedding, attended bidirectionally (a prefix LM); otherwise the sequence
  starts at BOS;
- right padding (text and units) is masked from attention and loss; RoPE positions count the
  real tokens of each row, so padding never shifts a position.

Utterances longer than ``cfg.max_units`` units are cropped: a random window while training, the
start otherwise (EOS is then predicted only when the window reaches the real end).

Generation (``audiolm.models.audiolm_generate``) uses ``prompt`` / ``embed_tokens`` /
``next_logits``, the interface every autoregressive stage shares.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from einops import rearrange
from torch import nn

from audiolm.nn import Transformer, TransformerConfig, init_weights, prefix_causal_mask
from audiolm.output import LMOutput, masked_codebook_stats
from data.batch import TokenBatch, lengths_to_mask


@dataclass
class SemanticLMConfig:
    """n_units: semantic vocabulary (k-means clusters); text_vocab: text ids for a prefix (0 = none);
    max_units / max_text: longest unit and text sequences a forward takes; dim / layers / heads /
    mlp_ratio / dropout: the transformer. tie_weights: the output head shares the unit embedding
    (one ``[n_units + 2, dim]`` matrix)."""

    n_units: int = 100
    text_vocab: int = 0
    max_units: int = 512
    max_text: int = 0
    dim: int = 256
    layers: int = 4
    heads: int = 4
    mlp_ratio: float = 4.0
    dropout: float = 0.0
    tie_weights: bool = False

    def __post_init__(self) -> None:
        for name in ("n_units", "max_units", "dim", "layers", "heads"):
            if getattr(self, name) < 1:
                raise ValueError(f"SemanticLMConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.text_vocab < 0 or self.max_text < 0:
            raise ValueError("SemanticLMConfig.text_vocab and max_text must be >= 0")
        if self.text_vocab > 0 and self.max_text < 1:
            raise ValueError("SemanticLMConfig: a text prefix (text_vocab > 0) needs max_text >= 1")

    @property
    def max_seq_len(self) -> int:
        return self.max_text + 1 + self.max_units


@dataclass
class ARPrompt:
    """What an autoregressive stage reads before its first generated token.

    x: ``[1, P, D]`` embeddings, ending with BOS; bidirectional: how many leading positions attend
    to each other in both directions (a prefix LM); 0 for a plain causal model.
    """

    x: torch.Tensor
    bidirectional: int = 0

    def mask(self, seq_len: int) -> torch.Tensor | None:
        """The self-attention mask of a ``seq_len`` sequence starting with this prompt, or None."""
        if self.bidirectional == 0:
            return None
        return prefix_causal_mask(self.bidirectional, seq_len, device=self.x.device)


class SemanticLM(nn.Module):
    """Next-unit prediction over semantic units; see the module doc."""

    def __init__(self, cfg: SemanticLMConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.bos, self.eos = cfg.n_units, cfg.n_units + 1
        self.unit_emb = nn.Embedding(cfg.n_units + 2, cfg.dim)
        self.text_emb = nn.Embedding(cfg.text_vocab, cfg.dim) if cfg.text_vocab > 0 else None
        self.transformer = Transformer(TransformerConfig(
            dim=cfg.dim, num_layers=cfg.layers, num_heads=cfg.heads, max_seq_len=cfg.max_seq_len,
            mlp_ratio=cfg.mlp_ratio, dropout=cfg.dropout))
        self.head = nn.Linear(cfg.dim, cfg.n_units + 2, bias=False)
        init_weights(self, cfg.layers)
        if cfg.tie_weights:
            self.head.weight = self.unit_emb.weight

    # ---- training ------------------------------------------------------------------------------
    def _crop(self, units: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Units ``[B, S]`` cut to ``max_units``; returns units, their lengths and whether each row
        still ends at its real end (so EOS is a target)."""
        w = self.cfg.max_units
        if units.shape[1] <= w:
            return units, lengths, torch.ones_like(lengths, dtype=torch.bool)
        rows, ends = [], []
        for i in range(units.shape[0]):
            extra = int(lengths[i]) - w
            start = int(torch.randint(0, extra + 1, ())) if self.training and extra > 0 else 0
            rows.append(units[i, start:start + w])
            ends.append(extra <= start)
        return (torch.stack(rows), lengths.clamp(max=w),
                torch.tensor(ends, dtype=torch.bool, device=lengths.device))

    def _text(self, batch: TokenBatch) -> tuple[torch.Tensor, torch.Tensor] | None:
        if self.text_emb is None or batch.text_tokens is None:
            return None
        text = batch.text_tokens[:, : self.cfg.max_text]
        lengths = batch.text_lengths if batch.text_lengths is not None else (text != 0).sum(-1)
        return text, lengths.clamp(max=text.shape[1])

    def loss(self, batch: TokenBatch) -> LMOutput:
        if batch.semantic is None:
            raise ValueError("SemanticLM needs semantic units in the batch: label the token shards with "
                             "`codeclm semantic label` (audiolm.semantic_labels.add_semantic_units)")
        units = batch.semantic
        lengths = batch.semantic_lengths if batch.semantic_lengths is not None else torch.full(
            (units.shape[0],), units.shape[1], device=units.device)
        units, lengths, has_end = self._crop(units, lengths)
        b, s = units.shape
        device = units.device
        bos = torch.full((b, 1), self.bos, dtype=torch.long, device=device)
        x = self.unit_emb(torch.cat([bos, units], dim=1))  # [B, 1+S, D]
        unit_valid = lengths_to_mask(lengths + 1, s + 1)  # BOS and real units
        positions = rearrange(torch.arange(s + 1, device=device), "s -> 1 s").expand(b, -1)
        attn_mask, n_text = None, 0
        text = self._text(batch)
        if text is not None:
            tokens, text_len = text
            n_text = tokens.shape[1]
            x = torch.cat([self.text_emb(tokens), x], dim=1)
            text_pos = rearrange(torch.arange(n_text, device=device), "l -> 1 l").expand(b, -1)
            positions = torch.cat([text_pos, positions + text_len[:, None]], dim=1)
            unit_valid = torch.cat([lengths_to_mask(text_len, n_text), unit_valid], dim=1)
            attn_mask = prefix_causal_mask(n_text, n_text + s + 1, device=device)
        h = self.transformer(x, positions=positions, attn_mask=attn_mask, key_padding_mask=unit_valid)
        logits = self.head(h[:, n_text:])  # [B, 1+S, V]: position j predicts unit j (EOS at j = length)
        targets = torch.nn.functional.pad(units, (0, 1))
        targets = targets.scatter(1, lengths[:, None], self.eos)
        mask = lengths_to_mask(lengths, s + 1) | (
            (torch.arange(s + 1, device=device)[None] == lengths[:, None]) & has_end[:, None])
        return masked_codebook_stats(logits[:, None], targets[:, None], mask[:, None])

    # ---- generation ----------------------------------------------------------------------------
    def prompt(self, text_tokens: torch.Tensor | None = None) -> ARPrompt:
        """``[text ; BOS]`` for one sequence; ``text_tokens`` ``[L]`` (needs ``text_vocab > 0``)."""
        device = self.unit_emb.weight.device
        x = self.unit_emb(torch.full((1, 1), self.bos, dtype=torch.long, device=device))
        if text_tokens is None or text_tokens.numel() == 0:
            return ARPrompt(x)
        if self.text_emb is None:
            raise ValueError("this SemanticLM has no text prefix (text_vocab is 0): generate without text")
        text = self.text_emb(text_tokens.to(device).reshape(1, -1)[:, : self.cfg.max_text])
        return ARPrompt(torch.cat([text, x], dim=1), bidirectional=text.shape[1])

    def embed_tokens(self, tokens: torch.Tensor, start: int) -> torch.Tensor:
        """Generated units ``[B, N]`` (``start``: index of the first in the stream) -> ``[B, N, D]``."""
        return self.unit_emb(tokens)

    def next_logits(self, h: torch.Tensor, index: int) -> torch.Tensor:
        """Hidden ``[B, D]`` -> logits ``[B, n_units]`` of unit ``index`` (BOS and EOS left out, so
        generation runs to the length asked for)."""
        return self.head(h)[..., : self.cfg.n_units]

    @property
    def token_budget(self) -> int:
        """Most generated tokens one window (after the prompt) holds."""
        return self.cfg.max_units

    @property
    def token_align(self) -> int:
        """Sliding windows start at a multiple of this many tokens."""
        return 1
