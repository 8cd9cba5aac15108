"""Zero-shot voice cloning with a VALL-E AR + NAR pair.

``clone(ar, nar, text_tokens [L], prompt_codes [K, Tp], prompt_text_tokens [Lp] | None,
sampling, bounds) -> CloneCodes`` makes the codes ``[K, T]`` of the new speech only (prompt
excluded):

1. the AR stage is prefilled with ``[prompt text + text ; BOS + prompt codebook 0]`` and then
   decodes codebook 0 with its KV cache, one frame a step (``generate_codebook0``;
   ``use_cache=False`` recomputes the whole sequence every step, the reference the cached path
   must equal). EOS is suppressed (its logit set to -inf) until ``min_frames`` new frames exist,
   and decoding stops at EOS, at ``max_frames`` new frames, or where the model's context
   (``cfg.max_frames`` minus the prompt) ends; the typed result says which (``stop``);
2. the NAR stage fills codebooks ``1..K-1`` one stage at a time, the prompt codes given with all
   K codebooks (``fill_codebooks``; greedy unless ``nar_sampling`` is given).

The bounds come from the length of the target text (not the prompt's) times the frames per text
token the AR model measured on its training data (:mod:`audiolm.models.valle_length`); ``clone``
computes them with the default ratios when none are given.

``clone_stream(...)`` is the same generation yielding the new speech as it is made: after every
``chunk_frames`` codebook-0 frames (default 25, half a second at 50 Hz) the NAR fills that chunk's
codebooks 1..K-1, given as its acoustic prompt the prompt and the frames generated before (the
last ``nar_context`` frames, a bounded window), and the chunk is yielded. Its codebook-0 tokens are those of ``clone`` (the same
AR steps, the same generator draws); the NAR, seeing a bounded window instead of the whole
utterance, may choose other codes for the upper codebooks.

Sampling follows :class:`audiolm.sampling.SamplingConfig` (temperature 0 is greedy; ``seed``
makes a run repeatable). Batch of one.

``load_stage(path)`` rebuilds a stage model from a Lightning checkpoint of ``codeclm lm fit``:
the model's config is stored in its state dict (see ``valle.py``), so no YAML is needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Generator, Iterator

import torch
from torch import nn

from audiolm.models.valle import ValleAR, ValleConfig
from audiolm.models.valle_length import LengthBounds, LengthConfig, length_bounds
from audiolm.models.valle_nar import ValleNAR
from audiolm.sampling import SamplingConfig, select_tokens

STAGES = {"valle_ar": ValleAR, "valle_nar": ValleNAR}


def load_stage(path: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """A VALL-E stage model (eval mode) from an ``LMModule`` checkpoint (``.ckpt``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}: give a .ckpt written by `codeclm lm fit`")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file is one user error
        raise ValueError(f"{path} is not a readable checkpoint ({type(e).__name__}: {e})") from e
    state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else None
    extra = state.get("model._extra_state") if isinstance(state, dict) else None
    if not isinstance(extra, dict) or extra.get("kind") not in STAGES:
        raise ValueError(f"{path} holds no VALL-E stage model (expected an `lm fit` checkpoint of "
                         "audiolm.models.valle.ValleAR or audiolm.models.valle_nar.ValleNAR)")
    model = STAGES[extra["kind"]](ValleConfig(**extra["config"]))
    weights = {k[len("model."):]: v for k, v in state.items() if k.startswith("model.")}
    model.load_state_dict(weights)
    return model.to(device).eval()


STOPS = ("eos", "max_frames", "context")


@dataclass
class Codebook0Result:
    """New codebook-0 ``tokens [T]`` (EOS not included) and why decoding stopped: ``eos`` (the model
    chose it), ``max_frames`` (the maximum asked for) or ``context`` (the model's ``max_frames``
    minus the prompt came first). ``min_frames`` / ``max_frames``: the bounds used (after the
    context); ``eos_suppressed``: steps below the minimum at which EOS was the most likely token."""

    tokens: torch.Tensor
    stop: str
    min_frames: int
    max_frames: int
    eos_suppressed: int = 0


def generate_codebook0(ar: ValleAR, text: torch.Tensor, prompt0: torch.Tensor, sampling: SamplingConfig,
                       max_frames: int, use_cache: bool = True, generator: torch.Generator | None = None,
                       min_frames: int = 0) -> Codebook0Result:
    """text ``[L]`` (prompt text + target text), prompt0 ``[Tp]`` (codebook 0 of the prompt) ->
    new codebook-0 tokens, ``min(min_frames, room) <= T <= min(max_frames, room)`` where ``room``
    is what the model's context leaves after the prompt (see :class:`Codebook0Result`)."""
    steps = codebook0_steps(ar, text, prompt0, sampling, max_frames, use_cache, generator, min_frames)
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value


@torch.no_grad()
def codebook0_steps(ar: ValleAR, text: torch.Tensor, prompt0: torch.Tensor, sampling: SamplingConfig,
                    max_frames: int, use_cache: bool = True, generator: torch.Generator | None = None,
                    min_frames: int = 0) -> Generator[int, None, Codebook0Result]:
    """:func:`generate_codebook0` one frame at a time: yields each new token as it is chosen and
    returns the :class:`Codebook0Result` (``StopIteration.value``)."""
    cfg = ar.cfg
    if text.dim() != 1 or prompt0.dim() != 1:
        raise ValueError(f"text and prompt0 must be 1-D, got {tuple(text.shape)} and {tuple(prompt0.shape)}")
    if text.numel() > cfg.max_text:
        raise ValueError(f"text of {text.numel()} tokens (prompt + target) exceeds the AR model's max_text {cfg.max_text}")
    if max_frames < 1 or min_frames < 0:
        raise ValueError(f"need max_frames >= 1 and min_frames >= 0, got {max_frames} and {min_frames}")
    room = cfg.max_frames - prompt0.numel()
    if room < 1:
        raise ValueError(f"the prompt ({prompt0.numel()} frames) leaves no room under max_frames {cfg.max_frames}: "
                         "use a shorter prompt")
    limit_stop = "context" if room < max_frames else "max_frames"
    max_frames = min(max_frames, room)
    min_frames = min(min_frames, max_frames)
    dev = text.device
    audio = torch.cat([torch.tensor([ar.bos], device=dev), prompt0.to(dev)])[None]  # [1, 1 + Tp]
    text = text[None]
    out: list[int] = []
    if use_cache:
        cache = ar.transformer.make_cache(1, text.shape[1] + audio.shape[1] + max_frames)
        logits = ar.prefill(text, audio, cache)
    else:
        ones = torch.ones(1, dtype=torch.long, device=dev)
        logits = ar(text, ones * text.shape[1], audio, ones * audio.shape[1])[:, -1]
    position, stop, suppressed = audio.shape[1], limit_stop, 0
    while len(out) < max_frames:
        logits = logits.float()
        if len(out) < min_frames:
            suppressed += int(int(logits[0].argmax()) == ar.eos)
            logits[:, ar.eos] = float("-inf")
        token = select_tokens(logits, sampling, generator=generator)  # [1]
        if int(token) == ar.eos:
            stop = "eos"
            break
        out.append(int(token))
        yield out[-1]
        if len(out) == max_frames:
            break
        if use_cache:
            logits = ar.step(token, position, cache)
        else:
            audio = torch.cat([audio, token[:, None]], dim=1)
            ones = torch.ones(1, dtype=torch.long, device=dev)
            logits = ar(text, ones * text.shape[1], audio, ones * audio.shape[1])[:, -1]
        position += 1
    return Codebook0Result(torch.tensor(out, dtype=torch.long, device=dev), stop, min_frames, max_frames, suppressed)


@torch.no_grad()
def fill_codebooks(nar: ValleNAR, text: torch.Tensor, prompt_codes: torch.Tensor, codes0: torch.Tensor,
                   sampling: SamplingConfig | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """text ``[L]``, prompt_codes ``[K, Tp]``, codes0 ``[T]`` -> codes ``[K, T]`` of the new frames."""
    kk, tp = prompt_codes.shape
    if kk != nar.cfg.num_codebooks:
        raise ValueError(f"prompt has {kk} codebooks, the NAR model {nar.cfg.num_codebooks}")
    t = codes0.numel()
    dev = text.device
    codes = torch.zeros(1, kk, tp + t, dtype=torch.long, device=dev)
    codes[0, :, :tp] = prompt_codes
    codes[0, 0, tp:] = codes0
    one = torch.ones(1, dtype=torch.long, device=dev)
    for k in range(1, kk):
        logits = nar(text[None], one * text.numel(), codes, one * (tp + t), one * tp, k)[0, tp:]  # [T, V]
        if sampling is None:
            codes[0, k, tp:] = logits.argmax(-1)
        else:
            codes[0, k, tp:] = select_tokens(logits.float(), sampling, generator=generator)
    return codes[0, :, tp:]


@dataclass
class CloneCodes:
    """``codes [K, T]`` of the new speech; ``stop``, ``min_frames``, ``max_frames`` and
    ``eos_suppressed`` as in :class:`Codebook0Result` (the bounds after the context);
    ``bounds``: what the text and the length statistics asked for."""

    codes: torch.Tensor
    stop: str
    min_frames: int
    max_frames: int
    eos_suppressed: int
    bounds: LengthBounds


def clone(ar: ValleAR, nar: ValleNAR, text_tokens: torch.Tensor, prompt_codes: torch.Tensor,
          prompt_text_tokens: torch.Tensor | None, sampling: SamplingConfig, bounds: LengthBounds | None = None,
          nar_sampling: SamplingConfig | None = None) -> CloneCodes:
    """``text_tokens`` spoken in the voice of ``prompt_codes`` (see the module doc); ``bounds``
    default to :func:`~audiolm.models.valle_length.length_bounds` of the target text with the
    AR model's statistics and the default ratios."""
    text, prompt_codes, bounds, dev = _clone_inputs(ar, nar, text_tokens, prompt_codes, prompt_text_tokens, bounds)
    generator = sampling.make_generator(dev)
    gen = generate_codebook0(ar, text, prompt_codes[0], sampling, bounds.max_frames, generator=generator,
                             min_frames=bounds.min_frames)
    if gen.tokens.numel() == 0:
        codes = torch.zeros(nar.cfg.num_codebooks, 0, dtype=torch.long, device=dev)
    else:
        codes = fill_codebooks(nar, text, prompt_codes, gen.tokens, nar_sampling, generator)
    return CloneCodes(codes, gen.stop, gen.min_frames, gen.max_frames, gen.eos_suppressed, bounds)


def _clone_inputs(ar: ValleAR, nar: ValleNAR, text_tokens: torch.Tensor, prompt_codes: torch.Tensor,
                  prompt_text_tokens: torch.Tensor | None, bounds: LengthBounds | None):
    if prompt_codes.dim() != 2:
        raise ValueError(f"prompt_codes must be [K, Tp], got {tuple(prompt_codes.shape)}")
    if ar.cfg.cardinality != nar.cfg.cardinality:
        raise ValueError(f"AR and NAR models disagree on the codebook size ({ar.cfg.cardinality} vs "
                         f"{nar.cfg.cardinality}): train both on the same codec")
    if bounds is None:
        bounds = length_bounds(ar.length_stats, text_tokens.numel(), LengthConfig())
    dev = next(ar.parameters()).device
    prompt_codes = prompt_codes[: nar.cfg.num_codebooks].to(dev)
    text = text_tokens.to(dev)
    if prompt_text_tokens is not None:
        text = torch.cat([prompt_text_tokens.to(dev), text])
    return text, prompt_codes, bounds, dev


@torch.no_grad()
def clone_stream(ar: ValleAR, nar: ValleNAR, text_tokens: torch.Tensor, prompt_codes: torch.Tensor,
                 prompt_text_tokens: torch.Tensor | None, sampling: SamplingConfig, bounds: LengthBounds | None = None,
                 nar_sampling: SamplingConfig | None = None, chunk_frames: int = 25,
                 nar_context: int | None = 150) -> Generator[torch.Tensor, None, CloneCodes]:
    """:func:`clone`, yielding the codes ``[K, n]`` of each chunk of ``n <= chunk_frames`` new frames
    as soon as it is made; returns the :class:`CloneCodes` of the whole (``StopIteration.value``).
    ``nar_context``: how many frames before a chunk (prompt, then generated) the NAR sees (default
    150, 3 s at 50 Hz: the acoustic prompts the NAR trains on are a quarter to a half of an
    utterance; None: as many as its context holds beside the chunk, several times the cost per
    chunk); a chunk is at most the NAR's context less one."""
    if chunk_frames < 1:
        raise ValueError(f"chunk_frames must be >= 1, got {chunk_frames}")
    text, prompt_codes, bounds, dev = _clone_inputs(ar, nar, text_tokens, prompt_codes, prompt_text_tokens, bounds)
    generator = sampling.make_generator(dev)
    steps = codebook0_steps(ar, text, prompt_codes[0], sampling, bounds.max_frames, generator=generator,
                            min_frames=bounds.min_frames)
    # the NAR draws from its own generator, so that the AR's draws (and tokens) are those of clone()
    nar_generator = nar_sampling.make_generator(dev) if nar_sampling is not None else None
    chunk_frames = min(chunk_frames, nar.cfg.max_frames - 1)  # the NAR sees at least one frame before a chunk
    context = prompt_codes  # [K, Tc]: what the NAR sees before the chunk
    made: list[torch.Tensor] = []
    pending: list[int] = []
    result = None
    while result is None:
        try:
            pending.append(next(steps))
        except StopIteration as done:
            result = done.value
        if pending and (len(pending) == chunk_frames or result is not None):
            codes0 = torch.tensor(pending, dtype=torch.long, device=dev)
            room = nar.cfg.max_frames - len(pending)
            window = room if nar_context is None else max(1, min(nar_context, room))
            chunk = fill_codebooks(nar, text, context[:, -window:], codes0, nar_sampling, nar_generator)
            pending = []
            made.append(chunk)
            context = torch.cat([context, chunk], dim=1)[:, -nar.cfg.max_frames:]
            yield chunk
    codes = torch.cat(made, dim=1) if made else torch.zeros(nar.cfg.num_codebooks, 0, dtype=torch.long, device=dev)
    return CloneCodes(codes, result.stop, result.min_frames, result.max_frames, result.eos_suppressed, bounds)
