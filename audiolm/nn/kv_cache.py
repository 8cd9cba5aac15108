"""Preallocated key/value cache for incremental decoding.

``KVCache(batch, max_len, layers, kv_heads, head_dim, dtype, device)`` holds keys and values
``[layers, B, kv_heads, max_len, head_dim]``, written in place. Every row of the batch is at the
same slot (``length``): batched decoding advances all rows together; rows of different prompt
lengths are left-padded and the padding marked in ``valid`` through the ``key_padding_mask`` of
the call that writes those slots.

Slots are storage indices, not positions: RoPE positions are passed to the model separately, so
a left-padded row can number its first real token 0 while it sits at slot 3.

Cross-attention keys/values (from a conditioning sequence ``[B, L, Dc]``) are computed by the
first call after construction or ``reset()`` and reused by every later call, with the
conditioning padding mask. Start a generation with a new conditioning by calling ``reset()``.

Usage (``Transformer.make_cache`` builds one sized from the model's config)::

    cache = model.make_cache(batch=B, max_len=P + N)
    h = model(prompt_emb, cache=cache, cross=text, cross_mask=text_mask)  # prefill, [B, P, D]
    for _ in range(N):
        h = model(next_emb, cache=cache)                                    # [B, 1, D]
"""

from __future__ import annotations

import torch


class KVCache:
    """Keys/values for ``layers`` layers of ``batch`` sequences of at most ``max_len`` slots."""

    def __init__(self, batch: int, max_len: int, layers: int, kv_heads: int, head_dim: int,
                 dtype: torch.dtype = torch.float32, device: torch.device | str | None = None) -> None:
        for name, value in (("batch", batch), ("max_len", max_len), ("layers", layers),
                            ("kv_heads", kv_heads), ("head_dim", head_dim)):
            if value < 1:
                raise ValueError(f"KVCache {name} must be >= 1, got {value}")
        shape = (layers, batch, kv_heads, max_len, head_dim)
        self.k = torch.zeros(shape, dtype=dtype, device=device)
        self.v = torch.zeros(shape, dtype=dtype, device=device)
        self.valid = torch.ones(batch, max_len, dtype=torch.bool, device=device)  # key padding
        self.batch, self.max_len, self.layers = batch, max_len, layers
        self.length = 0
        self.has_padding = False
        self.cross_k: list[torch.Tensor | None] = [None] * layers
        self.cross_v: list[torch.Tensor | None] = [None] * layers
        self.cross_mask: torch.Tensor | None = None

    def reset(self) -> None:
        """Forget everything written: the next call starts a new generation at slot 0."""
        self.length = 0
        self.has_padding = False
        self.valid.fill_(True)
        self.cross_k = [None] * self.layers
        self.cross_v = [None] * self.layers
        self.cross_mask = None

    def check_room(self, batch: int, steps: int) -> None:
        """Raise a clear error unless ``steps`` more slots for ``batch`` rows fit."""
        if batch != self.batch:
            raise ValueError(f"KVCache was built for batch {self.batch}, got a batch of {batch}")
        if self.length + steps > self.max_len:
            raise ValueError(
                f"KVCache is full: {self.length} slots used, {steps} more asked, max_len {self.max_len}; "
                "build the cache with a larger max_len or call reset()"
            )

    def mark_valid(self, key_padding_mask: torch.Tensor) -> None:
        """Record ``[B, S]`` (True on real tokens) for the ``S`` slots about to be written."""
        steps = key_padding_mask.shape[1]
        self.valid[:, self.length:self.length + steps] = key_padding_mask
        self.has_padding = True

    def key_valid(self, end: int) -> torch.Tensor | None:
        """``[B, end]`` key padding over the slots written so far, or None when nothing is padded."""
        return self.valid[:, :end] if self.has_padding else None

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Write ``k, v [B, kv_heads, S, head_dim]`` at slots ``[length, length + S)`` of ``layer``.

        Returns views of all keys and values up to the new end, ``[B, kv_heads, length + S,
        head_dim]``. ``length`` itself moves only on ``advance`` (after the last layer).
        """
        end = self.length + k.shape[2]
        self.k[layer, :, :, self.length:end] = k
        self.v[layer, :, :, self.length:end] = v
        return self.k[layer, :, :, :end], self.v[layer, :, :, :end]

    def advance(self, steps: int) -> None:
        self.length += steps

    def has_cross(self, layer: int) -> bool:
        return self.cross_k[layer] is not None

    def set_cross(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> None:
        """Keep ``layer``'s cross-attention ``k, v [B, kv_heads, L, head_dim]`` for later calls."""
        self.cross_k[layer], self.cross_v[layer] = k, v

    def get_cross(self, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        k, v = self.cross_k[layer], self.cross_v[layer]
        if k is None or v is None:
            raise ValueError(f"no cross-attention keys cached for layer {layer}")
        return k, v
