"""Transformer core shared by every audio LM stage: RoPE, attention, KV cache, decoder stack.

``Transformer(TransformerConfig(...))`` maps hidden states ``[B, S, D]`` to ``[B, S, D]``;
``KVCache`` (or ``Transformer.make_cache``) makes incremental decoding equal a full pass.
"""

from audiolm.nn.attention import (
    CrossAttention,
    SelfAttention,
    SelfAttentionMask,
    causal_mask,
    prefix_causal_mask,
    self_attention_mask,
)
from audiolm.nn.kv_cache import KVCache
from audiolm.nn.rope import RopeAngles, apply_rope, rope_angles
from audiolm.nn.transformer import Block, RMSNorm, SwiGLU, Transformer, TransformerConfig, init_weights

__all__ = [
    "Block",
    "CrossAttention",
    "KVCache",
    "RMSNorm",
    "RopeAngles",
    "SelfAttention",
    "SelfAttentionMask",
    "SwiGLU",
    "Transformer",
    "TransformerConfig",
    "apply_rope",
    "causal_mask",
    "init_weights",
    "prefix_causal_mask",
    "rope_angles",
    "self_attention_mask",
]
