"""Label token shards with semantic units: each sample gains ``KEY.semantic.npy`` (int16 ``[S]``).

``add_semantic_units(semantic_model, audio_shards, token_shards_dir)`` reads every token shard of
the directory, finds each sample's audio by key in the audio shards it was tokenized from (the
shard named by the sidecar's ``source`` when there is one, else any of ``audio_shards``), computes
its units with ``semantic_model.units(wav, sample_rate)`` and rewrites the shard with the units
added (replacing earlier ones). Samples whose audio is missing or unreadable keep no units and
are counted.

Each shard is rewritten to a hidden file and renamed into place; then the tokenizer's sidecar
learns the new size (so a rerun of ``codec tokenize`` keeps the shard) and ``semantic_labels.json``
records the shard's size and the model's ``semantic_id``. A rerun skips the shards whose record
matches the model and the tar, so an interrupted labelling restarts where it stopped.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from data.audio import AudioError, decode_audio
from data.shards import MANIFEST, read_manifest, write_json_atomic
from data.skips import SkipCounter
from data.tokens import TOKEN_FORMAT, npy_bytes
from data.urls import expand_urls
from data.webdataset import read_shard

AUDIO_EXTS = ("flac", "wav", "ogg", "mp3")
MARKER_FORMAT = "codeclm.semantic-labels/1"
LABELS = "semantic_labels.json"


@dataclass
class LabelSummary:
    """shards: token shards seen; labelled / kept: rewritten now / already labelled by this model;
    samples: samples given units; missing: samples whose audio was not found or not readable."""

    shards: int = 0
    labelled: int = 0
    kept: int = 0
    samples: int = 0
    missing: int = 0
    missing_keys: list[str] = field(default_factory=list)


class _AudioIndex:
    """Audio bytes by key, read shard by shard on demand from the audio shard set."""

    def __init__(self, audio_shards: str) -> None:
        self.urls = expand_urls(audio_shards).urls
        self.by_url: dict[str, dict[str, bytes]] = {}
        self.skips = SkipCounter()

    def _load(self, url: str) -> dict[str, bytes]:
        if url not in self.by_url:
            found = {}
            for sample in read_shard(url, self.skips):
                ext = next((e for e in AUDIO_EXTS if e in sample), None)
                if ext is not None and sample.get("__key__"):
                    found[sample["__key__"]] = sample[ext]
            self.by_url[url] = found
        return self.by_url[url]

    def audio(self, keys: list[str], source: str | None) -> dict[str, bytes]:
        """The audio of ``keys``: from ``source`` first, then from every other shard if some are missing."""
        out: dict[str, bytes] = {}
        ordered = sorted(self.urls, key=lambda u: _same(u, source) is False)
        for url in ordered:
            shard = self._load(url)
            out.update({k: shard[k] for k in keys if k in shard and k not in out})
            if len(out) == len(keys):
                break
        return out


def _same(url: str, source: str | None) -> bool:
    if source is None:
        return False
    if "://" in url or url.startswith("pipe:"):
        return url == source
    return str(Path(url).resolve()) == source


def _read_members(tar_path: Path) -> list[tuple[str, bytes]]:
    with tarfile.open(tar_path, "r") as tar:
        return [(m.name, tar.extractfile(m).read()) for m in tar.getmembers() if m.isfile()]


def _write_members(tar_path: Path, members: list[tuple[str, bytes]]) -> None:
    tmp = tar_path.with_name(f".{tar_path.name}.semantic.tmp")
    try:
        with tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT) as tar:
            for name, data in members:
                info = tarfile.TarInfo(name)
                info.size = len(data)
                info.mtime, info.mode, info.uid, info.gid, info.uname, info.gname = 1_700_000_000, 0o444, 0, 0, "", ""
                tar.addfile(info, io.BytesIO(data))
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, tar_path)
    finally:
        tmp.unlink(missing_ok=True)


def _label_shard(model, tar_path: Path, index: _AudioIndex, source: str | None, summary: LabelSummary) -> None:
    members = [(n, d) for n, d in _read_members(tar_path) if not n.endswith(".semantic.npy")]
    keys = list(dict.fromkeys(n.split(".", 1)[0] for n, _ in members))
    audio = index.audio(keys, source)
    out: list[tuple[str, bytes]] = []
    done: set[str] = set()
    for name, data in members:
        out.append((name, data))
        key = name.split(".", 1)[0]
        if key in done:
            continue
        done.add(key)
        units = None
        if key in audio:
            try:
                wav, sr = decode_audio(audio[key], where=f"{tar_path.name}:{key}")
                units = model.units(torch.from_numpy(wav), sr)
            except AudioError:
                units = None
        if units is None:
            summary.missing += 1
            summary.missing_keys.append(key)
            continue
        out.append((f"{key}.semantic.npy", npy_bytes(np.asarray(units.cpu(), dtype=np.int16).reshape(-1))))
        summary.samples += 1
    # keep each sample's members together (webdataset groups consecutive members by key)
    order = {k: i for i, k in enumerate(keys)}
    out.sort(key=lambda m: order[m[0].split(".", 1)[0]])
    _write_members(tar_path, out)


def add_semantic_units(semantic_model, audio_shards: str, token_shards_dir: str | Path) -> LabelSummary:
    """Add ``semantic.npy`` to every sample of the token shards in ``token_shards_dir``; see the
    module doc. ``semantic_model``: a ``data.semantic.SemanticModel`` (anything with ``units``,
    ``semantic_id``, ``n_units`` and ``frame_rate``)."""
    out = Path(token_shards_dir)
    manifest = read_manifest(out)
    if manifest.get("format") != TOKEN_FORMAT:
        raise ValueError(f"{out} holds {manifest.get('format')!r} shards, not token shards: run `codeclm codec tokenize` first")
    sem_id = str(semantic_model.semantic_id)
    index = _AudioIndex(audio_shards)
    summary = LabelSummary()
    records_path = out / LABELS
    records: dict[str, Any] = {}
    if records_path.is_file():
        try:
            records = dict(json.loads(records_path.read_text()).get("shards", {}))
        except (ValueError, UnicodeDecodeError, AttributeError):
            records = {}
    for entry in manifest["shards"]:
        tar_path = out / entry["url"]
        if not tar_path.is_file():
            raise FileNotFoundError(f"{tar_path} is listed in {out / MANIFEST} but missing: rerun `codeclm codec tokenize`")
        summary.shards += 1
        if _record_ok(records.get(entry["url"]), sem_id, tar_path):
            summary.kept += 1
            continue
        _label_shard(semantic_model, tar_path, index, entry.get("source"), summary)
        sidecar = tar_path.with_suffix(".json")
        if sidecar.is_file():
            try:
                part = json.loads(sidecar.read_text())
                part["bytes"] = tar_path.stat().st_size
                write_json_atomic(sidecar, part)
            except (ValueError, UnicodeDecodeError):
                pass  # not the tokenizer's sidecar: leave it
        records[entry["url"]] = {"semantic_id": sem_id, "bytes": tar_path.stat().st_size}
        write_json_atomic(records_path, {"format": MARKER_FORMAT, "shards": records})
        summary.labelled += 1
    manifest.update(semantic_id=sem_id, semantic_units=int(semantic_model.n_units),
                    semantic_frame_rate=float(semantic_model.frame_rate))
    write_json_atomic(out / MANIFEST, manifest)
    return summary


def _record_ok(record: Any, sem_id: str, tar_path: Path) -> bool:
    return (isinstance(record, dict) and record.get("semantic_id") == sem_id
            and record.get("bytes") == tar_path.stat().st_size)
