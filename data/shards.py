"""Writing webdataset tar shards: ``flac`` + ``json`` per sample, atomic, with a manifest.

A shard directory holds ``NAME-000000.tar, NAME-000001.tar, ...`` and ``shards.json``::

    {"format": "codeclm.audio/1", "name": "speech", "sample_rate": 16000,
     "shards": [{"url": "speech-000000.tar", "count": 500, "duration": 1893.2}, ...],
     "total_count": ..., "total_duration": ..., "skipped": [{"source": ..., "reason": ...}, ...]}

Each shard is written to a hidden temporary file and renamed into place when complete, so a
reader never sees a half-written shard. Tar headers are deterministic (fixed mtime, owner, mode),
so the same input gives byte-identical shards.
"""

from __future__ import annotations

import io
import json
import os
import re
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MANIFEST = "shards.json"
_KEY_BAD = re.compile(r"[^A-Za-z0-9_\-]+")


def sanitize_key(key: str) -> str:
    """A webdataset key: no dots (they split key from extension), no slashes, no spaces."""
    k = _KEY_BAD.sub("_", key).strip("_")
    if not k:
        raise ValueError(f"key {key!r} has no usable characters")
    return k


@dataclass
class ShardInfo:
    url: str
    count: int = 0
    duration: float = 0.0


@dataclass
class ShardWriter:
    """Write samples into size- and count-limited shards; call :meth:`close` (or use ``with``).

    Each sample is a key plus members ``{ext: bytes}``; the ``json`` member's ``duration`` (seconds)
    is summed into the manifest. Keys must be unique across the whole directory.
    """

    out_dir: str | Path
    name: str = "data"
    max_count: int = 1000
    max_size_mb: float = 256.0
    manifest_extra: dict[str, Any] = field(default_factory=dict)
    format: str = "codeclm.audio/1"

    def __post_init__(self) -> None:
        self.out_dir = Path(self.out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if not re.fullmatch(r"[A-Za-z0-9_\-]+", self.name):
            raise ValueError(f"shard name {self.name!r} must be letters, digits, '_' or '-'")
        self.shards: list[ShardInfo] = []
        self.skipped: list[dict[str, str]] = []
        self._keys: set[str] = set()
        self._tar: tarfile.TarFile | None = None
        self._tmp: Path | None = None
        self._size = 0

    # -- writing -------------------------------------------------------------------------------
    def write(self, key: str, members: dict[str, bytes | dict]) -> None:
        key = sanitize_key(key)
        if key in self._keys:
            raise ValueError(f"duplicate sample key {key!r} in {self.out_dir}")
        payload: dict[str, bytes] = {}
        duration = 0.0
        for ext, value in members.items():
            if isinstance(value, dict):
                duration = float(value.get("duration", 0.0))
                value = json.dumps(value, ensure_ascii=False, sort_keys=True).encode()
            payload[ext] = value
        size = sum(len(v) + 1024 for v in payload.values())
        cur = self.shards[-1] if self.shards and self._tar is not None else None
        if cur is None or cur.count >= self.max_count or (cur.count and self._size + size > self.max_size_mb * 2**20):
            self._open_next()
            cur = self.shards[-1]
        for ext in sorted(payload):
            info = tarfile.TarInfo(f"{key}.{ext}")
            info.size = len(payload[ext])
            info.mtime, info.mode, info.uid, info.gid, info.uname, info.gname = 1_700_000_000, 0o444, 0, 0, "", ""
            self._tar.addfile(info, io.BytesIO(payload[ext]))
        self._keys.add(key)
        self._size += size
        cur.count += 1
        cur.duration += duration

    def skip(self, source: str, reason: str) -> None:
        """Record an input that was not written, with why; it lands in the manifest's report."""
        self.skipped.append({"source": str(source), "reason": reason})

    def _open_next(self) -> None:
        self._close_current()
        url = f"{self.name}-{len(self.shards):06d}.tar"
        self._tmp = self.out_dir / f".{url}.tmp"
        self._tar = tarfile.open(self._tmp, "w", format=tarfile.USTAR_FORMAT)
        self._size = 0
        self.shards.append(ShardInfo(url))

    def _close_current(self) -> None:
        if self._tar is None:
            return
        self._tar.close()
        with open(self._tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(self._tmp, self.out_dir / self.shards[-1].url)
        self._tar, self._tmp = None, None

    def close(self) -> dict[str, Any]:
        """Finish the last shard and write the manifest atomically; returns the manifest."""
        self._close_current()
        manifest = {
            "format": self.format,
            "name": self.name,
            **self.manifest_extra,
            "shards": [{"url": s.url, "count": s.count, "duration": round(s.duration, 3)} for s in self.shards],
            "total_count": sum(s.count for s in self.shards),
            "total_duration": round(sum(s.duration for s in self.shards), 3),
            "skipped": self.skipped,
        }
        write_json_atomic(self.out_dir / MANIFEST, manifest)
        return manifest

    def __enter__(self) -> "ShardWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        elif self._tar is not None:  # leave no half shard behind
            self._tar.close()
            self._tmp.unlink(missing_ok=True)
            self._tar = None


def write_json_atomic(path: str | Path, obj: Any) -> None:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=1, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def read_manifest(path_or_dir: str | Path) -> dict[str, Any]:
    """Load ``shards.json`` from a shard directory (or the file itself), with a clear error."""
    p = Path(path_or_dir)
    if p.is_dir():
        p = p / MANIFEST
    if not p.exists():
        raise FileNotFoundError(f"no shard manifest at {p}: build shards with `codeclm data shard` or `codeclm data speech`")
    try:
        m = json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{p} is not valid JSON ({e}); rebuild the shards") from None
    if "shards" not in m:
        raise ValueError(f"{p} has no 'shards' list; it is not a codeclm shard manifest")
    return m
