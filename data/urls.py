"""Shard URL specs: a shard directory, a ``shards.json``, brace patterns, ``pipe:`` commands.

Several specs join with ``::`` (webdataset's separator). Sample counts come from the manifest
when one is found; ``pipe:`` and remote URLs need ``epoch_samples`` given explicitly.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import braceexpand

from data.shards import MANIFEST, read_manifest


@dataclass
class ShardSet:
    urls: list[str]
    counts: list[int | None]  # samples per shard, None where unknown

    @property
    def total(self) -> int | None:
        return None if any(c is None for c in self.counts) else sum(self.counts)


def _is_local(url: str) -> bool:
    return "://" not in url and not url.startswith("pipe:")


def expand_urls(spec: str) -> ShardSet:
    """Resolve a shard spec to URLs and, where a manifest says, their sample counts."""
    if not spec or not spec.strip():
        raise ValueError("empty shard spec: give a shard directory, a shards.json, or a brace pattern of .tar URLs")
    urls: list[str] = []
    counts: list[int | None] = []
    for part in spec.split("::"):
        part = part.strip()
        p = Path(part)
        if _is_local(part) and (p.is_dir() or p.name == MANIFEST):
            folder = p if p.is_dir() else p.parent
            manifest = read_manifest(folder)
            for s in manifest["shards"]:
                urls.append(str(folder / s["url"]))
                counts.append(int(s["count"]))
            continue
        expanded = list(braceexpand.braceexpand(part))
        known: dict[str, int] = {}
        if _is_local(part):
            for folder in {Path(u).parent for u in expanded}:
                if (folder / MANIFEST).exists():
                    m = read_manifest(folder)
                    known.update({str(folder / s["url"]): int(s["count"]) for s in m["shards"]})
            missing = [u for u in expanded if not Path(u).exists()]
            if missing:
                raise FileNotFoundError(f"shard {missing[0]} does not exist ({len(missing)} of {len(expanded)} missing in {part!r})")
        for u in expanded:
            urls.append(u)
            counts.append(known.get(str(Path(u))) if _is_local(u) else None)
    if not urls:
        raise ValueError(f"shard spec {spec!r} names no shards")
    return ShardSet(urls, counts)
