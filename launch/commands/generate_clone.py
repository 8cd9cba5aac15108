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
from pathlib import Path

from launch.commands.codec import decoder_arg
from launch.commands.stream_out import add_stream_args
from launch.commands.speak import CloneModels, load_clone_models, speak_long, text_ids
from launch.run_layout import add_models_option, resolve_clone


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
    add_stream_args(p, "speech")
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
