"""Speech from voices the espeak corpus never uses: Flite's (Debian ``flite``), for evaluating codecs
and voice cloning on unseen speakers.

``codeclm data flite --out DIR --minutes M`` speaks sentences of the built-in generator (seeded
apart from the training corpus, so the sentences are new too) with each Flite voice in turn and
writes shards in the same format as ``codeclm data speech``: ``flac`` + ``json`` (text, speaker
``flite_<voice>``, voice, duration, sample rate). Voices: ``slt``, ``rms``, ``awb`` (16 kHz
statistical-parametric voices), ``kal16`` (16 kHz diphone) and ``kal`` (8 kHz diphone; resampled,
so it sounds band-limited). Flite runs as a program (``flite -voice V -t TEXT -o FILE``), one
utterance at a time, in a thread pool.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from data.shards import ShardWriter, read_manifest

FLITE_VOICES = ("slt", "rms", "awb", "kal16")
INSTALL_HINT = "install it with `apt-get install flite` (Debian/Ubuntu)"
MIN_SECONDS, MAX_SECONDS = 0.8, 12.0


class FliteError(RuntimeError):
    pass


@dataclass
class FliteCorpusConfig:
    out_dir: str
    minutes: float = 10.0
    sample_rate: int = 16000
    voices: list[str] = field(default_factory=lambda: list(FLITE_VOICES))
    seed: int = 1009  # apart from the training corpus' sentence stream
    workers: int = 2
    max_count: int = 200
    name: str = "flite"


def find_flite() -> str:
    path = shutil.which("flite")
    if path is None:
        raise FliteError(f"the held-out voices need the `flite` program, which is not on PATH: {INSTALL_HINT}")
    return path


def flite_voices(flite: str) -> list[str]:
    out = subprocess.run([flite, "-lv"], capture_output=True, text=True, timeout=30)
    text = (out.stdout + out.stderr).split(":", 1)[-1]
    return text.split()


def speak(flite: str, voice: str, text: str, sample_rate: int) -> np.ndarray:
    """Mono float32 ``[T]`` at ``sample_rate``, leading and trailing silence trimmed."""
    import soundfile as sf
    import torch

    from data.audio import resample
    from data.corpus.speech import trim_silence

    with tempfile.TemporaryDirectory() as tmp:
        wav_path = Path(tmp) / "utt.wav"
        done = subprocess.run([flite, "-voice", voice, "-t", text, "-o", str(wav_path)], capture_output=True,
                              text=True, timeout=120)
        if done.returncode != 0 or not wav_path.exists():
            raise FliteError(f"flite -voice {voice} failed ({done.returncode}): {done.stderr.strip()[-200:]}")
        wav, sr = sf.read(wav_path, dtype="float32", always_2d=True)
    wav = trim_silence(wav.mean(axis=1), sr)
    if sr != sample_rate and wav.size:
        wav = resample(torch.from_numpy(np.ascontiguousarray(wav))[None], sr, sample_rate)[0].numpy()
    peak = float(np.abs(wav).max()) if wav.size else 0.0
    return wav * (0.95 / peak) if peak > 0.95 else wav


def build_flite(cfg: FliteCorpusConfig, progress: bool = True) -> dict[str, Any]:
    """Write ``cfg.minutes`` of Flite speech as shards in ``cfg.out_dir``; returns the manifest."""
    from tqdm import tqdm

    from data.audio import encode_flac
    from data.corpus.sentences import SentenceGenerator

    flite = find_flite()
    have = flite_voices(flite)
    missing = [v for v in cfg.voices if v not in have]
    if missing or not cfg.voices:
        raise FliteError(f"flite has no voice {(missing[0] if missing else '(none given)')!r}; it has {', '.join(have)}")
    if cfg.minutes <= 0:
        raise ValueError(f"minutes must be > 0, got {cfg.minutes}")
    target = cfg.minutes * 60.0
    for old in Path(cfg.out_dir).glob(f"{cfg.name}-*.tar"):  # a previous build's shards are replaced
        old.unlink()
    writer = ShardWriter(Path(cfg.out_dir), cfg.name, cfg.max_count,
                         manifest_extra={"corpus": "flite", "sample_rate": cfg.sample_rate,
                                         "build": {k: v for k, v in asdict(cfg).items() if k not in ("out_dir", "workers")},
                                         "speakers": {f"flite_{v}": f"flite voice {v}" for v in cfg.voices}})
    sentences = SentenceGenerator(seed=cfg.seed)
    total, index = 0.0, 0
    bar = tqdm(total=round(target), unit="s", desc="flite speech", disable=not progress, dynamic_ncols=True)
    with writer, ThreadPoolExecutor(max(1, cfg.workers)) as pool:
        while total < target:
            jobs = []
            for text in sentences.sentences(4 * max(1, cfg.workers)):
                voice = cfg.voices[index % len(cfg.voices)]
                jobs.append((f"{cfg.name}_{index:07d}", voice, text))
                index += 1
            results = pool.map(lambda j: (j, speak(flite, j[1], j[2], cfg.sample_rate)), jobs)
            for (key, voice, text), wav in results:
                if total >= target:
                    break
                seconds = wav.size / cfg.sample_rate
                if not MIN_SECONDS <= seconds <= MAX_SECONDS:
                    writer.skip(key, f"duration {seconds:.2f}s outside [{MIN_SECONDS}, {MAX_SECONDS}]")
                    continue
                meta = {"key": key, "text": text, "speaker": f"flite_{voice}", "voice": f"flite {voice}",
                        "duration": round(seconds, 4), "sample_rate": cfg.sample_rate, "channels": 1,
                        "source": "flite"}
                writer.write(key, {"flac": encode_flac(wav[None], cfg.sample_rate), "json": meta})
                total += seconds
                bar.update(round(total) - bar.n)
    bar.close()
    return read_manifest(Path(cfg.out_dir))
