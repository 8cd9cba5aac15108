"""Turn a dataset folder or manifest into audio shards: decode, check, convert, write.

:func:`shard_audio` discovers the input's layout (:mod:`data.layouts`), decodes every item, checks
it (:func:`data.audio.read_audio`), optionally resamples and remixes it, encodes it as 16-bit FLAC
and writes ``KEY.flac`` + ``KEY.json`` into webdataset shards (:class:`data.shards.ShardWriter`).
A file that cannot be used is skipped with its reason, never fatal; the skips land in the
manifest, in a ``skipped.txt`` beside it, and in the returned :class:`IngestReport`.

Decoding and encoding run in a process pool when ``workers > 1``; results come back in input
order and the writer stays in this process, so any worker count gives byte-identical shards.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import torch
from tqdm import tqdm

from data.audio import AudioError, encode_flac, read_audio, resample, to_channels
from data.layouts import Discovery, SourceItem, discover
from data.shards import ShardWriter

SKIPPED_TXT = "skipped.txt"


@dataclass
class IngestReport:
    layout: str
    written: int
    skipped: list[dict[str, str]]  # {"source", "reason", "detail"}: layout problems, then bad files
    total_duration: float  # seconds written
    shards: list[str]  # paths of the shard files, in order
    manifest: dict[str, Any]


@dataclass
class _Encoded:
    flac: bytes
    sample_rate: int
    source_sample_rate: int
    channels: int
    frames: int


@dataclass
class _Failed:
    reason: str
    detail: str


def _encode(job: tuple[str, int | None, int | None]) -> _Encoded | _Failed:
    """Decode one file, convert it and encode FLAC; every failure becomes a :class:`_Failed`."""
    path, sample_rate, channels = job
    try:
        wav, sr = read_audio(path)
        out_sr = sample_rate or sr
        if out_sr != sr or (channels and channels != wav.shape[0]):
            x = torch.from_numpy(wav)
            if channels:
                x = to_channels(x, channels)
            wav = resample(x, sr, out_sr).numpy()
        return _Encoded(encode_flac(wav, out_sr), out_sr, sr, wav.shape[0], wav.shape[-1])
    except AudioError as e:
        return _Failed(e.reason, str(e))
    except Exception as e:  # one bad file must not end the run
        return _Failed(f"error: {type(e).__name__}", f"{path}: {type(e).__name__}: {e}")


def _init_worker() -> None:
    torch.set_num_threads(1)  # the pool is the parallelism; threads per worker would oversubscribe


def _results(jobs: list[tuple[str, int | None, int | None]], workers: int) -> Iterator[_Encoded | _Failed]:
    if workers <= 1 or len(jobs) <= 1:
        yield from map(_encode, jobs)
        return
    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    with ctx.Pool(min(workers, len(jobs)), initializer=_init_worker) as pool:
        yield from pool.imap(_encode, jobs, chunksize=4)


def _relative(path: Path, base: Path) -> str:
    return Path(os.path.relpath(path, base)).as_posix()


def _meta(item: SourceItem, enc: _Encoded, source: str, layout: str) -> dict[str, Any]:
    meta = dict(item.extra)
    meta.update(
        key=item.key,
        text=item.text,
        speaker=item.speaker,
        duration=round(enc.frames / enc.sample_rate, 6),
        sample_rate=enc.sample_rate,
        channels=enc.channels,
        source=source,
        layout=layout,
    )
    if enc.source_sample_rate != enc.sample_rate:
        meta["source_sample_rate"] = enc.source_sample_rate
    return meta


def _write_skipped_txt(out_dir: Path, skipped: list[dict[str, str]]) -> None:
    path = out_dir / SKIPPED_TXT
    if not skipped:
        path.unlink(missing_ok=True)  # a stale list from an earlier run would mislead
        return
    lines = [f"{s['reason']}\t{s['source']}" + (f"\t{s['detail']}" if s.get("detail") else "") for s in skipped]
    tmp = out_dir / f".{SKIPPED_TXT}.tmp"
    tmp.write_text(f"# {len(skipped)} inputs skipped: reason<TAB>source<TAB>detail\n" + "\n".join(lines) + "\n")
    os.replace(tmp, path)


def shard_audio(
    input: str | Path,
    out_dir: str | Path,
    name: str = "data",
    max_count: int = 1000,
    max_size_mb: float = 256,
    sample_rate: int | None = None,
    channels: int | None = None,
    workers: int = 1,
    progress: bool = True,
) -> IngestReport:
    """Write every audio item of ``input`` (a dataset folder or jsonl manifest) into shards.

    ``sample_rate`` / ``channels`` convert every clip (None keeps each file's own). Raises
    FileNotFoundError when ``input`` does not exist and ValueError when it holds no audio.
    """
    input_path = Path(input).expanduser()
    found: Discovery = discover(input_path)
    base = input_path.parent if input_path.is_file() else input_path
    if not found.items:
        hint = "; ".join(f"{s}: {r}" for s, r in found.problems[:3])
        raise ValueError(
            f"{input_path} holds no usable audio (layout {found.layout!r}"
            + (f"; {len(found.problems)} problems, e.g. {hint}" if hint else "")
            + "): pass a folder of wav/flac/ogg/mp3/aiff files or a jsonl manifest with an 'audio' field"
        )
    out_dir = Path(out_dir)
    writer = ShardWriter(
        out_dir, name, max_count, max_size_mb,
        manifest_extra={"layout": found.layout, "sample_rate": sample_rate, "source": str(input_path.resolve())},
    )
    skipped: list[dict[str, str]] = []

    def skip(source: str, reason: str, detail: str = "") -> None:
        writer.skip(source, reason)
        skipped.append({"source": source, "reason": reason, "detail": detail})

    for source, reason in found.problems:
        skip(source, f"layout: {reason}")
    jobs = [(str(it.path), sample_rate, channels) for it in found.items]
    rates: set[int] = set()
    try:
        with tqdm(total=len(jobs), desc=f"shard {found.layout}", unit="file", disable=not progress) as bar:
            for item, res in zip(found.items, _results(jobs, workers)):
                source = _relative(item.path, base)
                if isinstance(res, _Failed):
                    skip(source, res.reason, res.detail)
                else:
                    writer.write(item.key, {"flac": res.flac, "json": _meta(item, res, source, found.layout)})
                    rates.add(res.sample_rate)
                bar.update()
    except BaseException as e:  # interrupted or disk full: remove the half-written shard
        writer.__exit__(type(e), e, e.__traceback__)
        raise
    writer.manifest_extra["sample_rate"] = next(iter(rates)) if len(rates) == 1 else None
    manifest = writer.close()
    _write_skipped_txt(out_dir, skipped)
    return IngestReport(
        layout=found.layout,
        written=manifest["total_count"],
        skipped=skipped,
        total_duration=manifest["total_duration"],
        shards=[str(out_dir / s["url"]) for s in manifest["shards"]],
        manifest=manifest,
    )


__all__ = ["IngestReport", "SKIPPED_TXT", "shard_audio"]
