"""Continuation through AudioLM's stages: semantic -> coarse -> fine, or coarse -> fine alone.

The autoregressive stages (``SemanticLM``, ``CoarseLM``) share one small interface:
``prompt(...) -> ARPrompt`` (the conditioning, ending with BOS), ``embed_tokens(tokens [B, N],
start)``, ``next_logits(h [B, D], index)``, ``token_budget`` (most tokens a window holds after its
prompt) and ``token_align`` (windows start at multiples of it: ``Qc`` keeps the flattened coarse
codebooks in step). :func:`decode_ar` decodes any of them one token at a time with a KV cache.

Long-form continuation: when the tokens after the prompt would pass the training context, the
window slides: it restarts ``keep`` tokens (default half the budget) before the current token, the
prompt is rebuilt for the new window (the coarse stage takes the semantic units under the
window's frames) and the cache is filled again from it. Without a cache (``use_cache=False``) every
step runs the whole window, which gives the same tokens, only slower: a check of the cache.

Streaming (:func:`continue_stream`): the semantic units are made first (a few per frame, cheap),
then the coarse stage decodes token by token (:func:`decode_ar_steps`) and every ``chunk_frames``
completed frames the fine stage fills that chunk, given up to ``fine_context`` frames before it
as known codes; each chunk ``[K, n]`` is yielded as soon as it is filled. The coarse tokens are
those of :func:`continue_codes` (the fine stage draws from its own generator, so the coarse
stage's draws are the same); the fine codes, predicted over a bounded window, may differ.
"""

from __future__ import annotations

import math
from typing import Callable, Generator, Iterator, Protocol

import torch

from audiolm.models.coarse import CoarseLM
from audiolm.models.fine import FineLM
from audiolm.models.semantic import ARPrompt, SemanticLM
from audiolm.nn import Transformer
from audiolm.patterns import FlattenPattern
from audiolm.sampling import SamplingConfig, select_tokens

__all__ = ["ARStage", "decode_ar", "continue_semantic", "continue_coarse", "continue_codes", "continue_stack",
           "continue_stream"]


class ARStage(Protocol):
    transformer: Transformer
    token_budget: int
    token_align: int

    def embed_tokens(self, tokens: torch.Tensor, start: int) -> torch.Tensor: ...

    def next_logits(self, h: torch.Tensor, index: int) -> torch.Tensor: ...


def _window_start(cur: int, budget: int, keep: int, align: int) -> int:
    """First token of a window that must contain tokens ``[start, cur)`` and room for one more."""
    if cur <= budget - 1:
        return 0
    return max(0, (cur - keep) // align * align)


def decode_ar(model: ARStage, prompt_fn: Callable[[int], ARPrompt], known: torch.Tensor, total: int,
              sampling: SamplingConfig, generator: torch.Generator | None = None, use_cache: bool = True,
              keep: int | None = None) -> torch.Tensor:
    """Extend the token stream ``known [N0]`` to ``total`` tokens; returns ``[total]`` (long).

    ``prompt_fn(start)`` builds the conditioning of the window whose first token is ``start``.
    ``keep``: tokens carried into a new window (at most ``token_budget - token_align``).
    """
    steps = decode_ar_steps(model, prompt_fn, known, total, sampling, generator, use_cache, keep)
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value


@torch.no_grad()
def decode_ar_steps(model: ARStage, prompt_fn: Callable[[int], ARPrompt], known: torch.Tensor, total: int,
                    sampling: SamplingConfig, generator: torch.Generator | None = None, use_cache: bool = True,
                    keep: int | None = None) -> Generator[tuple[int, torch.Tensor], None, torch.Tensor]:
    """:func:`decode_ar` one token at a time: yields ``(n, tokens)`` once ``tokens[:n]`` are
    final (``tokens`` is the buffer being filled) and returns ``tokens [total]``."""
    budget, align = model.token_budget, model.token_align
    keep = budget // 2 if keep is None else keep
    if not 0 <= keep <= budget - align:
        raise ValueError(f"keep must be in [0, {budget - align}] for a window of {budget} tokens, got {keep}")
    device = next(model.parameters()).device  # type: ignore[attr-defined]
    tokens = torch.zeros(max(total, known.numel()), dtype=torch.long, device=device)
    tokens[: known.numel()] = known.to(device).reshape(-1)
    cur = known.numel()
    ws = _window_start(cur, budget, keep, align)
    while cur < total:
        prompt = prompt_fn(ws)
        p = prompt.x.shape[1]
        x = torch.cat([prompt.x, model.embed_tokens(tokens[None, ws:cur], ws)], dim=1)  # [1, P + fed, D]
        cache = model.transformer.make_cache(1, min(model.transformer.cfg.max_seq_len, p + budget)) if use_cache else None
        h = model.transformer(x, attn_mask=prompt.mask(x.shape[1]), cache=cache)[:, -1]
        while cur < total:
            tokens[cur] = select_tokens(model.next_logits(h, cur), sampling, generator=generator)[0]
            cur += 1
            yield cur, tokens
            if cur >= total:
                break
            if cur - ws > budget - 1:  # the window is full: slide and fill a new cache
                ws = _window_start(cur, budget, keep, align)
                break
            if cache is not None:
                h = model.transformer(model.embed_tokens(tokens[None, cur - 1:cur], cur - 1), cache=cache)[:, -1]
            else:
                x = torch.cat([prompt.x, model.embed_tokens(tokens[None, ws:cur], ws)], dim=1)
                h = model.transformer(x, attn_mask=prompt.mask(x.shape[1]))[:, -1]
    return tokens[:total]


def continue_semantic(semantic_lm: SemanticLM, prompt_units: torch.Tensor, new_units: int, sampling: SamplingConfig,
                      generator: torch.Generator | None = None, text: torch.Tensor | None = None,
                      use_cache: bool = True) -> torch.Tensor:
    """Units ``[Sp] -> [Sp + new_units]``, optionally under a text prefix ``[L]``."""
    prompt = semantic_lm.prompt(text)
    return decode_ar(semantic_lm, lambda start: prompt, prompt_units.reshape(-1).long(),
                     prompt_units.numel() + new_units, sampling, generator, use_cache)


def _coarse_setup(coarse_lm: CoarseLM, prompt_coarse: torch.Tensor, frames: int, units: torch.Tensor | None,
                  units_per_frame: float | None):
    """``(pattern, known flattened tokens, total frames, prompt_fn)`` of a coarse continuation."""
    cfg = coarse_lm.cfg
    q = cfg.coarse_codebooks
    if prompt_coarse.dim() != 2 or prompt_coarse.shape[0] < q:
        raise ValueError(f"prompt codes must be [K >= {q}, Tp], got {tuple(prompt_coarse.shape)}")
    pattern = FlattenPattern(q)
    known = pattern.build(prompt_coarse[None, :q].long()).tokens[0]  # [Qc*Tp], time-major
    total_frames = prompt_coarse.shape[1] + frames

    if cfg.semantic_prefix:
        if units is None or units.numel() == 0:
            raise ValueError("this coarse model reads semantic units: give units (or a semantic model), "
                             "or use a coarse model trained with semantic_prefix: false")
        units = units.reshape(-1).long()
        rate = units_per_frame or cfg.units_per_frame or units.numel() / max(1, total_frames)

        def prompt_fn(start: int) -> ARPrompt:
            f0 = start // q
            u0 = min(math.floor(f0 * rate), units.numel() - 1)
            u1 = min(math.ceil((f0 + cfg.max_frames) * rate), u0 + cfg.max_semantic, units.numel())
            return coarse_lm.prompt(units[u0:max(u1, u0 + 1)])
    else:
        fixed = coarse_lm.prompt()

        def prompt_fn(start: int) -> ARPrompt:
            return fixed

    return pattern, known, total_frames, prompt_fn


def continue_coarse(coarse_lm: CoarseLM, prompt_coarse: torch.Tensor, frames: int, sampling: SamplingConfig,
                    generator: torch.Generator | None = None, units: torch.Tensor | None = None,
                    units_per_frame: float | None = None, use_cache: bool = True) -> torch.Tensor:
    """Coarse codes ``[Qc, Tp] -> [Qc, Tp + frames]``.

    units: the semantic units of the whole result (prompt and continuation), ``units_per_frame``
    of them per frame, for a model with ``semantic_prefix``; each window reads the units under
    its frames.
    """
    pattern, known, total_frames, prompt_fn = _coarse_setup(coarse_lm, prompt_coarse, frames, units, units_per_frame)
    q = coarse_lm.cfg.coarse_codebooks
    flat = decode_ar(coarse_lm, prompt_fn, known, q * total_frames, sampling, generator, use_cache)
    return pattern.revert(flat[None])[0]


def continue_codes(coarse_lm: CoarseLM, fine_lm: FineLM, prompt_codes: torch.Tensor, frames: int,
                   sampling: SamplingConfig, generator: torch.Generator | None = None,
                   units: torch.Tensor | None = None, units_per_frame: float | None = None,
                   use_cache: bool = True) -> torch.Tensor:
    """Codes ``[K, Tp] -> [K, Tp + frames]``: coarse continuation, then the fine codebooks.

    Without ``units`` this is the codec-only path (a coarse model with ``semantic_prefix: false``).
    The prompt's own codes are kept in the result.
    """
    _check_stack(coarse_lm, fine_lm, prompt_codes)
    k = fine_lm.cfg.num_codebooks
    if generator is None:
        generator = sampling.make_generator(next(coarse_lm.parameters()).device)
    coarse = continue_coarse(coarse_lm, prompt_codes, frames, sampling, generator, units, units_per_frame, use_cache)
    return fine_lm.predict(coarse, sampling, generator, known=prompt_codes[:k])


def continue_stack(semantic_lm: SemanticLM, coarse_lm: CoarseLM, fine_lm: FineLM, prompt_semantic: torch.Tensor,
                   prompt_codes: torch.Tensor, frames: int, sampling: SamplingConfig,
                   units_per_frame: float | None = None, use_cache: bool = True) -> torch.Tensor:
    """All three stages: semantic units of the prompt ``[Sp]`` and its codes ``[K, Tp]`` ->
    codes ``[K, Tp + frames]`` (prompt included).

    ``units_per_frame`` (semantic rate / codec frame rate) defaults to ``Sp / Tp`` of the prompt.
    """
    tp = prompt_codes.shape[-1]
    sp = prompt_semantic.numel()
    if sp == 0 or tp == 0:
        raise ValueError("continue_stack needs a prompt: at least one semantic unit and one codec frame")
    rate = units_per_frame or sp / tp
    generator = sampling.make_generator(next(semantic_lm.parameters()).device)
    total_units = max(sp, math.ceil((tp + frames) * rate))
    units = continue_semantic(semantic_lm, prompt_semantic, total_units - sp, sampling, generator, use_cache=use_cache)
    return continue_codes(coarse_lm, fine_lm, prompt_codes, frames, sampling, generator, units, rate, use_cache)


def _check_stack(coarse_lm: CoarseLM, fine_lm: FineLM, prompt_codes: torch.Tensor) -> None:
    if prompt_codes.dim() != 2:
        raise ValueError(f"prompt codes must be [K, Tp], got {tuple(prompt_codes.shape)}")
    k = fine_lm.cfg.num_codebooks
    if prompt_codes.shape[0] < k or fine_lm.cfg.coarse_codebooks != coarse_lm.cfg.coarse_codebooks:
        raise ValueError(f"the fine model wants {k} codebooks ({fine_lm.cfg.coarse_codebooks} coarse), the prompt has "
                         f"{prompt_codes.shape[0]} and the coarse model predicts {coarse_lm.cfg.coarse_codebooks}")


@torch.no_grad()
def continue_stream(coarse_lm: CoarseLM, fine_lm: FineLM, prompt_codes: torch.Tensor, frames: int,
                    sampling: SamplingConfig, semantic_lm: SemanticLM | None = None,
                    prompt_semantic: torch.Tensor | None = None, units_per_frame: float | None = None,
                    chunk_frames: int = 25, fine_context: int | None = None,
                    fine_sampling: SamplingConfig | None = None, use_cache: bool = True) -> Iterator[torch.Tensor]:
    """:func:`continue_stack` (with ``semantic_lm`` and ``prompt_semantic``) or :func:`continue_codes`
    (without), yielding the codes ``[K, n]`` of each chunk of ``n <= chunk_frames`` new frames (the
    prompt excluded) as soon as the fine stage has filled it. ``fine_context``: known frames the fine
    stage sees before a chunk (default: a quarter of its window); ``fine_sampling``: its sampling
    (default ``sampling``), drawn from its own generator."""
    _check_stack(coarse_lm, fine_lm, prompt_codes)
    if chunk_frames < 1:
        raise ValueError(f"chunk_frames must be >= 1, got {chunk_frames}")
    device = next(coarse_lm.parameters()).device
    generator = sampling.make_generator(device)
    units, rate = None, units_per_frame
    tp = prompt_codes.shape[-1]
    if semantic_lm is not None:
        sp = 0 if prompt_semantic is None else prompt_semantic.numel()
        if sp == 0 or tp == 0:
            raise ValueError("continue_stream needs a prompt: at least one semantic unit and one codec frame")
        rate = units_per_frame or sp / tp
        total_units = max(sp, math.ceil((tp + frames) * rate))
        units = continue_semantic(semantic_lm, prompt_semantic, total_units - sp, sampling, generator, use_cache=use_cache)
    fine_sampling = fine_sampling or sampling
    fine_generator = fine_sampling.make_generator(device)
    k, q, w = fine_lm.cfg.num_codebooks, coarse_lm.cfg.coarse_codebooks, fine_lm.cfg.max_frames
    chunk_frames = min(chunk_frames, w - 1)
    context = w // 4 if fine_context is None else max(0, min(fine_context, w - chunk_frames))
    pattern, known, total_frames, prompt_fn = _coarse_setup(coarse_lm, prompt_codes, frames, units, rate)
    done = prompt_codes[:k].to(device).long()  # [K, frames so far], the prompt first
    emitted = tp
    for n, tokens in decode_ar_steps(coarse_lm, prompt_fn, known, q * total_frames, sampling, generator, use_cache):
        ready = n // q
        if n % q or (ready - emitted < chunk_frames and ready < total_frames):
            continue
        start = max(0, emitted - context)
        coarse = pattern.revert(tokens[None, start * q: ready * q])[0]  # [Qc, ready - start]
        filled = fine_lm.predict(coarse, fine_sampling, fine_generator, known=done[:, start:emitted])
        chunk = filled[:, emitted - start:]
        done = torch.cat([done, chunk], dim=1)
        emitted = ready
        yield chunk
