"""Restart bookkeeping of :func:`codec.tokenize.tokenize_shards`: output names and sidecars.

Input shard ``i`` becomes ``tokens-{i:06d}.tar``, where ``i`` is the number that ends the input
shard's name when those numbers are distinct, else its position (:func:`output_numbers`). A
sidecar ``tokens-{i:06d}.json`` (format :data:`PART_FORMAT`) beside each finished shard names its
source (:func:`sidecar_source`) and byte size; :func:`finished_part` keeps a shard whose tar and
sidecar agree. :func:`check_same_codec` refuses a directory of another codec's tokens, another
number of codebooks, or shards that are not tokens.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from data.shards import MANIFEST
from data.tokens import TOKEN_FORMAT

PART_FORMAT = "codeclm.tokens-part/1"
_SHARD_NUMBER = re.compile(r"(\d+)\.tar(?![\w.])")


@dataclass(frozen=True)
class Target:
    """What every output shard of one run shares."""

    codec_id: str
    frame_rate: float
    num_codebooks: int
    cardinality: int
    sample_rate: int
    channels: int
    hop: int


def finished_part(out: Path, name: str, url: str) -> dict[str, Any] | None:
    """The sidecar of a finished output shard for input ``url``, or None if it must be (re)done."""
    side, tar = out / f"{name}.json", out / f"{name}.tar"
    if not (side.is_file() and tar.is_file()):
        return None
    try:
        part = json.loads(side.read_text())
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(part, dict) or part.get("format") != PART_FORMAT:
        return None
    if part.get("source") != url or part.get("bytes") != tar.stat().st_size:
        return None
    return part


def check_same_codec(out: Path, target: Target) -> None:
    """Refuse to add to a directory of other shards, another codec's tokens, or another ``K``."""
    found: list[tuple[Path, dict]] = []
    manifest = out / MANIFEST
    if manifest.is_file():
        try:
            m = json.loads(manifest.read_text())
        except (ValueError, UnicodeDecodeError):
            raise ValueError(f"{manifest} is not valid JSON: delete it or choose another --out directory") from None
        if not isinstance(m, dict) or m.get("format") != TOKEN_FORMAT:
            fmt = m.get("format") if isinstance(m, dict) else None
            raise ValueError(f"{out} already holds {fmt!r} shards, not token shards: choose another --out directory")
        found.append((manifest, m))
    for side in sorted(out.glob("tokens-*.json")):
        try:
            part = json.loads(side.read_text())
        except (ValueError, UnicodeDecodeError):
            continue  # an unreadable sidecar only means its shard is redone
        if isinstance(part, dict) and part.get("format") == PART_FORMAT:
            found.append((side, part))
    for path, rec in found:
        if rec.get("codec_id") != target.codec_id:
            raise ValueError(f"{out} holds tokens of codec {rec.get('codec_id')} (see {path.name}), not of this codec "
                             f"{target.codec_id}: write to a new --out directory, or delete {out} to start over")
        if rec.get("num_codebooks") != target.num_codebooks:
            raise ValueError(f"{out} holds tokens of {rec.get('num_codebooks')} codebooks (see {path.name}), not "
                             f"{target.num_codebooks}: write to a new --out directory, or delete {out} to start over")


def output_numbers(urls: list[str]) -> list[int]:
    """The number ending each input shard's name when all are distinct, else the positions."""
    found = [_SHARD_NUMBER.findall(u) for u in urls]
    numbers = [int(f[-1]) for f in found if f]
    if len(numbers) == len(urls) and len(set(numbers)) == len(numbers):
        return numbers
    return list(range(len(urls)))


def sidecar_source(url: str) -> str:
    """How a sidecar names its input: local paths absolute, so a rerun may spell them differently."""
    if "://" in url or url.startswith("pipe:"):
        return url
    return str(Path(url).resolve())
