"""Audio shards -> token shards (``codeclm.tokens/1``), restartable shard by shard.

Input shard ``i`` becomes ``tokens-{i:06d}.tar``, where ``i`` is the number that ends the input
shard's name (``speech-000003.tar`` -> ``tokens-000003.tar``) when those numbers are distinct, else
its position in the shard list. Beside each finished shard a sidecar ``tokens-{i:06d}.json`` records
its source, sample count, duration, byte size and skips; a rerun into the same directory keeps every
shard whose tar and sidecar agree and redoes the rest, then writes ``shards.json`` over all shards.
A directory tokenized by another codec (``codec_id``) or with another number of codebooks is
refused (that bookkeeping is in :mod:`codec.tokenize_state`).

Each clip is decoded, resampled to the tokenizer's rate, mapped to its channels, and encoded in
batches: clips are sorted by length within a shard, zero-padded to the longest in the batch, and
each padded clip's codes are cut to ``ceil(length / hop)`` frames. Padding is not free: frames
within the encoder's receptive field of a clip's end see the zeros that follow it instead of the
end of the signal, so its last few codes can differ from encoding the clip alone (``batch_size=1``
gives exactly the tokenizer's own ``encode``). Tokenizers that cut audio into segments of their
own (EnCodec 48 kHz) encode each clip alone and keep all its codes. Samples keep their input
order in the output shard, with their ``text``, ``phonemes`` and ``speaker``. A bad sample is
skipped and counted, never fatal.
"""

from __future__ import annotations

import io
import json
import math
import shutil
import tarfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch
from tqdm import tqdm

from codec.load import codebooks_in_use, use_codebooks
from codec.tokenize_state import (
    PART_FORMAT,
    Target,
    check_same_codec,
    finished_part,
    output_numbers,
    sidecar_source,
)
from codec.tokenizer import AudioTokenizer
from data.audio import AudioError, decode_audio, resample, to_channels
from data.shards import MANIFEST, write_json_atomic
from data.skips import SkipCounter
from data.tokens import TOKEN_FORMAT, TokenShardWriter
from data.urls import expand_urls
from data.webdataset import read_shard

AUDIO_EXTS = ("flac", "wav", "ogg", "mp3")


@dataclass
class _Clip:
    index: int  # position in the input shard
    key: str
    meta: dict[str, Any]
    data: bytes
    estimate: int  # samples at the tokenizer's rate, from the header (0 when unknown); for sorting


def tokenize_shards(tokenizer: AudioTokenizer, shards: str, out_dir: str | Path, batch_size: int = 16,
                    num_codebooks: int | None = None, device: str | torch.device | None = None,
                    progress: bool = True) -> dict[str, Any]:
    """Tokenize the audio shards ``shards`` (a directory, ``shards.json`` or brace pattern) into
    ``out_dir``; returns the manifest written to ``out_dir/shards.json``.

    ``num_codebooks``: codebooks kept (default: what ``tokenizer.encode`` gives). ``device``:
    where to encode (default ``cuda`` when available); the tokenizer is moved there.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    shard_set = expand_urls(shards)
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if hasattr(tokenizer, "to"):
        tokenizer.to(device)
    if hasattr(tokenizer, "eval"):
        tokenizer.eval()
    if num_codebooks is not None:
        use_codebooks(tokenizer, num_codebooks)
    target = Target(
        codec_id=str(tokenizer.codec_id), frame_rate=float(tokenizer.frame_rate),
        num_codebooks=int(num_codebooks or codebooks_in_use(tokenizer)), cardinality=int(tokenizer.cardinality),
        sample_rate=int(tokenizer.sample_rate), channels=int(tokenizer.channels),
        hop=int(getattr(tokenizer, "hop_length", 0) or round(tokenizer.sample_rate / tokenizer.frame_rate)),
    )
    if target.cardinality > 32767:
        raise ValueError(f"codebooks of {target.cardinality} entries do not fit int16 token shards")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    check_same_codec(out, target)
    alone = not _pads_safely(tokenizer)
    parts = []
    with tqdm(total=shard_set.total, unit="clip", desc="tokenize", disable=not progress) as bar:
        for url, number in zip(shard_set.urls, output_numbers(shard_set.urls)):
            name = f"tokens-{number:06d}"
            part = finished_part(out, name, sidecar_source(url))
            if part is None:
                part = _tokenize_shard(tokenizer, url, out, name, target, 1 if alone else batch_size, device, bar)
            else:
                bar.update(part["inputs"])
            parts.append(part)
    manifest = {
        "format": TOKEN_FORMAT, "name": "tokens", "codec_id": target.codec_id, "frame_rate": target.frame_rate,
        "num_codebooks": target.num_codebooks, "cardinality": target.cardinality,
        "sample_rate": target.sample_rate, "source": shards,
        "shards": [{"url": p["url"], "count": p["count"], "duration": p["duration"], "source": p["source"]}
                   for p in parts],
        "total_count": sum(p["count"] for p in parts),
        "total_duration": round(sum(p["duration"] for p in parts), 3),
        "skipped": [s for p in parts for s in p["skipped"]],
        "skip_counts": dict(sum((Counter(p["skips"]) for p in parts), Counter())),
    }
    write_json_atomic(out / MANIFEST, manifest)
    return manifest


# -- one shard ---------------------------------------------------------------------------------------


def _tokenize_shard(tokenizer: AudioTokenizer, url: str, out: Path, name: str, target: Target, batch_size: int,
                    device: torch.device, bar: tqdm) -> dict[str, Any]:
    skips = SkipCounter()
    skipped: list[dict[str, str]] = []

    def skip(reason: str, key: str | None, detail: str) -> None:
        skips.add(reason, url, key, detail)
        skipped.append({"source": f"{url}:{key}", "reason": reason})

    clips: list[_Clip] = []
    inputs = 0
    for sample in read_shard(url, skips):
        inputs += 1
        bar.update(1)
        clip = _read_clip(sample, len(clips), target.sample_rate, skip)
        if clip is not None:
            clips.append(clip)
    codes = _encode_clips(tokenizer, clips, target, batch_size, device, url, skip)

    tmp = out / f".{name}.partial"
    shutil.rmtree(tmp, ignore_errors=True)  # left by an interrupted run
    try:
        writer = TokenShardWriter(tmp, target.codec_id, target.frame_rate, target.num_codebooks, target.cardinality,
                                  target.sample_rate, name="tokens", max_count=2**62)
        writer.max_size_mb = math.inf  # one output shard per input shard, whatever its size
        for clip in clips:
            if clip.index not in codes:
                continue
            try:
                writer.write_tokens(clip.key, codes[clip.index], clip.meta)
            except ValueError as e:  # a duplicate or unusable key
                skip("other", clip.key, str(e))
        writer.close()
        written = tmp / "tokens-000000.tar"
        if not writer.shards:  # every sample skipped: still a valid (empty) shard
            tarfile.open(written, "w", format=tarfile.USTAR_FORMAT).close()
        final = out / f"{name}.tar"
        written.replace(final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    count = writer.shards[0].count if writer.shards else 0
    duration = writer.shards[0].duration if writer.shards else 0.0
    part = {
        "format": PART_FORMAT, "url": final.name, "source": sidecar_source(url), "count": count,
        "duration": round(duration, 3), "inputs": inputs, "bytes": final.stat().st_size, "codec_id": target.codec_id,
        "num_codebooks": target.num_codebooks, "skips": skips.as_dict(), "skipped": skipped,
    }
    write_json_atomic(out / f"{name}.json", part)  # after the tar: its presence marks the shard done
    return part


def _read_clip(sample: dict, index: int, sample_rate: int, skip) -> _Clip | None:
    key = sample.get("__key__") or "?"
    ext = next((e for e in AUDIO_EXTS if e in sample), None)
    if ext is None:
        skip("missing_audio", key, f"members {sorted(k for k in sample if not k.startswith('__'))}")
        return None
    meta: dict[str, Any] = {}
    if "json" in sample:
        try:
            meta = json.loads(sample["json"])
            if not isinstance(meta, dict):
                raise ValueError(f"a JSON {type(meta).__name__}, not an object")
        except (ValueError, UnicodeDecodeError) as e:
            skip("bad_json", key, str(e))
            return None
    data = sample[ext]
    try:
        with sf.SoundFile(io.BytesIO(data)) as f:
            estimate = int(f.frames * sample_rate / max(f.samplerate, 1))
    except Exception:  # decoding reports it properly below
        estimate = 0
    return _Clip(index, key, meta, data, estimate)


def _load_audio(clip: _Clip, url: str, target: Target) -> torch.Tensor:
    """``[C, T]`` at the tokenizer's rate and channels; raises :class:`AudioError` for bad audio."""
    wav, sr = decode_audio(clip.data, where=f"{url}:{clip.key}")
    audio = resample(torch.from_numpy(wav), sr, target.sample_rate)
    try:
        return to_channels(audio, target.channels)
    except ValueError as e:
        raise AudioError("other", f"{url}:{clip.key}: {e}") from None


def _encode_clips(tokenizer: AudioTokenizer, clips: list[_Clip], target: Target, batch_size: int,
                  device: torch.device, url: str, skip) -> dict[int, np.ndarray]:
    """Codes int16 ``[K, T']`` by clip index (``T' = ceil(T / hop)`` for padded clips); clips whose
    audio is bad are skipped."""
    order = sorted(clips, key=lambda c: c.estimate)
    codes: dict[int, np.ndarray] = {}
    for start in range(0, len(order), batch_size):
        batch: list[tuple[_Clip, torch.Tensor]] = []
        for clip in order[start : start + batch_size]:
            try:
                batch.append((clip, _load_audio(clip, url, target)))
            except AudioError as e:
                skip(e.reason, clip.key, str(e))
        if not batch:
            continue
        longest = max(a.shape[-1] for _, a in batch)
        wav = torch.zeros(len(batch), target.channels, longest)
        for i, (_, audio) in enumerate(batch):
            wav[i, :, : audio.shape[-1]] = audio
        with torch.inference_mode():
            out = tokenizer.encode(wav.to(device), target.num_codebooks)  # [B, K, T']
        out = out.to("cpu", torch.int16).numpy()
        for i, (clip, audio) in enumerate(batch):
            # an unpadded clip keeps every frame the tokenizer gives (EnCodec 48 kHz gives more than
            # ceil(T / hop) for its overlapping segments); a padded one is cut to its own length
            padded = audio.shape[-1] < longest
            frames = math.ceil(audio.shape[-1] / target.hop) if padded else out.shape[-1]
            if out.shape[-1] < frames or out.shape[1] != target.num_codebooks:
                raise RuntimeError(f"the tokenizer gave codes {out.shape[1:]} for {longest} samples; expected "
                                   f"{target.num_codebooks} codebooks and at least {frames} frames")
            codes[clip.index] = np.ascontiguousarray(out[i, :, :frames])
    return codes



def _pads_safely(tokenizer: AudioTokenizer) -> bool:
    """False for tokenizers that cut audio into their own segments (whose frame count is not
    ``ceil(T / hop)``, and whose segments padding would shift): EnCodec 48 kHz."""
    model = getattr(tokenizer, "model", None)
    return getattr(model, "segment_length", None) is None
