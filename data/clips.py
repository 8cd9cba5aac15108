"""Evaluation clips: audio with its text and speaker, read in a fixed order from a shard spec or a
folder of audio files.

:func:`iter_clips` yields :class:`Clip` objects (``wav`` ``[C, T]`` float32 at its own rate).
A folder holding ``.tar`` shards or a ``shards.json`` is read as shards; any other folder is
walked for audio files (sorted paths), each with an optional ``.txt`` transcript beside it and its
parent folder's name as speaker. Anything else is a shard spec (brace pattern, ``pipe:``, ``::``).
Unreadable samples are skipped and counted in the ``skips`` counter the caller passes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from data.audio import AudioError, decode_audio, read_audio
from data.layouts import AUDIO_EXTS
from data.skips import SkipCounter

SAMPLE_AUDIO_KEYS = tuple(ext.lstrip(".") for ext in AUDIO_EXTS)


@dataclass
class Clip:
    key: str
    wav: np.ndarray  # [C, T] float32
    sample_rate: int
    text: str = ""
    speaker: str = ""

    @property
    def seconds(self) -> float:
        return self.wav.shape[-1] / self.sample_rate


def _is_shard_folder(p: Path) -> bool:
    return (p / "shards.json").is_file() or any(p.glob("*.tar"))


def _from_folder(folder: Path, skips: SkipCounter) -> Iterator[Clip]:
    files = sorted(f for f in folder.rglob("*") if f.is_file() and f.suffix.lower() in AUDIO_EXTS)
    if not files:
        raise ValueError(f"{folder} holds no audio files ({', '.join(AUDIO_EXTS)}) and no shards")
    for f in files:
        try:
            wav, sr = read_audio(f)
        except AudioError as e:
            skips.add(e.reason, str(folder), str(f.relative_to(folder)), str(e))
            continue
        txt = f.with_suffix(".txt")
        text = txt.read_text(encoding="utf-8", errors="replace").strip() if txt.is_file() else ""
        speaker = f.parent.name if f.parent != folder else ""
        yield Clip(str(f.relative_to(folder)), wav, sr, text, speaker)


def _from_shards(spec: str, skips: SkipCounter) -> Iterator[Clip]:
    from data.urls import expand_urls
    from data.webdataset import read_shard

    for url in expand_urls(spec).urls:
        for sample in read_shard(url, skips):
            key = sample.get("__key__", "?")
            ext = next((k for k in SAMPLE_AUDIO_KEYS if k in sample), None)
            if ext is None:
                skips.add("no_audio", url, key)
                continue
            try:
                wav, sr = decode_audio(sample[ext], f"{url}:{key}")
            except AudioError as e:
                skips.add(e.reason, url, key, str(e))
                continue
            meta = {}
            if "json" in sample:
                try:
                    meta = json.loads(sample["json"])
                except ValueError:
                    skips.add("bad_json", url, key)
            yield Clip(key, wav, sr, str(meta.get("text", "") or ""), str(meta.get("speaker", "") or ""))


def iter_clips(spec: str, skips: SkipCounter | None = None) -> Iterator[Clip]:
    """Clips of ``spec`` (see the module doc), in a fixed order."""
    skips = skips if skips is not None else SkipCounter()
    p = Path(spec).expanduser()
    if p.is_dir() and not _is_shard_folder(p):
        yield from _from_folder(p, skips)
    elif p.is_file() and p.suffix.lower() in AUDIO_EXTS:
        try:
            wav, sr = read_audio(p)
        except AudioError as e:
            raise ValueError(str(e)) from None
        yield Clip(p.name, wav, sr)
    else:
        yield from _from_shards(spec, skips)
