"""Zero-shot cloning and continuation, measured beside the real recordings.

The models are reached through a generation callable (the CLI wires it to ``generate clone`` /
``generate continue``), so this module needs no codec and no checkpoint format:

- cloning: ``generate(prompt [T] mono, sample_rate, prompt_text | None, text) -> Generated``;
- continuation: ``generate(prompt [T] mono, sample_rate, seconds) -> Generated``.

Each result holds three table rows: the ground truth (real target audio: its WER/CER and its
similarity to the prompt, i.e. same-speaker real pairs), real different-speaker pairs (the floor of
the similarity scale), and the generated speech (WER/CER, similarity to the prompt, and the rates
of empty, silent and never-ending generations). A generation that raises counts as empty.

WER/CER come from the judge named by ``asr`` (:func:`audiolm.evaluation.asr.load_transcriber`:
``whisper-tiny`` by default, ``pocketsphinx``, or ``none``); the result names it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from audiolm.evaluation.asr import ASR_RATE, DEFAULT_ASR, ErrorCounts, describe, load_transcriber
from audiolm.evaluation.pairs import ClonePair, ContinuationItem, is_silent, mono
from audiolm.evaluation.speaker import cosine, load_speaker_encoder
from data.audio import resample


class SkipItem(Exception):
    """Raised by a generation callable for an input it cannot take (a text longer than the model's
    context, ...): the item is left out of every row and counted as skipped."""


@dataclass
class Generated:
    """New audio ``wav [T]`` (mono, prompt excluded) at ``sample_rate``; ``frames`` code frames made,
    ``limit`` the most allowed (None: a fixed length, never-ending does not apply); ``full``: the
    prompt and the new audio together when the model decodes them in one piece; ``stop``: why the
    generation ended (``eos``, ``max_frames``, ``context``; None: unknown, judged by ``limit``);
    ``notes``: what its length bounds did (EOS suppressed until a minimum, stopped at a maximum)."""

    wav: np.ndarray
    sample_rate: int
    frames: int
    limit: int | None = None
    full: np.ndarray | None = None
    stop: str | None = None
    notes: list[str] = field(default_factory=list)


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:160] if text else type(e).__name__


def to_16k(wav: np.ndarray, sr: int) -> np.ndarray:
    if sr == ASR_RATE:
        return np.asarray(wav, dtype=np.float32)
    return resample(torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32)), sr, ASR_RATE).numpy()


@dataclass
class Row:
    name: str
    errors: ErrorCounts = field(default_factory=ErrorCounts)
    similarities: list[float] = field(default_factory=list)
    count: int = 0
    empty: int = 0
    silent: int = 0
    never_ending: int | None = None  # None: not applicable

    @property
    def similarity(self) -> float | None:
        return float(np.mean(self.similarities)) if self.similarities else None

    def rate(self, n: int | None) -> float | None:
        return None if n is None or not self.count else n / self.count

    def as_dict(self) -> dict:
        return {"name": self.name, "count": self.count, "wer": self.errors.wer, "cer": self.errors.cer,
                "similarity": self.similarity, "similarity_count": len(self.similarities),
                "empty_rate": self.rate(self.empty) if self.name == "generated" else None,
                "silent_rate": self.rate(self.silent) if self.name == "generated" else None,
                "never_ending_rate": self.rate(self.never_ending)}


@dataclass
class LMEvalResult:
    task: str  # "tts" | "continue"
    rows: list[Row]
    items: list[dict]
    unavailable: dict[str, str]
    notes: list[str]
    examples: list[dict[str, tuple[np.ndarray, int]]]  # label -> (audio, rate)
    skipped: list[dict] = field(default_factory=list)
    asr: str = ""  # the judge of the WER/CER columns, or "none (why)"

    def row(self, name: str) -> Row:
        return next(r for r in self.rows if r.name == name)

    def as_dict(self) -> dict:
        return {"task": self.task, "asr": self.asr, "rows": [r.as_dict() for r in self.rows], "items": self.items,
                "skipped": self.skipped, "unavailable": self.unavailable, "notes": self.notes}


class _Meters:
    """The optional ASR and speaker models, and the embedding cache of real clips."""

    def __init__(self, skip: tuple[str, ...], asr: str = DEFAULT_ASR) -> None:
        self.unavailable: dict[str, str] = {}
        self.asr = self.speaker = None
        if "wer" in skip:
            self.unavailable["wer"] = "skipped on request"
        else:
            self.asr, why = load_transcriber(asr)
            if why:
                self.unavailable["wer"] = why
        self.asr_description = describe(self.asr, self.unavailable.get("wer", ""))
        if "similarity" in skip:
            self.unavailable["similarity"] = "skipped on request"
        else:
            self.speaker, why = load_speaker_encoder()
            if why:
                self.unavailable["similarity"] = why
        self._cache: dict[tuple[str, str], np.ndarray | None] = {}

    def transcribe(self, wav16: np.ndarray) -> str | None:
        return self.asr(wav16) if self.asr is not None else None

    def embed(self, wav16: np.ndarray, cache_key: tuple[str, str] | None = None) -> np.ndarray | None:
        if self.speaker is None:
            return None
        if cache_key is not None and cache_key in self._cache:
            return self._cache[cache_key]
        e = self.speaker.embed(wav16)
        if cache_key is not None:
            self._cache[cache_key] = e
        return e

    @staticmethod
    def similarity(a: np.ndarray | None, b: np.ndarray | None) -> float | None:
        return cosine(a, b) if a is not None and b is not None else None


def _score(row: Row, item: dict, prefix: str, meters: _Meters, wav16: np.ndarray | None, text: str | None,
           emb: np.ndarray | None, prompt_emb: np.ndarray | None) -> None:
    """Add one utterance's WER counts and similarity to ``row`` and record them in ``item``."""
    row.count += 1
    if text is not None and meters.asr is not None and wav16 is not None:
        heard = meters.transcribe(wav16)
        row.errors.add(text, heard)
        item[f"{prefix}_transcript"] = heard
    sim = meters.similarity(emb, prompt_emb)
    if sim is not None:
        row.similarities.append(sim)
    item[f"{prefix}_similarity"] = sim


def _generated_row(fixed_length: bool) -> Row:
    return Row("generated", never_ending=None if fixed_length else 0)


def _check_generation(row: Row, item: dict, gen: Generated | None, error: str | None) -> np.ndarray | None:
    """Count an empty, silent or never-ending generation; the new audio at 16 kHz, or None if empty."""
    if gen is None or gen.wav.size == 0 or gen.frames == 0:
        row.empty += 1
        item["generated"] = "empty" + (f" ({error})" if error else "")
        return None
    new16 = to_16k(gen.wav, gen.sample_rate)
    silent = is_silent(new16, ASR_RATE)
    ended = gen.stop == "eos" if gen.stop is not None else (gen.limit is None or gen.frames < gen.limit)
    if gen.notes:
        item["length_notes"] = list(gen.notes)
    row.silent += int(silent)
    if row.never_ending is not None and not ended:
        row.never_ending += 1
    item["generated"] = "silent" if silent else ("never ended" if not ended else "ok")
    item["generated_seconds"] = gen.wav.size / gen.sample_rate
    return new16


def _rows(fixed_length: bool) -> tuple[Row, Row, Row]:
    return Row("ground truth"), Row("different speakers"), _generated_row(fixed_length)


def evaluate_tts(pairs: list[ClonePair], generate: Callable[..., Generated], skip: tuple[str, ...] = (),
                 examples: int = 3, progress: bool = True, asr: str = DEFAULT_ASR) -> LMEvalResult:
    from tqdm import tqdm

    meters = _Meters(skip, asr)
    truth, different, generated = _rows(fixed_length=False)
    items, shown, skipped = [], [], []
    for pair in tqdm(pairs, desc="pairs", unit="pair", disable=not progress, leave=False):
        t = pair.target
        item = {"prompt": pair.prompt.key, "target": t.key, "speaker": t.speaker, "text": t.text,
                "prompt_text": pair.prompt_text}
        try:
            gen, error = generate(pair.prompt_wav(), pair.prompt.sample_rate, pair.prompt_text, t.text), None
        except SkipItem as e:
            skipped.append({**item, "skipped": str(e)})
            continue
        except RuntimeError as e:  # the AR stage chose EOS first, ...
            gen, error = None, _first_line(e)
        prompt16 = to_16k(pair.prompt_wav(), pair.prompt.sample_rate)
        prompt_emb = meters.embed(prompt16, ("prompt", pair.prompt.key))
        real16 = to_16k(mono(t), t.sample_rate)
        real_emb = meters.embed(real16, ("real", t.key))
        _score(truth, item, "real", meters, real16, t.text, real_emb, prompt_emb)
        if pair.other is not None:
            other_emb = meters.embed(to_16k(pair.prompt_wav(pair.other), pair.other.sample_rate), ("prompt", pair.other.key))
            _score(different, item, "other_speaker", meters, None, None, real_emb, other_emb)
        new16 = _check_generation(generated, item, gen, error)
        emb = meters.embed(new16) if new16 is not None else None
        _score(generated, item, "generated", meters, new16 if new16 is not None else np.zeros(0, np.float32), t.text,
               emb, prompt_emb)
        items.append(item)
        if len(shown) < examples:
            ex = {"prompt": (prompt16, ASR_RATE), "real target": (real16, ASR_RATE)}
            if gen is not None and gen.wav.size:
                ex["generated"] = (gen.wav, gen.sample_rate)
            shown.append(ex)
    notes = ["ground truth: the target utterance's real recording; similarity to the prompt = same-speaker real pairs",
             "different speakers: similarity of the real target to a prompt of another speaker",
             "empty generations count as all words deleted in WER"]
    held = sum(any(n.startswith("EOS suppressed") for n in it.get("length_notes", ())) for it in items)
    if held:
        notes.append(f"{held} of {len(items)} generations: EOS suppressed until the minimum length (the model "
                     "wanted to end earlier; see each item's length_notes)")
    return LMEvalResult("tts", [truth, different, generated], items, meters.unavailable, notes, shown, skipped,
                        meters.asr_description)


def evaluate_continuation(items_in: list[ContinuationItem], generate: Callable[..., Generated],
                          seconds: float | None = None, skip: tuple[str, ...] = (), examples: int = 3,
                          progress: bool = True, asr: str = DEFAULT_ASR) -> LMEvalResult:
    """``seconds``: length of each continuation (default: as long as the real rest of the utterance)."""
    from tqdm import tqdm

    meters = _Meters(skip, asr)
    truth, different, generated = _rows(fixed_length=True)
    items, shown, skipped = [], [], []
    for it in tqdm(items_in, desc="prompts", unit="prompt", disable=not progress, leave=False):
        c, sr = it.clip, it.clip.sample_rate
        item = {"utterance": c.key, "speaker": c.speaker, "text": c.text}
        length = seconds if seconds is not None else it.rest_wav().size / sr
        try:
            gen, error = generate(it.prompt_wav(), sr, length), None
        except SkipItem as e:
            skipped.append({**item, "skipped": str(e)})
            continue
        except RuntimeError as e:
            gen, error = None, _first_line(e)
        prompt16 = to_16k(it.prompt_wav(), sr)
        prompt_emb = meters.embed(prompt16, ("prompt", c.key))
        rest16 = to_16k(it.rest_wav(), sr)
        rest_emb = meters.embed(rest16, ("rest", c.key))
        text = c.text or None
        full16 = to_16k(mono(c), sr)
        _score(truth, item, "real", meters, full16, text, rest_emb, prompt_emb)
        if it.other is not None:
            other_emb = meters.embed(to_16k(it.prompt_wav(it.other), it.other.sample_rate), ("prompt", it.other.key))
            _score(different, item, "other_speaker", meters, None, None, rest_emb, other_emb)
        new16 = _check_generation(generated, item, gen, error)
        emb = meters.embed(new16) if new16 is not None else None
        whole16 = to_16k(gen.full, gen.sample_rate) if gen is not None and gen.full is not None else new16
        _score(generated, item, "generated", meters, whole16 if whole16 is not None else np.zeros(0, np.float32),
               text, emb, prompt_emb)
        items.append(item)
        if len(shown) < examples:
            ex = {"prompt": (prompt16, ASR_RATE), "real continuation": (rest16, ASR_RATE)}
            if gen is not None and gen.wav.size:
                ex["generated"] = (gen.wav, gen.sample_rate)
            shown.append(ex)
    notes = ["WER/CER: the prompt and its continuation against the whole utterance's text (a continuation need "
             "not say the original words, so this measures intelligibility only loosely)",
             "similarity: the continuation (real or generated) against the prompt",
             "never-ending does not apply: continuations have a fixed length"]
    return LMEvalResult("continue", [truth, different, generated], items, meters.unavailable, notes, shown, skipped,
                        meters.asr_description)
