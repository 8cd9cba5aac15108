"""A cached decode step of fixed shapes, for CUDA graph capture (used by ``bench/decode.py``).

``Transformer.forward`` with a ``KVCache`` keeps the write slot in ``cache.length``, a Python
int: every step slices the cache to a new length and builds new position and mask tensors on
the host, so a step's shapes change as the sequence grows and one captured graph cannot replay
it. ``StaticDecoder`` runs the same blocks (``Block.forward`` and its ``SelfAttention``, through a
cache object of the same ``update`` interface) with the slot held in a device tensor ``pos``:

- keys and values are written with ``index_copy_`` at slot ``pos`` of the preallocated cache;
- attention reads a fixed window of the first ``k_len`` slots, with a boolean mask that admits
  slots ``<= pos`` (the rest of the window may hold stale keys);
- RoPE angles come from ``pos``; the step reads its input token from, and writes the sampled
  token into, a static sequence buffer ``seq [B, max_len]``, then adds 1 to ``pos``.

Nothing in a step depends on a host value except ``k_len``, so each window size is captured
once. Windows are multiples of ``bucket`` slots: the host knows which step it is at, picks the
smallest window that holds the keys so far and replays that window's graph, so attention reads
at most ``bucket - 1`` slots more than the eager cached step (``bucket=0``: one window, the whole
cache). All graphs share one memory pool. On a device other than CUDA (or with ``graphs=False``)
the same step runs eagerly, which is how its correctness is checked on the CPU.

The prefill (the prompt in one call) goes through ``Transformer.forward`` with the same cache,
uncaptured; ``cache.length`` stays at the prompt length afterwards (slots are tracked by ``pos``).
"""

from __future__ import annotations

from typing import Callable

import torch
from einops import rearrange
from torch import nn

from audiolm.nn.attention import SelfAttentionMask
from audiolm.nn.kv_cache import KVCache
from audiolm.nn.rope import rope_angles

Sampler = Callable[[torch.Tensor], torch.Tensor]  # logits [B, V] -> ids [B]


class PositionCache:
    """The ``update`` of a ``KVCache`` at a device-tensor slot ``pos`` (shape ``[1]``), returning
    the first ``k_len`` slots of keys and values ``[B, kv_heads, k_len, head_dim]``."""

    def __init__(self, cache: KVCache) -> None:
        self.cache = cache
        self.pos = torch.zeros(1, dtype=torch.long, device=cache.k.device)
        self.k_len = cache.max_len

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        keys, values = self.cache.k[layer], self.cache.v[layer]  # [B, H_kv, max_len, Dh]
        keys.index_copy_(2, self.pos, k.to(keys.dtype))
        values.index_copy_(2, self.pos, v.to(values.dtype))
        return keys[:, :, :self.k_len], values[:, :, :self.k_len]


class StaticDecoder:
    """Generates with ``model`` (``embed``, ``transformer``, ``head``: bench/lm.py's ``OurGPT``) a
    batch of ``batch`` sequences of at most ``max_len`` tokens, one token per decode step, each
    step captured in a CUDA graph when ``graphs`` (CUDA only)."""

    def __init__(self, model: nn.Module, batch: int, max_len: int, sampler: Sampler, bucket: int = 64,
                 graphs: bool = True, keep_logits: bool = False) -> None:
        cfg = model.transformer.cfg
        if cfg.cross_attention:
            raise ValueError("StaticDecoder supports self-attention models only (cross_attention=False)")
        if bucket < 0:
            raise ValueError(f"bucket must be >= 0 (0: one window over the whole cache), got {bucket}")
        self.bucket = bucket or max_len
        max_len = self.bucket * -(-max_len // self.bucket)  # whole windows only
        if max_len > cfg.max_seq_len:
            raise ValueError(f"{max_len} slots (rounded up to whole windows of {self.bucket}) exceed "
                             f"the model's max_seq_len {cfg.max_seq_len}")
        param = next(model.parameters())
        self.model, self.sampler, self.max_len = model, sampler, max_len
        self.cache = model.transformer.make_cache(batch, max_len)
        self.slots = PositionCache(self.cache)
        self.seq = torch.zeros(batch, max_len, dtype=torch.long, device=param.device)
        self.use_graphs = graphs and param.device.type == "cuda"
        self.graphs: dict[int, torch.cuda.CUDAGraph] = {}
        self.pool = torch.cuda.graph_pool_handle() if self.use_graphs else None
        # keep_logits: each step also copies its logits [B, V] into a static buffer, and generate()
        # keeps a float32 copy of every step's (prefill included) in ``history`` (for checks)
        self.logits = (torch.zeros(batch, model.head.out_features, dtype=param.dtype, device=param.device)
                       if keep_logits else None)
        self.history: list[torch.Tensor] = []

    def window(self, keys: int) -> int:
        """The window (a multiple of ``bucket``) that holds ``keys`` slots."""
        return min(self.max_len, self.bucket * -(-keys // self.bucket))

    @torch.no_grad()
    def step(self, k_len: int) -> None:
        """One decode step over a window of ``k_len`` slots, all on the device: token at ``pos``
        in, its keys/values at slot ``pos``, the sampled token at ``pos + 1`` out, ``pos += 1``."""
        tr, pos = self.model.transformer, self.slots.pos
        self.slots.k_len = k_len
        x = self.model.embed(self.seq.index_select(1, pos))  # [B, 1, D]
        angles = rope_angles(pos, tr.cfg.head_dim, tr.cfg.rope_theta)
        visible = torch.arange(k_len, device=pos.device) <= pos  # [k_len]
        mask = SelfAttentionMask(mask=rearrange(visible, "k -> 1 1 1 k"), is_causal=False)
        for layer, block in enumerate(tr.blocks):
            x = block(x, angles, mask, self.slots, layer, None, None)
        logits = self.model.head(tr.norm(x)[:, -1])  # [B, V]
        if self.logits is not None:
            self.logits.copy_(logits)
        self.seq.index_copy_(1, pos + 1, self.sampler(logits)[:, None])
        pos.add_(1)

    def capture(self, prompt_len: int, steps: int) -> int:
        """Capture the windows a generation of ``steps`` tokens after ``prompt_len`` uses (once
        each); returns how many graphs were made. No-op without graphs."""
        if not self.use_graphs:
            return 0
        for k_len in sorted({self.window(prompt_len + j) for j in range(1, steps)} - set(self.graphs)):
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):  # warm-up (lazy init, cuBLAS handles) off the capture
                for _ in range(2):
                    self.slots.pos.zero_()
                    self.step(k_len)
            torch.cuda.current_stream().wait_stream(side)
            self.slots.pos.zero_()
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, pool=self.pool):
                self.step(k_len)
            self.graphs[k_len] = graph
        return len(self.graphs)

    @torch.no_grad()
    def generate(self, prompt: torch.Tensor, steps: int) -> torch.Tensor:
        """``prompt [B, P]`` -> ``steps`` new ids ``[B, steps]``: an eager prefill, then
        ``steps - 1`` decode steps (graph replays when captured)."""
        b, p = prompt.shape
        if b != self.seq.shape[0] or p + steps > self.max_len or steps < 1:
            raise ValueError(f"prompt {tuple(prompt.shape)} + {steps} steps do not fit a decoder for "
                             f"batch {self.seq.shape[0]} of {self.max_len} slots")
        self.cache.reset()
        h = self.model.transformer(self.model.embed(prompt), cache=self.cache)  # [B, P, D]
        logits = self.model.head(h[:, -1])  # [B, V]
        self.seq[:, :p] = prompt
        self.seq[:, p] = self.sampler(logits)
        self.slots.pos.fill_(p)
        self.history = [logits.float().clone()] if self.logits is not None else []
        for j in range(1, steps):
            k_len = self.window(p + j)  # keys at slots [0, p + j)
            graph = self.graphs.get(k_len)
            if graph is not None:
                graph.replay()
            elif self.use_graphs:
                raise RuntimeError(f"no graph captured for a window of {k_len} slots: call capture() first")
            else:
                self.step(k_len)
            if self.logits is not None:
                self.history.append(self.logits.float().clone())
        return self.seq[:, p:p + steps].clone()
