"""Text-to-music generation with a ``MusicGen``: KV-cached decoding over the delay pattern with
classifier-free guidance.

``generate_music(model, text_tokens [L] or [B, L], frames, sampling) -> codes [B, K, frames]``.

Each of the ``frames + K - 1`` steps reads one pattern column and samples one column: codebook
``k`` of frame ``s - k`` for every ``k`` with ``0 <= s - k < frames``, the special id elsewhere.
With ``sampling.cfg_scale != 1`` the conditional and the unconditional stream (the same text
with its mask emptied, as condition dropout trains it) run as one batch of ``2B`` sharing the
cache, and ``cfg_logits`` combines them. ``sampling.seed`` makes the result repeatable;
``sampling.repetition_penalty`` is not applied (music repeats by nature).
"""

from __future__ import annotations

import torch

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


@torch.no_grad()
def generate_music(model: MusicGen, text_tokens: torch.Tensor, frames: int, sampling: SamplingConfig,
                   text_lengths: torch.Tensor | None = None, guidance: bool | None = None) -> torch.Tensor:
    """Codes ``[B, K, frames]`` for the texts ``text_tokens`` (``[L]`` or ``[B, L]``, 0-padded).

    ``guidance``: run the unconditional stream; None means whenever ``sampling.cfg_scale != 1``
    (True at scale 1 gives the conditional model's tokens, at twice the cost).
    """
    cfg = model.cfg
    if not 1 <= frames <= cfg.max_frames:
        raise ValueError(f"frames must be in 1..{cfg.max_frames} (the model's max_frames), got {frames}")
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
        cache = model.transformer.make_cache(batch=rows, max_len=steps)
        seq = torch.full((b, k, steps), model.special, dtype=torch.long, device=device)  # [B, K, S]
        column = torch.full((rows, k, 1), model.special, dtype=torch.long, device=device)  # BOS
        for step in range(steps):
            logits = model(column, cond, cache=cache)[:, :, -1]  # [rows, K, V]
            if guided:
                ids = select_tokens(logits[:b], sampling, uncond=logits[b:], generator=generator)
            else:
                ids = select_tokens(logits, sampling, generator=generator)  # [B, K]
            valid = step_columns(model, step, frames, device)
            seq[:, :, step] = torch.where(valid[None], ids, model.special)
            column = seq[:, :, step:step + 1].repeat(rows // b, 1, 1)
        return model.pattern.revert(seq)
    finally:
        model.train(was_training)
