"""Text-to-music generation with a ``MusicGen``: KV-cached decoding over the delay pattern with
classifier-free guidance.

``generate_music(model, text_tokens [L] or [B, L], frames, sampling) -> codes [B, K, frames]``.

Each of the ``frames + K - 1`` steps reads one pattern column and samples one column: codebook
``k`` of frame ``s - k`` for every ``k`` with ``0 <= s - k < frames``, the special id elsewhere.
With ``sampling.cfg_scale != 1`` the conditional and the unconditional stream (the same text
with its mask emptied, as condition dropout trains it) run as one batch of ``2B`` sharing the
cache, and ``cfg_logits`` combines them. ``sampling.seed`` makes the result repeatable;
``sampling.repetition_penalty`` is not applied (music repeats by nature).

Past the training context (``frames > cfg.max_frames``) the window slides: once it holds as many
columns as a training sequence, a new window starts ``keep`` columns (default half) before the
current one, BOS first as in training, and its cache is filled again from those columns.
``use_cache=False`` runs every step over the whole window instead: the same tokens, only slower,
a check of the cache.

``music_stream(...)`` is the same generation yielding codes ``[B, K, n]`` as frames complete: a
frame is complete once the step that writes its last codebook has run (``K - 1`` steps after its
first, for the delay pattern), so the stream holds back at most ``K - 1`` columns; every
``chunk_frames`` complete frames are yielded, the same tokens as ``generate_music`` in the same order.
"""

from __future__ import annotations

import torch

from typing import Iterator

from audiolm.conditioning import TextCondition, text_mask
from audiolm.models.musicgen import MusicGen
from audiolm.sampling import SamplingConfig, select_tokens


def _text_batch(text_tokens: torch.Tensor, device: torch.device) -> torch.Tensor:
    if text_tokens.dim() == 1:
        text_tokens = text_tokens[None]
    if text_tokens.dim() != 2:
        raise ValueError(f"text_tokens must be [L] or [B, L], got {tuple(text_tokens.shape)}")
    if text_tokens.shape[1] == 0:  # no text at all: one padding piece, masked out
        text_tokens = torch.zeros(text_tokens.shape[0], 1, dtype=torch.long)
    return text_tokens.to(device=device, dtype=torch.long)


def step_columns(model: MusicGen, step: int, frames: int, device: torch.device) -> torch.Tensor:
    """``[K]`` bool: which codebooks hold a real code in pattern column ``step``."""
    valid = torch.zeros(model.cfg.num_codebooks, dtype=torch.bool, device=device)
    for k, _ in model.pattern.step_positions(step, frames):
        valid[k] = True
    return valid


def generate_music(model: MusicGen, text_tokens: torch.Tensor, frames: int, sampling: SamplingConfig,
                   text_lengths: torch.Tensor | None = None, guidance: bool | None = None,
                   keep: int | None = None, use_cache: bool = True) -> torch.Tensor:
    """Codes ``[B, K, frames]`` for the texts ``text_tokens`` (``[L]`` or ``[B, L]``, 0-padded).

    ``guidance``: run the unconditional stream; None means whenever ``sampling.cfg_scale != 1``
    (True at scale 1 gives the conditional model's tokens, at twice the cost). ``keep``: pattern
    columns carried into a new window when generating past ``cfg.max_frames``.
    """
    seq = None
    for seq in _pattern_steps(model, text_tokens, frames, sampling, text_lengths, guidance, keep, use_cache):
        pass
    assert seq is not None
    return model.pattern.revert(seq)


def music_stream(model: MusicGen, text_tokens: torch.Tensor, frames: int, sampling: SamplingConfig,
                 chunk_frames: int = 25, text_lengths: torch.Tensor | None = None, guidance: bool | None = None,
                 keep: int | None = None, use_cache: bool = True) -> Iterator[torch.Tensor]:
    """:func:`generate_music`, yielding codes ``[B, K, n]`` of each ``chunk_frames`` (the last chunk
    may be shorter) as soon as their every codebook is sampled; concatenated, they are its result."""
    if chunk_frames < 1:
        raise ValueError(f"chunk_frames must be >= 1, got {chunk_frames}")
    k = model.cfg.num_codebooks
    filled = torch.zeros(frames, dtype=torch.long)  # codebooks written so far, per frame
    codes = None
    ready = emitted = 0
    steps = _pattern_steps(model, text_tokens, frames, sampling, text_lengths, guidance, keep, use_cache)
    for step, seq in enumerate(steps):
        if codes is None:
            codes = torch.full((seq.shape[0], k, frames), model.special, dtype=torch.long, device=seq.device)
        for q, t in model.pattern.step_positions(step, frames):
            codes[:, q, t] = seq[:, q, step]
            filled[t] += 1
        while ready < frames and int(filled[ready]) == k:
            ready += 1
        if ready - emitted >= chunk_frames or (ready == frames and ready > emitted):
            yield codes[:, :, emitted:ready].clone()
            emitted = ready


@torch.no_grad()
def _pattern_steps(model: MusicGen, text_tokens: torch.Tensor, frames: int, sampling: SamplingConfig,
                   text_lengths: torch.Tensor | None, guidance: bool | None, keep: int | None,
                   use_cache: bool) -> Iterator[torch.Tensor]:
    """The pattern sequence ``[B, K, S]``, yielded after each step has written its column."""
    cfg = model.cfg
    if frames < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")
    window = model.pattern.length(cfg.max_frames)  # the most columns a training sequence has
    keep = window // 2 if keep is None else keep
    if not 0 <= keep < window:
        raise ValueError(f"keep must be in [0, {window - 1}] for a window of {window} columns, got {keep}")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        tokens = _text_batch(text_tokens, device)
        b, k = tokens.shape[0], cfg.num_codebooks
        cond = model.text_encoder(tokens, text_mask(tokens, text_lengths))
        guided = sampling.uses_cfg if guidance is None else guidance
        if guided:
            empty = cond.without(torch.ones(b, dtype=torch.bool, device=device))
            cond = TextCondition(hidden=torch.cat([cond.hidden, empty.hidden]),
                                 mask=torch.cat([cond.mask, empty.mask]))  # [2B, L, D]
        rows = len(cond)
        steps = model.pattern.length(frames)
        generator = sampling.make_generator(device)
        seq = torch.full((b, k, steps), model.special, dtype=torch.long, device=device)  # [B, K, S]
        bos = torch.full((rows, k, 1), model.special, dtype=torch.long, device=device)
        start, cache = 0, None  # the window's first column; its cache
        for step in range(steps):
            if step - start >= window:  # the window is full: slide
                start = step - keep
                cache = None
            if cache is None or not use_cache:  # (re)fill: BOS, then the window's columns so far
                inputs = torch.cat([bos, seq[:, :, start:step].repeat(rows // b, 1, 1)], dim=2)
                cache = model.transformer.make_cache(batch=rows, max_len=min(steps - start, window)) if use_cache else None
                logits = model(inputs, cond, cache=cache)[:, :, -1]  # [rows, K, V]
            else:
                logits = model(seq[:, :, step - 1:step].repeat(rows // b, 1, 1), cond, cache=cache)[:, :, -1]
            if guided:
                ids = select_tokens(logits[:b], sampling, uncond=logits[b:], generator=generator)
            else:
                ids = select_tokens(logits, sampling, generator=generator)  # [B, K]
            valid = step_columns(model, step, frames, device)
            seq[:, :, step] = torch.where(valid[None], ids, model.special)
            yield seq
    finally:
        model.train(was_training)
