"""The built-in music corpus: General MIDI renderings of scores, cut into captioned clips, to shards.

Pieces come from music21's bundled corpus (~13k scores and tunes: Bach chorales, Palestrina,
folk-song collections, ...) or from every ``.mid``/``.midi`` under a folder. Each piece gets
instruments from a short list of well-rendered General MIDI programs (chosen to cover each part's
pitch range), a tempo (a +-15% change of a marked tempo, or 60-140 quarter notes per minute where
the source marks none), is rendered (see :mod:`data.corpus.midi_render`) directly at the target
sample rate, mixed to mono (``channels`` = 1), peak-normalized per piece and cut into clips; clips
quieter than -45 dBFS are dropped. Every caption is true of its clip: the instruments and the
number of parts that sound in it, the tempo over it (quarter notes per minute, "bpm"), the key
from music21's analysis of the score (Krumhansl-Kessler profiles for MIDI files) when it is clear,
and the composer, collection or file. The same arguments give the same shards for any ``workers``.
Sources, their loading and their keys are in :mod:`data.corpus.music_sources`.
"""

from __future__ import annotations

import logging

import multiprocessing as mp
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from itertools import count
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from tqdm import tqdm

from data.audio import encode_flac
from data.corpus.midi_notes import Performance
from data.corpus.midi_render import APT_HINT, find_renderer
from data.corpus.music_sources import Piece, Source, load_piece, midi_sources, score_sources
from data.shards import MANIFEST, ShardWriter, read_manifest

SILENT_DB, PEAK = -45.0, 0.9


@dataclass(frozen=True)
class Instrument:
    program: int  # General MIDI program, 0-based
    name: str
    low: int  # comfortable MIDI pitch range
    high: int
    whole_texture: bool = False  # plays every part of a piece alone (keyboards, harp, guitar, strings)


INSTRUMENTS = (
    Instrument(0, "piano", 21, 108, True), Instrument(6, "harpsichord", 29, 89, True),
    Instrument(19, "church organ", 24, 96, True), Instrument(24, "classical guitar", 40, 84, True),
    Instrument(46, "harp", 24, 103, True), Instrument(48, "string ensemble", 28, 96, True),
    Instrument(4, "electric piano", 28, 103, True), Instrument(12, "marimba", 45, 96, True),
    Instrument(11, "vibraphone", 53, 89), Instrument(40, "violin", 55, 103), Instrument(41, "viola", 48, 91),
    Instrument(42, "cello", 36, 76), Instrument(43, "contrabass", 28, 60), Instrument(73, "flute", 60, 96),
    Instrument(68, "oboe", 58, 91), Instrument(71, "clarinet", 50, 91), Instrument(70, "bassoon", 34, 75),
    Instrument(60, "french horn", 34, 77),
)
DRUMS = Instrument(0, "drums", 0, 127)


@dataclass(frozen=True)
class PieceJob:
    index: int
    source: Source
    sample_rate: int
    clip_seconds: float
    seed: int
    max_piece_seconds: float
    backend: str
    soundfont: str


@dataclass
class PieceResult:
    source: str
    clips: list[tuple[str, bytes, dict[str, Any]]]
    skip: str | None = None
    silent: int = 0


def choose_instruments(perf: Performance, rng: np.random.Generator) -> list[Instrument]:
    """One instrument a part, covering its 5th-95th percentile pitches; drums stay drums."""
    ranges = [(np.percentile([n.pitch for n in p.notes], 5), np.percentile([n.pitch for n in p.notes], 95))
              for p in perf.parts]
    melodic = [r for p, r in zip(perf.parts, ranges) if not p.is_drum]
    fits = lambda inst, r: inst.low <= r[0] and r[1] <= inst.high  # noqa: E731
    whole = [i for i in INSTRUMENTS if (i.whole_texture or len(melodic) == 1) and all(fits(i, r) for r in melodic)]
    if whole and (len(melodic) <= 1 or len(melodic) > 15 or rng.random() < 0.5):  # >15 parts share channels
        same = whole[rng.integers(len(whole))]
        return [DRUMS if p.is_drum else same for p in perf.parts]
    chosen, used = [], set()
    for p, r in zip(perf.parts, ranges):
        pool = [i for i in INSTRUMENTS if fits(i, r)] or [INSTRUMENTS[0]]
        fresh = [i for i in pool if i.name not in used] or pool
        chosen.append(DRUMS if p.is_drum else fresh[rng.integers(len(fresh))])
        used.add(chosen[-1].name)
    return chosen


def tempo_word(bpm: float) -> str:
    return "slow" if bpm < 80 else "moderate" if bpm < 120 else "fast"


def caption(names: list[str], parts: int, bpm: int, key: str | None, piece: Piece, source: str) -> str:
    unique = list(dict.fromkeys(names))
    listed = unique[0] if len(unique) == 1 else ", ".join(unique[:-1]) + " and " + unique[-1]
    solo = listed if listed.endswith("ensemble") else f"solo {listed}"
    text = [solo if parts == 1 else f"{listed}, {parts} parts", f"{tempo_word(bpm)} tempo at {bpm} bpm"]
    if key:
        text.append(f"in {key}")
    if piece.composer:
        text.append(f"a piece by {piece.composer}")
    elif piece.collection:
        text.append(f"{'an' if piece.collection[0] in 'aeiouAEIOU' else 'a'} {piece.collection}")
    else:
        text.append(f"from {Path(source.split('#')[0]).name}")
    return ", ".join(text)


_RENDERERS: dict[tuple[str, str], Any] = {}


def render_piece(job: PieceJob) -> PieceResult:
    """Load, orchestrate, render and cut one piece (in a worker process). Failures become a skip."""
    label = job.source.label
    try:
        rng = np.random.default_rng([job.seed, job.index])
        piece = load_piece(job.source, job.max_piece_seconds * 3)
        perf = piece.performance
        if not perf.parts:
            return PieceResult(label, [], skip="no notes")
        base = perf.tempo_at(0.0, perf.duration)
        factor = rng.uniform(0.85, 1.15) if perf.explicit_tempo else rng.uniform(60, 140) / base
        perf = perf.scaled(factor, max_seconds=job.max_piece_seconds)
        insts = choose_instruments(perf, rng)
        perf = replace(perf, parts=[replace(p, program=i.program) for p, i in zip(perf.parts, insts)])
        renderer = _RENDERERS.get((job.backend, job.soundfont)) or find_renderer(job.backend, job.soundfont)
        _RENDERERS[(job.backend, job.soundfont)] = renderer
        audio = renderer.render(perf, job.sample_rate).audio.mean(axis=0)
    except Exception as e:  # music21 and MIDI parsing raise many kinds; one bad piece never stops a build
        return PieceResult(label, [], skip=f"{type(e).__name__}: {str(e)[:200]}")
    peak = float(np.abs(audio).max())
    audio = audio * (PEAK / peak) if peak > 1e-6 else audio
    sr, n = job.sample_rate, int(round(job.clip_seconds * job.sample_rate))
    clips, silent = [], 0
    for c in range(len(audio) // n):
        seg = audio[c * n : (c + 1) * n]
        if 10 * np.log10(float(np.mean(seg**2)) + 1e-20) < SILENT_DB:
            silent += 1
            continue
        t0, t1 = c * n / sr, (c + 1) * n / sr
        playing = [i for p, i in zip(perf.parts, insts) if any(x.start < t1 and x.end > t0 for x in p.notes)]
        if not playing:  # only a release tail sounds
            silent += 1
            continue
        bpm = int(round(perf.tempo_at(t0, min(t1, max(perf.duration, t0 + 1e-3)))))
        name = f"music_{job.index:07d}_{c:03d}"
        meta = {
            "key": name, "text": caption([i.name for i in playing], len(playing), bpm, piece.key, piece, label),
            "instruments": list(dict.fromkeys(i.name for i in playing)),
            "programs": sorted({i.program for i in playing if i is not DRUMS}), "drums": DRUMS in playing,
            "parts": len(playing), "tempo_bpm": bpm, "tempo": tempo_word(bpm), "musical_key": piece.key,
            "key_confidence": round(piece.key_confidence, 3), "key_signature": piece.key_signature,
            "composer": piece.composer, "collection": piece.collection, "title": piece.title, "source": label,
            "start": round(t0, 3), "duration": round(n / sr, 4), "sample_rate": sr, "channels": 1,
            "renderer": f"{renderer.name}:{renderer.soundfont.name}",
        }
        clips.append((name, encode_flac(seg[None].astype(np.float32), sr), meta))
    return PieceResult(label, clips, silent=silent)


def build_music(out_dir: str | Path, hours: float, sample_rate: int = 32000, midi_dir: str | Path | None = None,
                clip_seconds: float = 10.0, seed: int = 0, workers: int = 1, max_count: int = 500,
                progress: bool = True, renderer: str = "auto", max_piece_seconds: float = 180.0) -> dict[str, Any]:
    """Render about ``hours`` of captioned clips into ``music-*.tar`` shards in ``out_dir``; returns the manifest.

    ``workers`` > 1 renders pieces in that many processes (0: one per core) with identical output.
    An existing build with the same content-determining arguments is reused as it is.
    """
    if hours <= 0 or clip_seconds <= 0 or max_piece_seconds < clip_seconds:
        raise ValueError("hours and clip_seconds must be positive and max_piece_seconds at least clip_seconds")
    if not 8000 <= sample_rate <= 96000:
        raise ValueError(f"sample rate {sample_rate} is outside 8000-96000 Hz; pick e.g. --sample-rate 32000")
    rend = find_renderer(renderer)  # fails here, with the install command, when no backend exists
    if renderer == "auto" and rend.name != "fluidsynth":
        logging.getLogger("codeclm.data").warning(
            "fluidsynth with a General MIDI soundfont is not installed: rendering with %s and %s; for fluidsynth "
            "run %s", rend.name, Path(rend.soundfont).name, APT_HINT)
    sources = midi_sources(midi_dir, seed) if midi_dir else None
    out = Path(out_dir)
    build = {"hours": hours, "sample_rate": sample_rate, "midi_dir": str(midi_dir) if midi_dir else None,
             "clip_seconds": clip_seconds, "seed": seed, "max_piece_seconds": max_piece_seconds,
             "renderer": f"{rend.name}:{rend.soundfont}"}
    if (out / MANIFEST).exists():
        try:
            old = read_manifest(out)
        except ValueError:
            old = {}
        if old.get("build") == build and all((out / s["url"]).exists() for s in old["shards"]):
            return old
    for p in out.glob("music-*.tar") if out.exists() else ():
        p.unlink()

    def stream() -> Iterator[Source]:
        for rnd in count():  # a small MIDI folder is played again with new instruments and tempi
            yield from sources if sources else score_sources(seed + rnd)

    target, total, idle = hours * 3600.0, 0.0, 0
    writer = ShardWriter(out, "music", max_count, manifest_extra={
        "corpus": "music", "sample_rate": sample_rate, "channels": 1, "build": build, "silent_clips": 0})
    bar = tqdm(total=round(target), unit="s", desc="music", disable=not progress, dynamic_ncols=True)
    workers = workers or mp.cpu_count()  # 0: one per core
    # an executor, not a Pool: a worker that dies raises here instead of leaving the build waiting forever
    pool = ProcessPoolExecutor(workers, mp_context=mp.get_context("fork")) if workers > 1 else None
    jobs = (PieceJob(i, s, sample_rate, clip_seconds, seed, max_piece_seconds, rend.name, str(rend.soundfont))
            for i, s in enumerate(stream()))
    try:
        with writer:
            while total < target and idle < (len(sources) if sources else 2000):
                batch = [next(jobs) for _ in range(2 * workers if pool else 1)]
                for res in pool.map(render_piece, batch) if pool else map(render_piece, batch):
                    if total >= target:  # pieces rendered ahead by other workers are not part of the build
                        break
                    if res.skip:
                        writer.skip(res.source, res.skip)
                    writer.manifest_extra["silent_clips"] += res.silent
                    idle = 0 if res.clips else idle + 1  # stop if a whole pass of sources gives nothing
                    for name, flac, meta in res.clips:
                        if total >= target:
                            break
                        writer.write(name, {"flac": flac, "json": meta})
                        total += meta["duration"]
                        bar.update(round(total) - bar.n)
    finally:
        bar.close()
        if pool:
            pool.shutdown(cancel_futures=True)
    return read_manifest(out)
