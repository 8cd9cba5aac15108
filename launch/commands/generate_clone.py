"""``codeclm generate clone``: speak a text in the voice of a short recording (VALL-E AR + NAR).

    codeclm generate clone --prompt voice.wav --text "Hello there." --out clone.wav \\
        [--models DIR | --codec SPEC --ar AR.ckpt --nar NAR.ckpt --text-model phonemes.json|spm.model] \\
        [--prompt-text "what the prompt says"] [--temperature T --top-k K --top-p P --seed S]
        [--min-length-ratio 0.5 --max-length-ratio 2]

The stage models are rebuilt from the Lightning checkpoints of ``codeclm lm fit`` alone: each
VALL-E model keeps its config in its state dict (see ``audiolm/models/valle.py``). The text model
must be the one the stages were trained with: a ``phonemes.json`` (the text is turned into IPA
by espeak-ng, ``--voice`` picks its language) or a sentencepiece ``.model``. ``--models DIR`` (a
``codeclm quickstart`` run folder, default ``runs/quickstart`` when it exists) supplies each of
``--codec --ar --nar --text-model`` not given (see ``launch/run_layout.py``). The prompt is read
with the checks of every command (``data.audio.read_audio``), mixed to mono, resampled to the
codec's rate and encoded; the written wav holds the new speech only.

The new speech's length is bounded by its text: the AR model stored the frames per text token of
its training data, and the clone's expected length is the text's tokens (the target text, not the
prompt's) times that ratio. EOS is suppressed until ``--min-length-ratio`` x the expected length
and generation stops at ``--max-length-ratio`` x it (and at ``--max-seconds``, and where the
model's context ends); the command says when either bound was hit. A checkpoint trained before
the ratio was stored uses a default measured on espeak speech, and says so.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from launch.commands.codec import decoder_arg
from launch.run_layout import DEFAULT_RUN, RunLayout, add_models_option, resolve_clone

DEFAULT_TEXT_MODEL = str(RunLayout(DEFAULT_RUN).phonemes)
NO_STATS = ("the AR checkpoint holds no frames-per-token statistics (trained before they were stored): the length "
            "bounds use the espeak default")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("clone", help="zero-shot voice cloning with a VALL-E AR + NAR pair")
    add_models_option(p)
    p.add_argument("--codec", metavar="SPEC",
                   help="the codec the LM was trained on: export directory, .ckpt, or encodec24k / encodec48k "
                        "(default: the --models folder's)")
    decoder_arg(p)
    p.add_argument("--ar", help="AR stage checkpoint (.ckpt from `codeclm lm fit`; default: the --models folder's)")
    p.add_argument("--nar", help="NAR stage checkpoint (.ckpt from `codeclm lm fit`; default: the --models folder's)")
    p.add_argument("--prompt", required=True, help="a few seconds of the voice to clone (wav, flac, ogg)")
    p.add_argument("--text", required=True, help="what the clone says")
    p.add_argument("--prompt-text", default=None, help="what the prompt says (better alignment when given)")
    p.add_argument("--recognize-prompt", action="store_true",
                   help="without --prompt-text: transcribe the prompt with the --asr recognizer (the eval extra) "
                        "and use what it hears (it is printed: check it)")
    from launch.commands.asr_option import add_asr_argument

    add_asr_argument(p, "the recognizer of --recognize-prompt", none=False)
    p.add_argument("--out", required=True, help="wav file to write (with --stream also -: raw s16le PCM on stdout)")
    p.add_argument("--stream", action="store_true",
                   help="write the speech as it is generated, chunk by chunk (prints the time to first audio and the "
                        "real-time factor)")
    p.add_argument("--chunk-frames", type=int, default=25,
                   help="with --stream: codec frames per chunk (default 25, half a second at 50 Hz)")
    p.add_argument("--nar-context", type=int, default=150,
                   help="with --stream: frames before a chunk (prompt, then speech) the NAR sees (default 150; "
                        "0: all its context holds, the one-pass clone's view, at several times the cost)")
    p.add_argument("--text-model", default=None,
                   help="phonemes.json or sentencepiece .model used in training (default: the --models folder's)")
    p.add_argument("--voice", default="en-us", help="espeak-ng voice for phonemizing (phoneme text models)")
    p.add_argument("--temperature", type=float, default=1.0, help="AR sampling temperature (0 = greedy)")
    p.add_argument("--top-k", type=int, default=None, help="AR top-k filter")
    p.add_argument("--top-p", type=float, default=None, help="AR nucleus filter")
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed, same output)")
    p.add_argument("--max-seconds", type=float, default=20.0,
                   help="longest speech generated, whatever the text (default 20)")
    length_args(p)
    p.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    p.set_defaults(func=run)


def length_args(p: argparse.ArgumentParser) -> None:
    """``--min-length-ratio`` / ``--max-length-ratio``: the clone's length bounds."""
    p.add_argument("--min-length-ratio", type=float, default=0.5,
                   help="EOS is suppressed until the speech is this fraction of the length expected for the text "
                        "(text tokens x the frames per token of the training data; default 0.5)")
    p.add_argument("--max-length-ratio", type=float, default=2.0,
                   help="generation stops at this multiple of the expected length (default 2)")


def length_config(a: argparse.Namespace):
    from audiolm.models.valle_length import LengthConfig

    return LengthConfig(min_ratio=a.min_length_ratio, max_ratio=a.max_length_ratio)


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


def read_prompt(path: str, sample_rate: int):
    """``[1, 1, T]`` float32 mono audio at ``sample_rate``, read through the checks every command
    uses (:func:`data.audio.read_audio`: a truncated, empty or non-finite file is one message)."""
    from data.audio import read_audio

    return prompt_at(read_audio(path), sample_rate)


def prompt_at(audio, sample_rate: int):
    """``(wav [C, T] numpy, sr)`` from :func:`data.audio.read_audio` -> ``[1, 1, T]`` mono tensor
    at ``sample_rate``."""
    import torch

    from data.audio import resample

    wav, sr = audio
    return resample(torch.from_numpy(wav).mean(dim=0), sr, sample_rate)[None, None]


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


def recognize_prompt(prompt, sample_rate: int, asr_name: str = "whisper-tiny") -> str | None:
    """What the recognizer ``asr_name`` hears in the prompt ``[1, C, T]`` (None when it hears
    nothing); says it."""
    from audiolm.evaluation.asr import load_transcriber
    from audiolm.evaluation.evaluate import to_16k

    asr, why = load_transcriber(asr_name)
    if asr is None:
        raise RuntimeError(f"--recognize-prompt needs the recognizer: {why}; install the eval extra "
                           "(pip install 'codeclm[eval]') or give --prompt-text")
    heard = asr(to_16k(prompt[0].mean(dim=0).numpy(), sample_rate)).strip()
    print(f"prompt transcript (recognized by {asr.name}): {heard!r}" if heard
          else f"prompt transcript: nothing recognized by {asr.name}")
    return heard or None


def run(a: argparse.Namespace) -> int:
    import numpy as np
    import soundfile as sf
    import torch

    from audiolm.sampling import SamplingConfig
    from data.audio import read_audio

    resolve_clone(a)
    audio = read_audio(a.prompt)  # a bad prompt file is one message, before any model loads
    models = load_clone_models(a.codec, a.ar, a.nar, a.text_model, a.voice, a.device, decoder=a.decoder)
    text_ids(models, a.text)  # the vocabulary is checked before any work
    sampling = SamplingConfig(temperature=a.temperature, top_k=a.top_k, top_p=a.top_p, seed=a.seed)
    lengths = length_config(a)
    torch.manual_seed(a.seed)
    start = time.time()
    prompt = prompt_at(audio, models.codec.sample_rate)
    if a.prompt_text is None and a.recognize_prompt:
        a.prompt_text = recognize_prompt(prompt, int(models.codec.sample_rate), a.asr)
    if a.stream:
        return _run_stream(a, models, prompt, sampling, lengths, start)
    if a.out == "-":
        raise ValueError("writing PCM to stdout (--out -) needs --stream")
    result, parts = speak_long(models, prompt, a.text, a.prompt_text, sampling, a.max_seconds, lengths=lengths)
    if parts > 1:
        print(f"the text is longer than the AR model's context ({models.ar.cfg.max_text} text tokens): said in "
              f"{parts} parts")
    wav = result.wav
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    sf.write(out, np.clip(wav, -1.0, 1.0).T, result.sample_rate, subtype="PCM_16")
    print(f"{out}: {wav.shape[-1] / result.sample_rate:.2f} s ({result.frames} frames x {result.codebooks} "
          f"codebooks) at {result.sample_rate} Hz in {time.time() - start:.1f} s")
    for note in result.length_notes():
        print(note)
    return 0


def _run_stream(a: argparse.Namespace, models: CloneModels, prompt, sampling, lengths, start: float) -> int:
    import sys

    from launch.commands.stream_out import ChunkDecoder, StreamWriter

    if a.chunk_frames < 1:
        raise ValueError(f"--chunk-frames must be >= 1, got {a.chunk_frames}")
    say = (lambda *x: print(*x, file=sys.stderr)) if a.out == "-" else print
    latency = ChunkDecoder(models.codec).latency_ms
    say(f"streaming {a.chunk_frames}-frame chunks ({1000 * a.chunk_frames / models.codec.frame_rate:.0f} ms); the "
        f"codec's decoder adds {latency:.0f} ms of lookahead" if latency else
        f"streaming {a.chunk_frames}-frame chunks ({1000 * a.chunk_frames / models.codec.frame_rate:.0f} ms) through "
        "the causal codec's stream")
    writer = StreamWriter(a.out, int(models.codec.sample_rate), int(models.codec.channels))
    ok = False
    try:
        result, parts = speak_long(models, prompt, a.text, a.prompt_text, sampling, a.max_seconds, lengths=lengths,
                                   writer=writer, chunk_frames=a.chunk_frames, nar_context=a.nar_context or None)
        ok = writer.samples > 0
    finally:
        writer.close(ok)
    if not ok:
        raise RuntimeError("the clone made no audio (the model ended at once): nothing written")
    say(f"{a.out}: {writer.seconds:.2f} s ({result.frames} frames x {result.codebooks} codebooks) at "
        f"{result.sample_rate} Hz in {time.time() - start:.1f} s" + (f", said in {parts} parts" if parts > 1 else ""))
    say(writer.summary())
    for note in result.length_notes():
        say(note)
    return 0
