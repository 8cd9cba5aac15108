"""Token sampling: pure functions over logits ``[..., V]`` (any leading batch axes).

The usual order for one generation step, as ``select_tokens`` applies it::

    logits = cfg_logits(cond, uncond, scale)            # classifier-free guidance (optional)
    logits = repetition_penalty(logits, previous, 1.2)  # optional
    ids = sample(logits, temperature, top_k, top_p, generator)

Filters set removed entries to ``-inf`` and leave the others untouched, so they compose in any
order and their output can be passed to ``softmax``. ``sample`` is deterministic under a given
``torch.Generator`` (on the logits' device); ``temperature`` 0 or None is greedy ``argmax``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = [
    "SamplingConfig", "apply_temperature", "top_k_filter", "top_p_filter", "repetition_penalty",
    "cfg_logits", "sample", "select_tokens",
]


def apply_temperature(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """``logits / temperature``: below 1 sharpens the distribution, above 1 flattens it."""
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0 here (0 means greedy: use sample), got {temperature}")
    return logits / temperature


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep exactly the ``k`` largest logits of each row (ties broken by ``topk``); the rest -inf."""
    if k < 1:
        raise ValueError(f"top_k must be >= 1, got {k}")
    if k >= logits.shape[-1]:
        return logits
    values, indices = logits.topk(k, dim=-1)
    return torch.full_like(logits, float("-inf")).scatter(-1, indices, values)


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Nucleus filter: keep the smallest set of most likely tokens whose probability is >= ``p``.

    A token is kept when the tokens more likely than it sum to less than ``p``, so the most likely
    token is always kept (``p`` near 0 is greedy) and ``p = 1`` keeps every token.
    """
    if not 0 < p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {p}")
    if p >= 1:
        return logits
    sorted_logits, order = logits.sort(dim=-1, descending=True)
    probs = F.softmax(sorted_logits.float(), dim=-1)
    before = F.pad(probs.cumsum(dim=-1)[..., :-1], (1, 0))  # mass of the strictly more likely tokens
    remove = before >= p
    remove[..., 0] = False
    sorted_logits = sorted_logits.masked_fill(remove, float("-inf"))
    return torch.empty_like(logits).scatter(-1, order, sorted_logits)


def repetition_penalty(logits: torch.Tensor, previous: torch.Tensor, penalty: float) -> torch.Tensor:
    """Make tokens already generated less likely (CTRL-style).

    ``previous``: ids ``[..., L]`` with the logits' leading axes (``[..., V]``). Each id that occurs
    has its logit divided by ``penalty`` when positive and multiplied by it when negative;
    ``penalty`` 1 changes nothing, above 1 discourages repeats.
    """
    if not penalty > 0:
        raise ValueError(f"repetition penalty must be > 0, got {penalty}")
    if previous.shape[:-1] != logits.shape[:-1]:
        raise ValueError(f"previous ids {tuple(previous.shape)} must share the leading axes of logits "
                         f"{tuple(logits.shape)}")
    if penalty == 1 or previous.shape[-1] == 0:
        return logits
    if int(previous.min()) < 0 or int(previous.max()) >= logits.shape[-1]:
        raise ValueError(f"previous ids must lie in [0, {logits.shape[-1]})")
    scores = logits.gather(-1, previous)
    scores = torch.where(scores > 0, scores / penalty, scores * penalty)
    return logits.scatter(-1, previous, scores)


def cfg_logits(cond: torch.Tensor, uncond: torch.Tensor, scale: float) -> torch.Tensor:
    """Classifier-free guidance in log-probability space.

    Both inputs are normalized with ``log_softmax`` first, then combined as
    ``uncond + scale * (cond - uncond)``. Normalizing first makes the result independent of the
    per-row constant each model output may carry: ``scale`` 1 returns the conditional log-probs,
    0 the unconditional ones, and larger scales push towards what the condition makes likelier.
    The result (float32) is unnormalized for other scales; ``softmax`` / ``sample`` normalize it.
    """
    if cond.shape != uncond.shape:
        raise ValueError(f"cond {tuple(cond.shape)} and uncond {tuple(uncond.shape)} logits differ in shape")
    cond_lp = F.log_softmax(cond.float(), dim=-1)
    uncond_lp = F.log_softmax(uncond.float(), dim=-1)
    if scale == 1:
        return cond_lp
    if scale == 0:
        return uncond_lp
    return uncond_lp + scale * (cond_lp - uncond_lp)


def sample(logits: torch.Tensor, temperature: float | None = 1.0, top_k: int | None = None,
           top_p: float | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw one id per row of ``logits [..., V]``; returns long ids ``[...]``.

    ``temperature`` 0 or None: greedy argmax (``top_k``/``top_p`` then change nothing). Otherwise
    temperature, top-k and top-p are applied in that order and one id is drawn from the softmax,
    using ``generator`` (which must live on the logits' device) when given.
    """
    if logits.dim() < 1 or logits.shape[-1] < 1:
        raise ValueError(f"logits must be [..., V] with V >= 1, got shape {tuple(logits.shape)}")
    if temperature is None or temperature == 0:
        return logits.argmax(dim=-1)
    x = apply_temperature(logits.float(), temperature)
    if top_k is not None:
        x = top_k_filter(x, top_k)
    if top_p is not None:
        x = top_p_filter(x, top_p)
    probs = F.softmax(x, dim=-1).reshape(-1, x.shape[-1])  # [N, V]
    if probs.shape[0] == 0:
        return torch.zeros(logits.shape[:-1], dtype=torch.long, device=logits.device)
    ids = torch.multinomial(probs, 1, generator=generator)  # [N, 1]
    return ids.reshape(logits.shape[:-1])


@dataclass
class SamplingConfig:
    """How to pick tokens during generation.

    temperature: 0 is greedy; top_k / top_p: None disables the filter; cfg_scale: guidance scale
    (1 = conditional model alone, no unconditional pass needed); repetition_penalty: 1 = off;
    seed: None draws from torch's global generator, an int makes generation repeatable;
    max_new_tokens: generation steps at most.
    """

    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    cfg_scale: float = 1.0
    repetition_penalty: float = 1.0
    seed: int | None = None
    max_new_tokens: int = 256

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise ValueError(f"sampling temperature must be >= 0, got {self.temperature}")
        if self.top_k is not None and self.top_k < 1:
            raise ValueError(f"sampling top_k must be >= 1 or null, got {self.top_k}")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise ValueError(f"sampling top_p must be in (0, 1] or null, got {self.top_p}")
        if self.cfg_scale < 0:
            raise ValueError(f"sampling cfg_scale must be >= 0, got {self.cfg_scale}")
        if not self.repetition_penalty > 0:
            raise ValueError(f"sampling repetition_penalty must be > 0, got {self.repetition_penalty}")
        if self.max_new_tokens < 0:
            raise ValueError(f"sampling max_new_tokens must be >= 0, got {self.max_new_tokens}")

    @property
    def uses_cfg(self) -> bool:
        """Whether generation needs an unconditional pass."""
        return self.cfg_scale != 1

    def make_generator(self, device: torch.device | str = "cpu") -> torch.Generator | None:
        """A generator seeded with ``seed`` on ``device``, or None when no seed is set."""
        if self.seed is None:
            return None
        return torch.Generator(device=device).manual_seed(self.seed)


def select_tokens(logits: torch.Tensor, config: SamplingConfig, uncond: torch.Tensor | None = None,
                  previous: torch.Tensor | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """One generation step under ``config``: guidance, repetition penalty, then ``sample``.

    ``logits``: conditional logits ``[..., V]``; ``uncond``: unconditional logits of the same
    shape, required when ``config.cfg_scale != 1``; ``previous``: ids ``[..., L]`` already
    generated, for the repetition penalty.
    """
    if uncond is not None:
        logits = cfg_logits(logits, uncond, config.cfg_scale)
    elif config.uses_cfg:
        raise ValueError(f"cfg_scale={config.cfg_scale} needs unconditional logits (uncond=...)")
    if previous is not None and config.repetition_penalty != 1:
        logits = repetition_penalty(logits, previous, config.repetition_penalty)
    return sample(logits, config.temperature, config.top_k, config.top_p, generator)
