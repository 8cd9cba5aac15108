"""VALL-E non-autoregressive stage: codebooks 1..K-1, each in one bidirectional pass.

``ValleNAR(cfg)`` reads one sequence ``[text ; audio]`` with full (bidirectional) attention and
key padding. At stage ``k`` (1 <= k < K) the audio frame ``t`` is embedded as

- a prompt frame (``t < prompt_length``): the sum of the embeddings of all K codebooks;
- a target frame: the sum of the embeddings of codebooks ``0..k-1`` (one table per codebook),

plus a learned segment embedding (prompt / target) and a learned stage embedding for ``k``. A
head per stage predicts codebook ``k`` at every frame; the loss counts target frames only. RoPE
positions restart at 0 for the audio, as in the AR stage (``valle.py``), stepping
``audio_position_scale`` a frame.

Training (``loss``) follows the VALL-E recipe: one stage ``k`` drawn uniformly per batch, and a
random prefix of each utterance (``cfg.prompt_min``..``cfg.prompt_max`` of its frames) used as
the acoustic prompt. ``LMOutput.codebook_loss`` has K entries, NaN except at the drawn ``k``.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

from audiolm.models.valle import StageConfigState, ValleConfig, check_codes, text_inputs
from audiolm.nn import Transformer, init_weights
from audiolm.output import LMOutput, masked_codebook_stats
from data.batch import TokenBatch


class ValleNAR(StageConfigState):
    """VALL-E NAR stage; ``forward(text, text_lengths, codes, lengths, prompt_lengths, k)`` ->
    logits ``[B, T, cardinality]`` for codebook ``k``."""

    kind = "valle_nar"

    def __init__(self, cfg: ValleConfig) -> None:
        super().__init__()
        if cfg.num_codebooks < 2:
            raise ValueError("ValleNAR predicts codebooks 1..K-1: cfg.num_codebooks must be >= 2")
        self.cfg = cfg
        self.text_emb = nn.Embedding(cfg.text_vocab, cfg.dim)
        self.audio_embs = nn.ModuleList(nn.Embedding(cfg.cardinality, cfg.dim) for _ in range(cfg.num_codebooks))
        self.stage_emb = nn.Embedding(cfg.num_codebooks, cfg.dim)
        self.segment_emb = nn.Embedding(2, cfg.dim)  # 0 = prompt, 1 = target
        self.transformer = Transformer(cfg.transformer(extra_positions=0))
        # one tensor for the K-1 stage heads: indexing it keeps every head in each step's graph, so
        # DDP needs no find_unused_parameters although a step trains one stage
        self.heads = nn.Parameter(torch.empty(cfg.num_codebooks - 1, cfg.dim, cfg.cardinality))
        init_weights(self, cfg.layers)
        nn.init.normal_(self.heads, std=0.02)

    def forward(self, text: torch.Tensor, text_lengths: torch.Tensor, codes: torch.Tensor,
                lengths: torch.Tensor, prompt_lengths: torch.Tensor, k: int) -> torch.Tensor:
        """text ``[B, L]`` (``text_lengths [B]``), codes ``[B, K, T]`` (``lengths [B]`` frames, of
        which the first ``prompt_lengths [B]`` are the prompt; codebooks >= k of target frames are
        ignored) -> logits ``[B, T, cardinality]`` for codebook ``k``."""
        b, kk, t = codes.shape
        if kk != self.cfg.num_codebooks or not 1 <= k < kk:
            raise ValueError(f"codes must be [B, {self.cfg.num_codebooks}, T] and 1 <= k < K, "
                             f"got {tuple(codes.shape)} and k={k}")
        l, dev = text.shape[1], codes.device
        frame = torch.arange(t, device=dev)[None]  # [1, T]
        in_prompt = frame < prompt_lengths[:, None]  # [B, T]
        audio = torch.zeros(b, t, self.cfg.dim, device=dev, dtype=self.text_emb.weight.dtype)
        for j, emb in enumerate(self.audio_embs):
            visible = in_prompt | (j < k)
            audio = audio + emb(codes[:, j]) * rearrange(visible, "b t -> b t 1").to(audio.dtype)
        audio = audio + self.segment_emb((~in_prompt).long()) + self.stage_emb.weight[k]
        x = torch.cat([self.text_emb(text), audio], dim=1)  # [B, L + T, D]
        positions = torch.cat([torch.arange(l, device=dev, dtype=torch.float32),
                               torch.arange(t, device=dev, dtype=torch.float32) * self.cfg.audio_position_scale])
        valid = torch.cat([torch.arange(l, device=dev)[None] < text_lengths[:, None], frame < lengths[:, None]], dim=1)
        h = self.transformer(x, positions=positions, key_padding_mask=valid, causal=False)
        return h[:, l:] @ self.heads[k - 1]  # [B, T, D] @ [D, V]

    def loss(self, batch: TokenBatch) -> LMOutput:
        cfg = self.cfg
        text, text_lengths = text_inputs(batch, cfg)
        codes = batch.codes
        if codes.shape[1] < cfg.num_codebooks:
            raise ValueError(f"batch has {codes.shape[1]} codebooks, the NAR stage needs {cfg.num_codebooks}: "
                             "set cfg.num_codebooks to the codec's (or data.loader.num_codebooks)")
        codes = codes[:, : cfg.num_codebooks]
        check_codes(codes, cfg)
        b, kk, t = codes.shape
        lengths = batch.lengths.to(codes.device)
        k = int(torch.randint(1, kk, ()))
        frac = cfg.prompt_min + (cfg.prompt_max - cfg.prompt_min) * torch.rand(b, device=codes.device)
        prompt_lengths = (frac * lengths).long()
        logits = self(text, text_lengths, codes, lengths, prompt_lengths, k)  # [B, T, V]
        frame = torch.arange(t, device=codes.device)[None]
        mask = (frame >= prompt_lengths[:, None]) & (frame < lengths[:, None])  # [B, T]
        stats = masked_codebook_stats(logits[:, None], codes[:, k:k + 1], mask[:, None])
        per_k_loss = torch.full((kk,), float("nan"), device=codes.device)
        per_k_acc = per_k_loss.clone()
        per_k_loss[k], per_k_acc[k] = stats.codebook_loss[0], stats.codebook_accuracy[0]
        return LMOutput(loss=stats.loss, codebook_loss=per_k_loss, codebook_accuracy=per_k_acc, tokens=stats.tokens)
