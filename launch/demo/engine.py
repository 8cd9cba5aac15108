"""What the demo page asks of the models: checked requests, then generation as queue jobs.

``DemoEngine.prepare_clone(...)`` / ``prepare_continue(...)`` check a request at once (audio that
decodes, durations and text within the limits, sampling values) and raise :class:`DemoError` with
the message the page shows; they return the job function the :class:`~launch.demo.jobs.JobQueue`
runs later. Generation itself is ``generate clone --stream`` / ``generate continue --stream``'s own
code (:func:`~launch.commands.speak.stream_speech`,
:func:`~launch.commands.generate_continue.stream_continuation`): the audio goes to the job chunk by
chunk as it is made (:class:`JobAudio`), for the page to play while the generation runs; progress is
counted from the transformer passes of the stage models (forward hooks), no change to the
generation loops.
"""

from __future__ import annotations

import contextlib
import io
import random
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import numpy as np
import torch

from launch.demo.images import spectrogram_png, waveform_png
from launch.demo.jobs import Job


class DemoError(ValueError):
    """A request the demo cannot serve; the message is for the person at the page."""


@dataclass
class Limits:
    max_upload_mb: float = 10.0  # request body, prompt file included
    min_prompt_seconds: float = 1.0
    max_prompt_seconds: float = 10.0
    max_text_chars: int = 300
    max_seconds: float = 10.0  # longest new audio a request may ask for
    max_waiting: int = 4  # requests that may wait while one generates


@dataclass
class Defaults:
    temperature: float = 0.8
    top_k: int | None = 50
    top_p: float | None = None
    seed: int | None = 0
    clone_seconds: float = 6.0
    continue_seconds: float = 3.0
    min_length_ratio: float = 0.5  # a clone's length bounds (``generate clone --min/--max-length-ratio``)
    max_length_ratio: float = 2.0
    chunk_frames: int = 25  # codec frames a streamed chunk holds (``generate ... --chunk-frames``)


@dataclass
class Output:
    """A finished generation: the wav file's bytes and the pictures the page shows."""

    wav: bytes
    duration: float
    sample_rate: int
    seed: int
    summary: str
    images: dict[str, bytes] = field(default_factory=dict)  # "prompt-wave", "result-spec", ...


class JobAudio:
    """The writer the streaming generators write to: each ``[C, n]`` chunk goes to the job as
    16-bit PCM (mono: the channels averaged) for the page to play, and is kept for the result."""

    def __init__(self, job: Job, sample_rate: int) -> None:
        self.job, self.sample_rate = job, sample_rate
        self.samples = 0
        self._chunks: list[np.ndarray] = []

    def write(self, audio: np.ndarray) -> None:
        if audio.shape[-1] == 0:
            return
        self._chunks.append(audio)
        from launch.commands.stream_out import pcm16_bytes

        self.job.push_audio(pcm16_bytes(audio.mean(axis=0, keepdims=True), self.sample_rate), self.sample_rate)
        self.samples += audio.shape[-1]

    def audio(self) -> np.ndarray:
        """Everything written, ``[C, T]``."""
        if not self._chunks:
            raise RuntimeError("the generation made no audio")
        return np.concatenate(self._chunks, axis=1)


def wav_bytes(wav: np.ndarray, sample_rate: int) -> bytes:
    """``[C, T]`` float audio as a 16-bit PCM wav file."""
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, np.clip(wav, -1.0, 1.0).T, int(sample_rate), format="WAV", subtype="PCM_16")
    return buf.getvalue()


@contextlib.contextmanager
def count_passes(models: dict[str, torch.nn.Module], on_pass: Callable[[str], None]) -> Iterator[None]:
    """Call ``on_pass(name)`` after each forward of ``models[name].transformer``."""
    handles = [m.transformer.register_forward_hook(lambda *_, n=name: on_pass(n)) for name, m in models.items()]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def _number(form: dict[str, Any], key: str, kind: type, default: Any, low: float, high: float, what: str) -> Any:
    raw = form.get(key)
    if raw is None or str(raw).strip() == "":
        return default
    try:
        value = kind(str(raw).strip())
    except ValueError:
        raise DemoError(f"{what} must be a number, got {raw!r}") from None
    if not low <= value <= high:
        raise DemoError(f"{what} must be between {low:g} and {high:g}, got {value:g}")
    return value


class DemoEngine:
    def __init__(self, clone_models: Any = None, continue_models: Any = None, limits: Limits | None = None,
                 defaults: Defaults | None = None, clone_missing: str = "", continue_missing: str = "") -> None:
        self.clone_models, self.continue_models = clone_models, continue_models
        self.limits, self.defaults = limits or Limits(), defaults or Defaults()
        self.clone_missing = clone_missing or "start the demo with --ar and --nar (and --text-model) to enable it"
        self.continue_missing = continue_missing or "start the demo with --coarse and --fine to enable it"

    # --- what the page shows ----------------------------------------------------------------

    def sample_rate(self, kind: str) -> int:
        """The rate of the audio a ``kind`` job streams (its codec's)."""
        models = self.clone_models if kind == "clone" else self.continue_models
        codec = getattr(models, "codec", None) or getattr(models, "tokenizer", None)
        return int(codec.sample_rate) if codec is not None else 16000

    def info(self) -> dict[str, Any]:
        lim, d = self.limits, self.defaults
        return {
            "clone": {"enabled": self.clone_models is not None,
                      "reason": "" if self.clone_models is not None else self.clone_missing},
            "continue": {"enabled": self.continue_models is not None,
                         "reason": "" if self.continue_models is not None else self.continue_missing},
            "limits": {"max_upload_mb": lim.max_upload_mb, "min_prompt_seconds": lim.min_prompt_seconds,
                       "max_prompt_seconds": lim.max_prompt_seconds, "max_text_chars": lim.max_text_chars,
                       "max_seconds": lim.max_seconds, "max_waiting": lim.max_waiting},
            "defaults": {"temperature": d.temperature, "top_k": d.top_k, "top_p": d.top_p, "seed": d.seed,
                         "clone_seconds": min(d.clone_seconds, lim.max_seconds),
                         "continue_seconds": min(d.continue_seconds, lim.max_seconds)},
        }

    # --- request checks ---------------------------------------------------------------------

    def sampling(self, form: dict[str, Any]):
        """SamplingConfig from the form's temperature / top_k / top_p / seed (blank = default;
        top_k 0 and top_p 1 switch the filter off; a blank seed draws one)."""
        from audiolm.sampling import SamplingConfig

        d = self.defaults
        temperature = _number(form, "temperature", float, d.temperature, 0.0, 5.0, "temperature")
        top_k = _number(form, "top_k", int, d.top_k, 0, 100_000, "top-k") or None
        top_p = _number(form, "top_p", float, d.top_p, 0.0, 1.0, "top-p")
        if top_p is not None and top_p <= 0:
            raise DemoError("top-p must be above 0 (1 keeps every token)")
        top_p = None if top_p is None or top_p >= 1 else top_p
        if form.get("seed") is None and d.seed is not None:
            seed = d.seed  # not on the form: the default
        else:  # on the form: blank draws a new seed (reported with the result)
            seed = _number(form, "seed", int, None, 0, 2**31 - 1, "seed")
            seed = random.randrange(2**31) if seed is None else seed
        return SamplingConfig(temperature=temperature, top_k=top_k, top_p=top_p, seed=seed)

    def seconds(self, form: dict[str, Any], default: float) -> float:
        lim = self.limits
        value = _number(form, "seconds", float, default, 0.0, float("inf"), "seconds")
        if value <= 0:
            raise DemoError("seconds must be above 0")
        if value > lim.max_seconds:
            raise DemoError(f"request too long: {value:g} s asked, this demo generates at most {lim.max_seconds:g} s")
        return value

    def prompt_audio(self, data: bytes, name: str) -> tuple[np.ndarray, int]:
        """Decode an uploaded prompt to ``([C, T] float32, sample_rate)`` within the duration limits."""
        from data.audio import decode_audio

        lim = self.limits
        if not data:
            raise DemoError("no prompt audio: upload or record a few seconds of speech")
        try:
            wav, sr = decode_audio(data, where=name or "the upload")
        except ValueError as e:
            raise DemoError(f"the prompt is not audio this demo can read ({e}); upload a wav, flac or ogg file") from None
        seconds = wav.shape[-1] / sr
        if seconds < lim.min_prompt_seconds:
            raise DemoError(f"the prompt is {seconds:.1f} s long; give at least {lim.min_prompt_seconds:g} s "
                            f"({lim.min_prompt_seconds:g}-{lim.max_prompt_seconds:g} s works)")
        if seconds > lim.max_prompt_seconds:
            raise DemoError(f"the prompt is {seconds:.1f} s long; the limit is {lim.max_prompt_seconds:g} s: "
                            "trim it or record a shorter one")
        return wav, sr

    def _text(self, text: str, what: str, required: bool) -> torch.Tensor | None:
        from launch.commands.speak import text_ids

        text = (text or "").strip()
        if not text:
            if required:
                raise DemoError("the text is empty: type the sentence to speak")
            return None
        if len(text) > self.limits.max_text_chars:
            raise DemoError(f"{what} is too long: {len(text)} characters, the limit is {self.limits.max_text_chars}")
        try:
            ids = text_ids(self.clone_models, text)
        except ValueError as e:
            raise DemoError(str(e)) from None
        if required and ids.numel() == 0:
            raise DemoError(f"the text model gives no tokens for {text!r}: type words to speak")
        return ids

    # --- jobs -------------------------------------------------------------------------------

    def prepare_clone(self, data: bytes, name: str, form: dict[str, Any]) -> Callable[[Job], Output]:
        if self.clone_models is None:
            raise DemoError(f"voice cloning is off: {self.clone_missing}")
        models = self.clone_models
        text = self._text(form.get("text", ""), "the text", required=True)
        prompt_text = self._text(form.get("prompt_text", ""), "the prompt's text", required=False)
        total = text.numel() + (0 if prompt_text is None else prompt_text.numel())
        if total > models.ar.cfg.max_text:
            raise DemoError(f"request too long: the text is {total} tokens (with the prompt's text), the model "
                            f"reads at most {models.ar.cfg.max_text}; type a shorter sentence")
        seconds = self.seconds(form, self.defaults.clone_seconds)
        sampling = self.sampling(form)
        wav, sr = self.prompt_audio(data, name)
        from audiolm.models.valle_length import LengthConfig

        lengths = LengthConfig(self.defaults.min_length_ratio, self.defaults.max_length_ratio)

        def run(job: Job) -> Output:
            from data.audio import resample
            from launch.commands.speak import stream_speech

            codec = models.codec
            mono = torch.from_numpy(np.ascontiguousarray(wav.mean(axis=0)))
            prompt = resample(mono, sr, codec.sample_rate)[None, None]  # [1, 1, T]
            asked = max(1, int(seconds * codec.frame_rate))
            limit = models.ar.cfg.max_frames
            room = limit - round(prompt.shape[-1] / codec.sample_rate * codec.frame_rate)  # as clone_speech
            room = room if room >= 1 else limit - limit // 2
            budget = max(1, min(asked, room))
            k = models.nar.cfg.num_codebooks
            counts = {"ar": 0, "nar": 0}

            def on_pass(stage: str) -> None:  # the NAR fills each chunk as the AR completes it
                counts[stage] += 1
                job.report(f"speaking: frame {counts['ar']} of at most {budget} ({k} codebooks)",
                           0.05 + 0.9 * counts["ar"] / budget)

            torch.manual_seed(sampling.seed)
            job.report("encoding the prompt", 0.02)
            writer = JobAudio(job, int(codec.sample_rate))
            with count_passes({"ar": models.ar}, on_pass):
                try:
                    result = stream_speech(models, prompt, text, prompt_text, sampling, seconds, writer,
                                           lengths=lengths, chunk_frames=self.defaults.chunk_frames)
                except RuntimeError as e:  # the CLI's advice names its flags; the page has fields
                    raise RuntimeError(str(e).replace("--", "")) from None
            what = "; ".join([f"{result.frames} frames x {result.codebooks} codebooks", *result.length_notes()])
            return self._output(result.wav, result.sample_rate, wav, sr, sampling.seed, what)

        return run

    def prepare_continue(self, data: bytes, name: str, form: dict[str, Any]) -> Callable[[Job], Output]:
        if self.continue_models is None:
            raise DemoError(f"continuation is off: {self.continue_missing}")
        models = self.continue_models
        seconds = self.seconds(form, self.defaults.continue_seconds)
        sampling = self.sampling(form)
        wav, sr = self.prompt_audio(data, name)

        def run(job: Job) -> Output:
            from launch.commands.generate_continue import stream_continuation

            tok = models.tokenizer
            frames = max(1, round(seconds * float(tok.frame_rate)))
            stage_models = {"coarse": models.coarse, "fine": models.fine}
            expected = {"coarse": frames * models.coarse.cfg.coarse_codebooks,
                        "fine": max(1, models.fine.cfg.fine_codebooks)}
            if models.semantic is not None:
                stage_models["semantic"] = models.semantic
                expected["semantic"] = max(1, round(seconds * float(models.unit_model.frame_rate)))
            total = sum(expected.values())
            counts = dict.fromkeys(expected, 0)

            def on_pass(stage: str) -> None:
                counts[stage] += 1
                done = sum(min(counts[s], expected[s]) for s in counts)
                job.report(f"{stage} stage", 0.05 + 0.9 * done / total)

            torch.manual_seed(sampling.seed)
            job.report("encoding the prompt", 0.02)
            writer = JobAudio(job, int(tok.sample_rate))
            with count_passes(stage_models, on_pass):
                prompt_frames, new = stream_continuation(models, torch.from_numpy(wav), sr, seconds, sampling, writer,
                                                         self.defaults.chunk_frames)
            return self._output(writer.audio(), int(tok.sample_rate), wav, sr, sampling.seed,
                                f"{prompt_frames} prompt frames + {new} new frames")

        return run

    @staticmethod
    def _output(result: np.ndarray, rate: int, prompt: np.ndarray, prompt_rate: int, seed: int, what: str) -> Output:
        duration = result.shape[-1] / rate
        images = {"prompt-wave": waveform_png(prompt), "prompt-spec": spectrogram_png(prompt, prompt_rate),
                  "result-wave": waveform_png(result), "result-spec": spectrogram_png(result, rate)}
        return Output(wav_bytes(result, rate), duration, rate, seed, f"{duration:.2f} s at {rate} Hz ({what})", images)
