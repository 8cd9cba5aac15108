"""Multi-head attention (self and cross, grouped-query optional) and the masks it takes.

Masks are boolean and True where a query MAY attend to a key, the convention of
``torch.nn.functional.scaled_dot_product_attention``; key padding masks are ``[B, S]`` and True
on real tokens (as in ``data.batch``).

A query whose every key is masked would make SDPA return NaN, and NaN in a padded position's
value leaks into every row through ``0 * NaN``. So padded queries always see themselves
(self-attention) and a row with no valid conditioning attends to anything and has its output
zeroed (cross-attention): outputs at real positions are never affected by either.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import nn

from audiolm.nn.kv_cache import KVCache
from audiolm.nn.rope import RopeAngles, apply_rope


@dataclass
class SelfAttentionMask:
    """mask: ``[B or 1, 1, S, S_k]`` bool or None; is_causal: let SDPA apply the causal mask."""

    mask: torch.Tensor | None
    is_causal: bool


def causal_mask(q_len: int, k_len: int, device: torch.device | None = None) -> torch.Tensor:
    """``[q_len, k_len]``: the queries are the last ``q_len`` of ``k_len`` slots; each sees itself
    and everything before it (the cached-decoding form of a causal mask)."""
    offset = k_len - q_len
    q = torch.arange(q_len, device=device)[:, None] + offset
    k = torch.arange(k_len, device=device)[None, :]
    return k <= q


def prefix_causal_mask(prefix_lengths: torch.Tensor | int, seq_len: int,
                       device: torch.device | None = None) -> torch.Tensor:
    """Prefix-LM mask: bidirectional inside the first ``prefix_lengths`` positions, causal after.

    ``prefix_lengths`` ``[B]`` gives ``[B, S, S]``; an int gives ``[S, S]``. Prefix positions see
    the whole prefix and nothing after it; a later position sees the prefix and its own past.
    """
    if isinstance(prefix_lengths, int):
        prefix = torch.tensor([prefix_lengths], device=device)
    else:
        prefix = prefix_lengths.to(device=device if device is not None else prefix_lengths.device)
    idx = torch.arange(seq_len, device=prefix.device)
    in_prefix = idx[None, :] < prefix[:, None]  # [B, S] over keys
    allowed = (idx[None, None, :] <= idx[None, :, None]) | in_prefix[:, None, :]  # [B, S, S]
    return allowed[0] if isinstance(prefix_lengths, int) else allowed


def self_attention_mask(q_len: int, start: int, causal: bool, attn_mask: torch.Tensor | None,
                        key_valid: torch.Tensor | None, device: torch.device) -> SelfAttentionMask:
    """Combine the structure (``attn_mask``, else causal or bidirectional) with key padding.

    Queries are slots ``[start, start + q_len)`` (``start`` > 0 with a cache), keys slots
    ``[0, start + q_len)``. ``attn_mask`` (``[S, S_k]`` or ``[B, S, S_k]``) replaces the causal
    structure when given. ``key_valid`` ``[B, S_k]`` is True on real tokens. Returns no mask at
    all when SDPA's ``is_causal`` (or nothing) suffices, so the fast kernels stay usable.
    """
    k_len = start + q_len
    if attn_mask is None and key_valid is None:
        if not causal or q_len == 1:
            return SelfAttentionMask(mask=None, is_causal=False)
        if start == 0:
            return SelfAttentionMask(mask=None, is_causal=True)
    if attn_mask is not None:
        if tuple(attn_mask.shape[-2:]) != (q_len, k_len) or attn_mask.dim() not in (2, 3):
            raise ValueError(f"attn_mask must be [S, S_k] or [B, S, S_k] with S={q_len}, "
                             f"S_k={k_len}; got {tuple(attn_mask.shape)}")
        allowed = attn_mask.to(device=device, dtype=torch.bool)
        allowed = allowed[None] if allowed.dim() == 2 else allowed
    elif causal:
        allowed = causal_mask(q_len, k_len, device=device)[None]
    else:
        allowed = torch.ones(1, q_len, k_len, dtype=torch.bool, device=device)
    if key_valid is not None:
        if tuple(key_valid.shape[1:]) != (k_len,):
            raise ValueError(f"key padding mask must be [B, {k_len}], got {tuple(key_valid.shape)}")
        allowed = allowed & key_valid[:, None, :]
        padded_query = ~key_valid[:, start:]  # [B, S]
        diagonal = _diagonal(q_len, k_len, device)  # [S, S_k]
        allowed = allowed | (diagonal[None] & padded_query[:, :, None])
    return SelfAttentionMask(mask=rearrange(allowed, "b q k -> b 1 q k"), is_causal=False)


def _diagonal(q_len: int, k_len: int, device: torch.device) -> torch.Tensor:
    """``[q_len, k_len]`` True where key slot equals query slot (queries are the last slots)."""
    q = torch.arange(q_len, device=device)[:, None] + (k_len - q_len)
    return torch.arange(k_len, device=device)[None, :] == q


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None,
           is_causal: bool, dropout_p: float) -> torch.Tensor:
    """SDPA over ``q [B, H, S, Dh]`` and ``k, v [B, H_kv, S_k, Dh]`` (``H_kv`` divides ``H``)."""
    k, v = k.to(q.dtype), v.to(q.dtype)
    groups = q.shape[1] // k.shape[1]
    if groups > 1 and mask is not None:
        # the memory-efficient kernels take masks but not grouped heads: expand the heads
        k = repeat(k, "b h s d -> b (h g) s d", g=groups)
        v = repeat(v, "b h s d -> b (h g) s d", g=groups)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p,
                                          is_causal=is_causal, enable_gqa=groups > 1 and mask is None)


class SelfAttention(nn.Module):
    """Rotary multi-head self-attention; ``num_kv_heads`` < ``num_heads`` gives grouped queries.

    ``forward(x [B, S, D], angles, mask, cache=None, layer=0) -> [B, S, D]``. With a cache, the
    new keys/values are written at the cache's slots and the queries attend to all slots so far.
    """

    def __init__(self, dim: int, num_heads: int, num_kv_heads: int, bias: bool = False,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.num_heads, self.num_kv_heads = num_heads, num_kv_heads
        self.head_dim = dim // num_heads
        self.dropout = dropout
        self.qkv = nn.Linear(dim, (num_heads + 2 * num_kv_heads) * self.head_dim, bias=bias)
        self.out = nn.Linear(num_heads * self.head_dim, dim, bias=bias)
        self.out.is_residual_proj = True
        self.resid_dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, angles: RopeAngles, mask: SelfAttentionMask,
                cache: KVCache | None = None, layer: int = 0) -> torch.Tensor:
        q_size, kv_size = self.num_heads * self.head_dim, self.num_kv_heads * self.head_dim
        qk, v = self.qkv(x).split((q_size + kv_size, kv_size), dim=-1)
        # queries and keys are rotated in one pass: [B, H + H_kv, S, Dh]
        qk = apply_rope(rearrange(qk, "b s (h d) -> b h s d", d=self.head_dim), angles)
        q, k = qk.split((self.num_heads, self.num_kv_heads), dim=1)
        v = rearrange(v, "b s (h d) -> b h s d", h=self.num_kv_heads)
        if cache is not None:
            k, v = cache.update(layer, k, v)  # [B, H_kv, S_k, Dh], all slots so far
        dropout_p = self.dropout if self.training else 0.0
        y = attend(q, k, v, mask.mask, mask.is_causal, dropout_p)  # [B, H, S, Dh]
        y = rearrange(y, "b h s d -> b s (h d)")
        return self.resid_dropout(self.out(y))


class CrossAttention(nn.Module):
    """Attention from the sequence ``[B, S, D]`` to a conditioning sequence ``[B, L, Dc]``.

    No rotary embedding: the conditioning has its own positions (encoded by whoever made it).
    ``project_kv(cond)`` computes the keys/values once (cacheable for a whole generation);
    ``forward(x, k, v, cond_mask)`` uses them. ``cond_mask`` ``[B, L]`` is True on real tokens.
    """

    def __init__(self, dim: int, cross_dim: int, num_heads: int, num_kv_heads: int,
                 bias: bool = False, dropout: float = 0.0) -> None:
        super().__init__()
        self.num_heads, self.num_kv_heads = num_heads, num_kv_heads
        self.head_dim = dim // num_heads
        self.dropout = dropout
        self.q = nn.Linear(dim, num_heads * self.head_dim, bias=bias)
        self.kv = nn.Linear(cross_dim, 2 * num_kv_heads * self.head_dim, bias=bias)
        self.out = nn.Linear(num_heads * self.head_dim, dim, bias=bias)
        self.out.is_residual_proj = True
        self.resid_dropout = nn.Dropout(dropout)

    def project_kv(self, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``cond [B, L, Dc]`` to keys and values ``[B, H_kv, L, Dh]``."""
        k, v = self.kv(cond).chunk(2, dim=-1)
        k = rearrange(k, "b l (h d) -> b h l d", h=self.num_kv_heads)
        v = rearrange(v, "b l (h d) -> b h l d", h=self.num_kv_heads)
        return k, v

    def forward(self, x: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                cond_mask: torch.Tensor | None = None) -> torch.Tensor:
        q = rearrange(self.q(x), "b s (h d) -> b h s d", h=self.num_heads)
        mask, has_cond = None, None
        if cond_mask is not None:
            has_cond = cond_mask.any(dim=-1)  # [B]; a row with no conditioning gets zeros
            mask = rearrange(cond_mask | ~has_cond[:, None], "b l -> b 1 1 l")
        dropout_p = self.dropout if self.training else 0.0
        y = attend(q, k, v, mask, False, dropout_p)  # [B, H, S, Dh]
        y = self.out(rearrange(y, "b h s d -> b s (h d)"))
        if has_cond is not None:
            y = y * rearrange(has_cond, "b -> b 1 1").to(y.dtype)
        return self.resid_dropout(y)
