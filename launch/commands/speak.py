"""Speaking a text in the voice of a prompt with a VALL-E pair: the loaded models, one part (all at
once, or streamed chunk by chunk into a writer), and long texts said part by part. What
``codeclm generate clone``, ``eval tts`` and the demo share; the command's own options and
output are in ``generate_clone.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from launch.run_layout import DEFAULT_RUN, RunLayout

DEFAULT_TEXT_MODEL = str(RunLayout(DEFAULT_RUN).phonemes)
NO_STATS = ("the AR checkpoint holds no frames-per-token statistics (trained before they were stored): the length "
            "bounds use the espeak default")


def text_encoder(path: str, voice: str):
    """A callable ``text -> ids`` for the text model at ``path``."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"no text model at {p}: give --text-model (the phonemes.json or spm .model "
                                "the LM was trained with)")
    if p.suffix == ".json":
        from data.corpus.espeak import VoiceParams, get_espeak
        from data.text import PhonemeVocab

        vocab = PhonemeVocab.load(p)
        return lambda text: vocab(get_espeak().phonemes(text, VoiceParams(voice=voice)))
    from data.text import SpmTokenizer

    return SpmTokenizer(p)


@dataclass
class CloneModels:
    """A loaded VALL-E pair, its codec and its text model (``encode: text -> ids``)."""

    ar: Any
    nar: Any
    codec: Any
    encode: Callable[[str], list[int]]
    text_model: str
    device: str


@dataclass
class CloneResult:
    """The new speech ``wav [C, T]`` (float32 numpy, prompt excluded) at ``sample_rate``.

    ``stop``: why the AR stage stopped (``eos``, ``max_frames``: the maximum length, ``context``:
    the end of the model's context); ``limit`` / ``min_frames``: the most and fewest frames it
    could make (``frame_rate`` a second); ``eos_suppressed``: steps below the minimum at which EOS
    was its most likely token; ``measured``: the bounds came from the model's own statistics.
    For several parts (``speak_long``) the counts add up and ``stop`` is the first that was not EOS."""

    wav: Any
    sample_rate: int
    frames: int
    codebooks: int
    limit: int = 0  # the most frames the AR stage could add; frames == limit: it never chose EOS
    stop: str = "eos"
    min_frames: int = 0
    eos_suppressed: int = 0
    frame_rate: float = 0.0
    measured: bool = True
    parts: list = field(default_factory=list)

    def length_notes(self) -> list[str]:
        """What the length bounds did, one line each (nothing when the model chose EOS between them)."""
        if self.parts:
            notes = [f"part {i + 1}: {n}" for i, r in enumerate(self.parts) for n in r.length_notes() if n != NO_STATS]
            return notes + ([] if self.measured else [NO_STATS])
        rate = self.frame_rate or 1.0
        unit = "s" if self.frame_rate else "frames"
        notes = []
        if self.stop == "max_frames":
            notes.append(f"stopped at the maximum length {self.limit / rate:.2f} {unit}: the model never chose EOS")
        elif self.stop == "context":
            notes.append(f"stopped at the end of the model's context ({self.limit / rate:.2f} {unit} after this "
                         "prompt): the model never chose EOS")
        if self.eos_suppressed:
            notes.append(f"EOS suppressed until the minimum length {self.min_frames / rate:.2f} {unit} (the model "
                         f"wanted to end {self.eos_suppressed} times before it)")
        if not self.measured:
            notes.append(NO_STATS)
        return notes


def load_clone_models(codec: str, ar: str, nar: str, text_model: str = DEFAULT_TEXT_MODEL, voice: str = "en-us",
                      device: str | None = None, decoder: str | None = None) -> CloneModels:
    """Load and cross-check the AR and NAR stages, the codec and the text model."""
    import torch

    from audiolm.models.valle import ValleAR
    from audiolm.models.valle_generate import load_stage
    from audiolm.models.valle_nar import ValleNAR
    from codec.load import load_tokenizer

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    ar_model, nar_model = load_stage(ar, device), load_stage(nar, device)
    if not isinstance(ar_model, ValleAR) or not isinstance(nar_model, ValleNAR):
        raise ValueError(f"--ar must be an AR checkpoint and --nar a NAR one; got {type(ar_model).__name__} "
                         f"({ar}) and {type(nar_model).__name__} ({nar})")
    tokenizer = load_tokenizer(codec, device=device, decoder=decoder)
    k = nar_model.cfg.num_codebooks
    if tokenizer.cardinality != ar_model.cfg.cardinality or tokenizer.num_codebooks < k:
        raise ValueError(f"{codec} has {tokenizer.num_codebooks} codebooks of {tokenizer.cardinality} codes, the LM "
                         f"needs {k} of {ar_model.cfg.cardinality}: give the codec the LM was trained on")
    return CloneModels(ar_model, nar_model, tokenizer, text_encoder(text_model, voice), text_model, device)


def text_ids(models: CloneModels, text: str):
    """``text`` as a ``[L]`` long tensor of the AR model's text ids (vocabulary checked)."""
    import torch

    ids = torch.tensor(models.encode(text), dtype=torch.long)
    if ids.numel() and int(ids.max()) >= models.ar.cfg.text_vocab:
        raise ValueError(f"{models.text_model} gives ids up to {int(ids.max())}, beyond the LM's text_vocab "
                         f"{models.ar.cfg.text_vocab}: give the text model the LM was trained with")
    return ids


def _prompt_and_bounds(models: CloneModels, prompt, text, max_seconds: float, lengths):
    """The prompt's codes ``[K, Tp]`` (cut to its end when it would fill the AR model's context) and
    the length bounds of ``text``."""
    from audiolm.models.valle_length import length_bounds

    ar, codec = models.ar, models.codec
    prompt = codec.encode(prompt.to(models.device))[0, : models.nar.cfg.num_codebooks]  # [K, Tp]
    max_frames = max(1, int(max_seconds * codec.frame_rate))
    if ar.cfg.max_frames - prompt.shape[1] < 1:
        prompt = prompt[:, -(ar.cfg.max_frames // 2):]  # the prompt's end: leave room for the new speech
    bounds = length_bounds(ar.length_stats, text.numel(), lengths, float(codec.frame_rate), cap=max_frames)
    return prompt, bounds


def _result(models: CloneModels, wav, out, bounds) -> CloneResult:
    codec = models.codec
    return CloneResult(wav, int(codec.sample_rate), int(out.codes.shape[1]), int(out.codes.shape[0]), out.max_frames,
                       out.stop, out.min_frames, out.eos_suppressed, float(codec.frame_rate), bounds.measured)


def clone_speech(models: CloneModels, prompt, text, prompt_text, sampling, max_seconds: float,
                 on_stage: Callable[[str], None] | None = None, lengths=None) -> CloneResult:
    """Speak ``text`` (ids ``[L]``) in the voice of ``prompt`` (``[1, 1, T]`` audio at the codec's
    rate); ``prompt_text``: ids of what the prompt says, or None. ``on_stage`` hears "encode",
    "generate" and "decode" as each begins. ``lengths``: a
    :class:`~audiolm.models.valle_length.LengthConfig` (None: the default ratios)."""
    import torch

    from audiolm.models.valle_generate import clone

    codec = models.codec
    stage = on_stage or (lambda name: None)
    with torch.inference_mode():
        stage("encode")
        prompt, bounds = _prompt_and_bounds(models, prompt, text, max_seconds, lengths)
        stage("generate")
        out = clone(models.ar, models.nar, text, prompt, prompt_text, sampling, bounds)
        stage("decode")
        full = torch.cat([prompt, out.codes], dim=1)  # decode in context, keep the new part
        wav = codec.decode(full[None])[0].float().cpu()
    hop = wav.shape[-1] / full.shape[1]
    wav = wav[:, int(round(prompt.shape[1] * hop)):].numpy()  # [C, T]
    return _result(models, wav, out, bounds)


def stream_speech(models: CloneModels, prompt, text, prompt_text, sampling, max_seconds: float, writer,
                  lengths=None, chunk_frames: int = 25, nar_context: int | None = 150) -> CloneResult:
    """:func:`clone_speech`, writing the new speech to ``writer`` (a
    :class:`~launch.commands.stream_out.StreamWriter`) chunk by chunk as it is generated: every
    ``chunk_frames`` frames the NAR fills the chunk and the codec's stream decodes it (primed with
    the prompt, so the audio is decoded in context as in one pass)."""
    import numpy as np
    import torch

    from audiolm.models.valle_generate import clone_stream
    from launch.commands.stream_out import ChunkDecoder

    parts = []
    with torch.inference_mode():
        prompt, bounds = _prompt_and_bounds(models, prompt, text, max_seconds, lengths)
        decoder = ChunkDecoder(models.codec, prompt)
        chunks = clone_stream(models.ar, models.nar, text, prompt, prompt_text, sampling, bounds,
                              chunk_frames=chunk_frames, nar_context=nar_context)
        while True:
            try:
                codes = next(chunks)
            except StopIteration as done:
                out = done.value
                break
            parts.append(decoder.decode(codes))
            writer.write(parts[-1])
        parts.append(decoder.finish())
        writer.write(parts[-1])
    wav = np.concatenate(parts, axis=1)
    return _result(models, wav, out, bounds)


def split_text(text: str, fits: Callable[[str], bool]) -> list[str]:
    """``text`` in as few parts as it takes for each to ``fit``: whole sentences joined while they
    fit, a sentence that does not fit alone cut at commas, then between words."""
    import re

    def pieces(unit: str, seps: list[str]) -> list[str]:
        if fits(unit) or not seps:
            return [unit]
        parts = [p for p in re.split(seps[0], unit) if p.strip()]
        if len(parts) == 1:
            return pieces(unit, seps[1:])
        return [q for p in parts for q in pieces(p.strip(), seps[1:])]

    units = [q for sent in re.split(r"(?<=[.!?;])\s+", text.strip()) if sent for q in pieces(sent, [r"(?<=,)\s+", r"\s+"])]
    out: list[str] = []
    for unit in units:
        if out and fits(f"{out[-1]} {unit}"):
            out[-1] = f"{out[-1]} {unit}"
        else:
            if not fits(unit):
                raise ValueError(f"{unit!r} alone is longer than the AR model's text context")
            out.append(unit)
    return out


def speak_long(models: CloneModels, prompt, text: str, prompt_text: str | None, sampling, max_seconds: float,
               pause: float = 0.2, lengths=None, writer=None, chunk_frames: int = 25,
               nar_context: int | None = 150) -> tuple[CloneResult, int]:
    """Long-form cloning: ``text`` past the AR model's text context is said part by part (whole
    sentences where they fit), each part in the prompt's voice, joined by ``pause`` seconds of
    silence; each part's length is bounded by its own text (``lengths``, as in ``clone_speech``).
    Returns the joined result (``parts``: each part's) and the number of parts. With ``writer``
    (a :class:`~launch.commands.stream_out.StreamWriter`) every part streams into it as it is made
    (:func:`stream_speech`, ``chunk_frames`` a chunk)."""
    import numpy as np

    def speak(ids, pids, first: bool):
        if writer is None:
            return clone_speech(models, prompt, ids, pids, sampling, max_seconds, lengths=lengths)
        if not first:
            writer.write(np.zeros((models.codec.channels, int(pause * models.codec.sample_rate)), dtype=np.float32))
        return stream_speech(models, prompt, ids, pids, sampling, max_seconds, writer, lengths, chunk_frames, nar_context)

    max_text = models.ar.cfg.max_text
    pids = text_ids(models, prompt_text) if prompt_text else None
    ids = text_ids(models, text)
    if ids.numel() <= max_text:  # one part; the prompt's words are a help, not a need
        if pids is not None and pids.numel() + ids.numel() > max_text:
            pids = None
        return speak(ids, pids, True), 1
    if pids is not None and pids.numel() > max_text // 2:
        pids = None
    room = max_text - (pids.numel() if pids is not None else 0)
    parts = split_text(text, lambda t: text_ids(models, t).numel() <= room)
    results = [speak(text_ids(models, part), pids, i == 0) for i, part in enumerate(parts)]
    sr = results[0].sample_rate
    gap = np.zeros((results[0].wav.shape[0], int(pause * sr)), dtype=np.float32)
    wav = np.concatenate([x for r in results for x in (r.wav, gap)][:-1], axis=1)
    stop = next((r.stop for r in results if r.stop != "eos"), "eos")
    return CloneResult(wav, sr, sum(r.frames for r in results), results[0].codebooks, sum(r.limit for r in results),
                       stop, sum(r.min_frames for r in results), sum(r.eos_suppressed for r in results),
                       results[0].frame_rate, results[0].measured, results), len(parts)
