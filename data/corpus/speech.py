"""The built-in speech corpus: espeak-ng speech from many synthetic speakers, straight to shards.

Every utterance is a ``flac`` + ``json`` sample; the json holds the text, IPA phonemes, speaker id,
voice parameters, duration and sample rate. Output is deterministic for a seed: the same
arguments give the same utterances in the same shards, whatever the number of workers.
"""

from __future__ import annotations

import multiprocessing as mp
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from data.audio import encode_flac
from data.corpus.espeak import VoiceParams, get_espeak
from data.corpus.speakers import ENGLISH_VOICES, describe, make_speakers
from data.shards import MANIFEST, ShardWriter, read_manifest

MIN_SECONDS, MAX_SECONDS = 1.0, 10.0  # utterances outside are skipped (and listed in the manifest)
# espeak-ng keeps synthesis state between utterances (its pitch flutter phase) that no API call
# resets. Each block of utterances runs in a freshly forked process, so every block starts from
# the same state and the audio does not depend on how many workers there are.
BLOCK = 48


@dataclass
class SpeechCorpusConfig:
    out_dir: str
    hours: float = 1.0
    sample_rate: int = 16000
    speakers: int = 48
    voices: list[str] = field(default_factory=lambda: list(ENGLISH_VOICES))
    text_file: str | None = None
    seed: int = 0
    workers: int = 0  # 0: one per CPU core
    max_count: int = 200
    max_size_mb: float = 256.0
    name: str = "speech"

    def build_key(self) -> dict[str, Any]:
        """What determines the corpus' content (not where it goes or how fast it is made)."""
        d = asdict(self)
        for k in ("out_dir", "workers"):
            d.pop(k)
        return d


def trim_silence(wav: np.ndarray, sr: int, threshold_db: float = -45.0, margin_s: float = 0.1) -> np.ndarray:
    """Cut leading and trailing silence (10 ms frames quieter than ``threshold_db`` below the peak)."""
    if wav.size == 0:
        return wav
    hop = max(1, sr // 100)
    n = len(wav) // hop
    if n == 0:
        return wav
    rms = np.sqrt(np.mean(wav[: n * hop].reshape(n, hop) ** 2, axis=1) + 1e-12)
    loud = np.nonzero(20 * np.log10(rms / (rms.max() + 1e-12)) > threshold_db)[0]
    if loud.size == 0:
        return wav[:0]
    margin = int(margin_s * sr)
    return wav[max(0, loud[0] * hop - margin) : min(len(wav), (loud[-1] + 1) * hop + margin)]


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)


def synthesize_utterance(job: tuple[str, str, str, VoiceParams, int]) -> dict[str, Any]:
    """One utterance: synthesize, trim, resample, encode. Runs in a worker process."""
    import torch

    from data.audio import resample

    key, text, speaker, params, sample_rate = job
    engine = get_espeak()
    wav = trim_silence(engine.synthesize(text, params), engine.sample_rate)
    duration = len(wav) / engine.sample_rate
    if not MIN_SECONDS <= duration <= MAX_SECONDS:
        return {"key": key, "skip": f"duration {duration:.2f}s outside [{MIN_SECONDS}, {MAX_SECONDS}]"}
    audio = resample(torch.from_numpy(wav)[None], engine.sample_rate, sample_rate).numpy()
    peak = float(np.abs(audio).max())
    if peak > 0.99:
        audio *= 0.99 / peak
    meta = {
        "key": key,
        "text": text,
        "phonemes": engine.phonemes(text, params),
        "speaker": speaker,
        "voice": describe(params),
        "duration": round(audio.shape[-1] / sample_rate, 4),
        "sample_rate": sample_rate,
        "channels": 1,
        "source": "espeak-ng",
    }
    return {"key": key, "flac": encode_flac(audio, sample_rate), "json": meta}


def synthesize_block(jobs: list[tuple[str, str, str, VoiceParams, int]]) -> list[dict[str, Any]]:
    return [synthesize_utterance(job) for job in jobs]


def _texts(cfg: SpeechCorpusConfig):
    """An endless, deterministic stream of sentences."""
    from data.corpus.sentences import SentenceGenerator, load_text_file

    if cfg.text_file:
        lines = load_text_file(cfg.text_file)
        i = 0
        while True:
            yield lines[i % len(lines)]
            i += 1
    gen = SentenceGenerator(seed=cfg.seed)
    while True:
        yield from gen.sentences(4096)


def _plausible(text: str, params: VoiceParams) -> bool:
    words = len(text.split())
    return words * 60.0 / params.rate <= MAX_SECONDS * 0.85


def _check_voices(params: list[VoiceParams]) -> None:
    """Fail early, with the voice's name, on a voice espeak-ng does not have (in a child process,
    so this process' espeak state stays fresh for the forked workers)."""
    with mp.get_context("fork").Pool(1) as pool:
        bad = pool.apply(_missing_voices, (params,))
    if bad:
        raise ValueError(f"espeak-ng has no voice {bad[0]!r}; list them with `codeclm data voices`")


def _missing_voices(params: list[VoiceParams]) -> list[str]:
    from data.corpus.espeak import EspeakError

    engine, bad = get_espeak(), []
    for p in {(p.voice, p.variant): p for p in params}.values():
        try:
            engine.set_voice(p)
        except EspeakError:
            bad.append(p.name)
    return bad


def build_speech(cfg: SpeechCorpusConfig, progress: bool = True) -> dict[str, Any]:
    """Build (or reuse) the corpus in ``cfg.out_dir``; returns the shard manifest."""
    out = Path(cfg.out_dir)
    if (out / MANIFEST).exists():
        try:
            old = read_manifest(out)
        except ValueError:
            old = {}
        if old.get("build") == cfg.build_key() and all((out / s["url"]).exists() for s in old["shards"]):
            return old
    if out.exists():  # a different or unfinished build: replace its shards, keep other files
        for p in out.glob(f"{cfg.name}-*.tar"):
            p.unlink()
    speakers = make_speakers(cfg.speakers, tuple(cfg.voices), cfg.seed)
    _check_voices(list(speakers.values()))
    spk_items = list(speakers.items())
    target = cfg.hours * 3600.0
    workers = cfg.workers or mp.cpu_count()
    writer = ShardWriter(
        out, cfg.name, cfg.max_count, cfg.max_size_mb,
        manifest_extra={
            "corpus": "speech", "sample_rate": cfg.sample_rate, "build": cfg.build_key(),
            "speakers": {k: describe(v) for k, v in speakers.items()},
        },
    )
    texts = _texts(cfg)
    total, index = 0.0, 0
    bar = tqdm(total=round(target), unit="s", desc="speech", disable=not progress, dynamic_ncols=True)
    pool = mp.get_context("fork").Pool(workers, initializer=_init_worker, maxtasksperchild=1)
    try:
        with writer:
            while total < target:
                jobs = []
                while len(jobs) < 4 * BLOCK * workers:
                    text = next(texts)
                    spk, params = spk_items[index % len(spk_items)]
                    if _plausible(text, params):
                        jobs.append((f"{cfg.name}_{index:07d}", text, spk, params, cfg.sample_rate))
                        index += 1
                blocks = [jobs[i : i + BLOCK] for i in range(0, len(jobs), BLOCK)]
                for res in (r for block in pool.imap(synthesize_block, blocks) for r in block):
                    if total >= target:
                        break
                    if "skip" in res:
                        writer.skip(res["key"], res["skip"])
                        continue
                    writer.write(res["key"], {"flac": res["flac"], "json": res["json"]})
                    total += res["json"]["duration"]
                    bar.update(round(total) - bar.n)
    finally:
        bar.close()
        pool.terminate()
    return read_manifest(out)


