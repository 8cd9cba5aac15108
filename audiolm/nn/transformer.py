"""The decoder transformer every audio LM stage shares (semantic, coarse, fine, VALL-E, MusicGen).

``Transformer(cfg)(x [B, S, D], ...) -> [B, S, D]``: pre-norm blocks (RMSNorm, rotary
self-attention, optional cross-attention, SwiGLU MLP) and a final norm. It takes and returns
hidden states: token embeddings, heads and weight tying belong to the models built on it.

Attention structure, per call:

- ``causal=True`` (default): each position sees itself and its past (SDPA ``is_causal``).
- ``causal=False``: fully bidirectional (non-autoregressive models).
- ``attn_mask`` ``[S, S_k]`` / ``[B, S, S_k]`` bool, True = may attend: replaces the structure
  above, e.g. ``prefix_causal_mask`` for a prefix-LM.
- ``key_padding_mask`` ``[B, S]``, True on real tokens: padded keys are never attended to.

``positions`` (``[S]`` or ``[B, S]``, integers or fractional, default ``offset + arange(S)``) feed RoPE only. With a
``cache`` (see ``kv_cache.py``) the call appends ``S`` slots and attends to all slots so far; the
training forward (no cache) is free of data-dependent Python control flow and compiles with
``torch.compile(fullgraph=True)``.

MLP choice: SwiGLU (``w_down(silu(x W_gate) * x W_up)``) with hidden width ``2/3 * mlp_ratio *
dim`` rounded up to a multiple of 8, so ``mlp_ratio=4`` costs about the parameters of a GELU MLP
of ratio 4 (gated MLPs trained better at equal size in PaLM / Llama). No learned norm bias;
``bias`` applies to the linear layers only.

Precision is the caller's: under ``torch.autocast`` the matmuls and attention run in the low
precision, while RMSNorm and RoPE compute in float32 and the residual stream keeps the input's
dtype.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from audiolm.nn.attention import CrossAttention, SelfAttention, SelfAttentionMask, self_attention_mask
from audiolm.nn.kv_cache import KVCache
from audiolm.nn.rope import RopeAngles, rope_angles


@dataclass
class TransformerConfig:
    """dim: model width D; num_heads / num_kv_heads: query / key-value heads (grouped-query
    attention when fewer kv heads; None means as many as query heads); mlp_ratio: SwiGLU width
    factor (see the module doc); max_seq_len: longest sequence a forward or cache takes;
    rope_theta: RoPE base; cross_attention: add a cross-attention sub-block to every layer, to a
    conditioning of width cross_dim (None means dim); bias: biases in the linear layers.
    """

    dim: int
    num_layers: int
    num_heads: int
    max_seq_len: int
    num_kv_heads: int | None = None
    mlp_ratio: float = 4.0
    dropout: float = 0.0
    rope_theta: float = 10000.0
    cross_attention: bool = False
    cross_dim: int | None = None
    norm_eps: float = 1e-5
    bias: bool = False

    def __post_init__(self) -> None:
        for name in ("dim", "num_layers", "num_heads", "max_seq_len", "num_kv_heads", "cross_dim"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"TransformerConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.dim % self.num_heads or self.head_dim % 2:
            raise ValueError(f"TransformerConfig: dim ({self.dim}) must split into num_heads "
                             f"({self.num_heads}) heads of even width, got width {self.dim / self.num_heads}")
        if self.num_heads % self.kv_heads:
            raise ValueError(f"TransformerConfig: num_kv_heads ({self.kv_heads}) must divide "
                             f"num_heads ({self.num_heads})")
        if not 0.0 <= self.dropout < 1.0 or self.mlp_ratio <= 0:
            raise ValueError(f"TransformerConfig: dropout must be in [0, 1) and mlp_ratio > 0, "
                             f"got {self.dropout}, {self.mlp_ratio}")

    @property
    def head_dim(self) -> int:
        return self.dim // self.num_heads

    @property
    def kv_heads(self) -> int:
        return self.num_kv_heads if self.num_kv_heads is not None else self.num_heads

    @property
    def context_dim(self) -> int:
        """Width of the cross-attention conditioning."""
        return self.cross_dim if self.cross_dim is not None else self.dim

    @property
    def mlp_hidden_dim(self) -> int:
        return 8 * math.ceil(2 * self.mlp_ratio * self.dim / 3 / 8)


class RMSNorm(nn.Module):
    """``x / rms(x) * weight`` over the last axis, computed in float32, returned in ``x.dtype``."""

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # one fused kernel where torch has one (CUDA); the same arithmetic elsewhere
        return F.rms_norm(x.float(), self.weight.shape, self.weight.float(), self.eps).to(x.dtype)


class SwiGLU(nn.Module):
    """``[B, S, D] -> [B, S, D]`` gated MLP: ``down(silu(gate(x)) * up(x))``."""

    def __init__(self, dim: int, hidden_dim: int, bias: bool = False, dropout: float = 0.0) -> None:
        super().__init__()
        self.gate_up = nn.Linear(dim, 2 * hidden_dim, bias=bias)
        self.down = nn.Linear(hidden_dim, dim, bias=bias)
        self.down.is_residual_proj = True
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up(x).chunk(2, dim=-1)
        return self.dropout(self.down(F.silu(gate) * up))


class Block(nn.Module):
    """Pre-norm layer: ``x + attn(norm(x))``, then ``x + cross(norm(x))`` if any, ``x + mlp(norm(x))``."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.attn_norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.attn = SelfAttention(cfg.dim, cfg.num_heads, cfg.kv_heads, cfg.bias, cfg.dropout)
        self.cross_norm: RMSNorm | None = None
        self.cross: CrossAttention | None = None
        if cfg.cross_attention:
            self.cross_norm = RMSNorm(cfg.dim, cfg.norm_eps)
            self.cross = CrossAttention(cfg.dim, cfg.context_dim, cfg.num_heads, cfg.kv_heads,
                                        cfg.bias, cfg.dropout)
        self.mlp_norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.mlp = SwiGLU(cfg.dim, cfg.mlp_hidden_dim, cfg.bias, cfg.dropout)

    def forward(self, x: torch.Tensor, angles: RopeAngles, mask: SelfAttentionMask,
                cache: KVCache | None, layer: int,
                cross_kv: tuple[torch.Tensor, torch.Tensor] | None,
                cross_mask: torch.Tensor | None) -> torch.Tensor:
        x = x + self.attn(self.attn_norm(x), angles, mask, cache, layer)
        if self.cross is not None and self.cross_norm is not None and cross_kv is not None:
            x = x + self.cross(self.cross_norm(x), cross_kv[0], cross_kv[1], cross_mask)
        return x + self.mlp(self.mlp_norm(x))


class Transformer(nn.Module):
    """Stack of ``cfg.num_layers`` blocks and a final RMSNorm; see the module doc."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.num_layers))
        self.norm = RMSNorm(cfg.dim, cfg.norm_eps)
        init_weights(self, cfg.num_layers)

    def make_cache(self, batch: int, max_len: int | None = None, dtype: torch.dtype | None = None,
                   device: torch.device | str | None = None) -> KVCache:
        """A cache for this model (default: ``cfg.max_seq_len`` slots, the parameters' dtype/device)."""
        param = next(self.parameters())
        return KVCache(batch, max_len or self.cfg.max_seq_len, self.cfg.num_layers, self.cfg.kv_heads,
                       self.cfg.head_dim, dtype or param.dtype, device or param.device)

    def forward(self, x: torch.Tensor, positions: torch.Tensor | None = None,
                attn_mask: torch.Tensor | None = None, key_padding_mask: torch.Tensor | None = None,
                cross: torch.Tensor | None = None, cross_mask: torch.Tensor | None = None,
                cache: KVCache | None = None, causal: bool = True) -> torch.Tensor:
        """x ``[B, S, D]`` -> hidden ``[B, S, D]``, final norm applied.

        key_padding_mask ``[B, S]`` covers this call's tokens (with a cache it is remembered for
        later calls). cross ``[B, L, Dc]`` / cross_mask ``[B, L]``: the conditioning, required
        when ``cfg.cross_attention`` unless the cache already holds its keys/values.
        """
        cfg = self.cfg
        if x.dim() != 3 or x.shape[-1] != cfg.dim:
            raise ValueError(f"Transformer expects x [B, S, {cfg.dim}], got {tuple(x.shape)}")
        b, s, _ = x.shape
        start = cache.length if cache is not None else 0
        if start + s > cfg.max_seq_len:
            raise ValueError(f"sequence of {start + s} exceeds max_seq_len {cfg.max_seq_len}")
        if key_padding_mask is not None and tuple(key_padding_mask.shape) != (b, s):
            raise ValueError(f"key_padding_mask must be [B, S] = [{b}, {s}], got "
                             f"{tuple(key_padding_mask.shape)}")
        if positions is None:
            positions = torch.arange(start, start + s, device=x.device)
        if positions.shape[-1] != s or positions.dim() not in (1, 2):
            raise ValueError(f"positions must be [S] or [B, S] with S={s}, got {tuple(positions.shape)}")

        key_valid = key_padding_mask
        if cache is not None:
            cache.check_room(b, s)
            if key_padding_mask is not None:
                cache.mark_valid(key_padding_mask.to(torch.bool))
            key_valid = cache.key_valid(start + s)
        elif key_valid is not None:
            key_valid = key_valid.to(torch.bool)
        mask = self_attention_mask(s, start, causal, attn_mask, key_valid, x.device)
        angles = rope_angles(positions, cfg.head_dim, cfg.rope_theta)
        cross_mask = self._check_cross(b, cross, cross_mask, cache)

        for layer, block in enumerate(self.blocks):
            cross_kv = None
            if block.cross is not None:
                if cache is not None and cache.has_cross(layer):
                    cross_kv = cache.get_cross(layer)
                else:
                    assert cross is not None  # checked by _check_cross
                    cross_kv = block.cross.project_kv(cross)
                    if cache is not None:
                        cache.set_cross(layer, *cross_kv)
            x = block(x, angles, mask, cache, layer, cross_kv, cross_mask)
        if cache is not None:
            cache.advance(s)
        return self.norm(x)

    def _check_cross(self, batch: int, cross: torch.Tensor | None, cross_mask: torch.Tensor | None,
                     cache: KVCache | None) -> torch.Tensor | None:
        """Validate the conditioning; returns the cross mask to use (the cached one if cached)."""
        cfg = self.cfg
        if not cfg.cross_attention:
            if cross is not None:
                raise ValueError("cross given but TransformerConfig.cross_attention is False")
            return None
        if cache is not None and cache.has_cross(0):
            return cache.cross_mask
        if cross is None:
            raise ValueError("TransformerConfig.cross_attention is True: pass cross [B, L, Dc]")
        if cross.dim() != 3 or cross.shape[0] != batch or cross.shape[-1] != cfg.context_dim:
            raise ValueError(f"cross must be [B, L, {cfg.context_dim}] with B={batch}, "
                             f"got {tuple(cross.shape)}")
        if cross_mask is not None:
            if tuple(cross_mask.shape) != tuple(cross.shape[:2]):
                raise ValueError(f"cross_mask must be [B, L] = {list(cross.shape[:2])}, "
                                 f"got {tuple(cross_mask.shape)}")
            cross_mask = cross_mask.to(torch.bool)
        if cache is not None:
            cache.cross_mask = cross_mask
        return cross_mask


def init_weights(module: nn.Module, num_layers: int, std: float = 0.02) -> None:
    """GPT-2 initialisation of every submodule of ``module``, in place.

    Linear and Embedding weights ~ N(0, std), biases 0, RMSNorm weights 1; linears that write
    into the residual stream (marked ``is_residual_proj``: attention outputs, MLP down
    projections) get ``std / sqrt(2 * num_layers)`` so the residual's variance stays bounded
    with depth. Models call it again over their whole module after adding embeddings and heads.
    """
    residual_std = std / math.sqrt(2 * num_layers)
    for m in module.modules():
        if isinstance(m, nn.Linear):
            residual = getattr(m, "is_residual_proj", False)
            nn.init.normal_(m.weight, mean=0.0, std=residual_std if residual else std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, mean=0.0, std=std)
        elif isinstance(m, RMSNorm):
            nn.init.ones_(m.weight)
