"""Recognize the dataset layouts people bring and list their audio items.

:func:`discover` takes a folder or a jsonl manifest and returns a :class:`Discovery`: the layout's
name, one :class:`SourceItem` per audio file (path, unique shard key, transcript, speaker, extra
fields) and the problems met on the way (a transcript line whose audio is missing, audio without
the transcript the layout promises, a bad manifest line). Problems are reported, never fatal.

Layouts, tried in this order:

``jsonl``        a manifest file, one JSON object a line: ``audio`` (or ``path``, relative to the
                 manifest's folder), optional ``text`` and ``speaker``; other fields go to ``extra``.
``librispeech``  ``SPK/CHAPTER/SPK-CHAPTER.trans.txt`` ("UTTID TEXT" lines) + ``UTTID.flac``.
``libritts``     ``SPK/CHAPTER/UTTID.wav`` + ``UTTID.normalized.txt`` (else ``.original.txt``).
``vctk``         ``txt/pXXX/pXXX_NNN.txt`` + ``wav48/pXXX/pXXX_NNN.wav`` or
                 ``wav48_silence_trimmed/pXXX/pXXX_NNN_mic1.flac`` (one microphone, mic1 by default).
``ljspeech``     ``metadata.csv`` (``id|text|normalized text``) + ``wavs/ID.wav``; speaker "LJ".
``commonvoice``  ``validated.tsv`` (else train/dev/test.tsv) + ``clips/NAME.mp3``.
``plain``        any audio file below the folder; transcript from a same-stem ``.txt`` beside it;
                 speaker from the parent folder when the file sits in a subfolder.

Keys come from the path relative to the input without its extension, made webdataset-safe; keys
that collide get a suffix from a hash of the path, so the result never depends on the machine
(:mod:`data.layout_keys`).
Folder layouts list their items sorted by relative path; a manifest keeps its own line order.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from data.layout_keys import unique_keys

AUDIO_EXTS = (".flac", ".wav", ".ogg", ".mp3", ".aiff", ".aif")
# Columns of a Common Voice tsv that are not worth keeping per sample.
_CV_DROP = {None, "client_id", "path", "sentence", "up_votes", "down_votes"}
_CV_SPLITS = ("train", "dev", "test")


@dataclass
class SourceItem:
    path: Path
    key: str
    text: str | None = None
    speaker: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Discovery:
    layout: str
    items: list[SourceItem]
    problems: list[tuple[str, str]]  # (source, reason), sources relative to the input


class _Tree:
    """The files below a folder, as sorted posix paths relative to it (hidden entries left out)."""

    def __init__(self, root: Path):
        self.root = root
        files: list[str] = []
        seen: set[str] = set()
        for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
            real = os.path.realpath(dirpath)
            if real in seen:  # a symlink loop
                dirnames[:] = []
                continue
            seen.add(real)
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            rel = Path(dirpath).relative_to(root).as_posix()
            prefix = "" if rel == "." else rel + "/"
            files += [prefix + f for f in filenames if not f.startswith(".")]
        self.files = sorted(files)
        self.set = set(files)

    def audio(self, prefix: str = "") -> list[str]:
        return [f for f in self.files if f.startswith(prefix) and f.lower().endswith(AUDIO_EXTS)]

    def find(self, stem: str, exts: tuple[str, ...] = AUDIO_EXTS) -> str | None:
        """The first ``stem + ext`` present, trying ``exts`` in order."""
        return next((stem + e for e in exts if stem + e in self.set), None)


def _read_text(path: Path) -> str:
    return path.read_text(encoding="utf-8-sig", errors="replace")


def _stem(rel: str) -> str:
    return rel.rsplit(".", 1)[0] if "." in rel.rsplit("/", 1)[-1] else rel


def _parent(rel: str) -> str:
    return rel.rsplit("/", 1)[0] + "/" if "/" in rel else ""


def _item(tree: _Tree, rel: str, text: str | None, speaker: str | None, **extra: Any) -> SourceItem:
    return SourceItem(tree.root / rel, _stem(rel), text, speaker, extra)


def _orphans(audio: list[str], used: set[str]) -> list[tuple[str, str]]:
    return [(a, "audio file has no transcript") for a in audio if a not in used]


# -- folder layouts: each returns (items, problems), or None when the folder is not that layout --
_Found = Optional[tuple[list[SourceItem], list[tuple[str, str]]]]


def _librispeech(tree: _Tree, **_: Any) -> _Found:
    trans = []
    for rel in tree.files:
        if rel.endswith(".trans.txt"):
            p = tree.root / rel
            if p.name == f"{p.parent.parent.name}-{p.parent.name}.trans.txt":
                trans.append(rel)
    if not trans:
        return None
    items, problems, used = [], [], set()
    for rel in trans:
        folder, (spk, chapter) = _parent(rel), rel.rsplit("/", 1)[-1][: -len(".trans.txt")].split("-", 1)
        for n, line in enumerate(_read_text(tree.root / rel).splitlines(), 1):
            if not line.strip():
                continue
            utt, _, text = line.strip().partition(" ")
            audio = tree.find(folder + utt)
            if audio is None:
                problems.append((f"{rel}:{n}", f"no audio file {folder}{utt}.flac"))
                continue
            used.add(audio)
            items.append(_item(tree, audio, text.strip(), spk, chapter=chapter))
    folders = {_parent(t) for t in trans}
    problems += _orphans([a for a in tree.audio() if _parent(a) in folders], used)
    return items, problems


def _libritts(tree: _Tree, **_: Any) -> _Found:
    suffixes = (".normalized.txt", ".original.txt")
    texts = [f for f in tree.files if f.endswith(suffixes)]
    if not texts:
        return None
    items, problems, used = [], [], set()
    for audio in tree.audio():
        txt = tree.find(_stem(audio), suffixes)
        if txt is None:
            problems.append((audio, "audio file has no .normalized.txt or .original.txt transcript"))
            continue
        used.add(_stem(audio))
        folder = (tree.root / audio).parent
        text = _read_text(tree.root / txt).strip()
        items.append(_item(tree, audio, text, folder.parent.name, chapter=folder.name))
    for txt in texts:
        stem = txt[: -len(next(s for s in suffixes if txt.endswith(s)))]
        if stem not in used and not (txt.endswith(".original.txt") and stem + ".normalized.txt" in tree.set):
            problems.append((txt, "transcript has no audio file"))
    return items, problems


def _vctk(tree: _Tree, vctk_mic: str | None = "mic1", **_: Any) -> _Found:
    def has(prefix: str) -> bool:
        return any(f.startswith(prefix) for f in tree.files)

    trimmed = has("wav48_silence_trimmed/")
    if not has("txt/") or not (trimmed or has("wav48/")):
        return None
    items, problems, used = [], [], set()
    for audio in tree.audio("wav48_silence_trimmed/" if trimmed else "wav48/"):
        utt, extra = audio.rsplit("/", 1)[-1].rsplit(".", 1)[0], {}
        if trimmed:
            utt, _, mic = utt.rpartition("_")
            if vctk_mic is not None and mic != vctk_mic:
                continue
            extra["mic"] = mic
        spk = _parent(audio).rstrip("/").rsplit("/", 1)[-1]
        txt = f"txt/{spk}/{utt}.txt"
        if txt not in tree.set:
            problems.append((audio, f"audio file has no transcript {txt}"))
            continue
        used.add(txt)
        items.append(_item(tree, audio, _read_text(tree.root / txt).strip(), spk, **extra))
    texts = [t for t in tree.files if t.startswith("txt/") and t.endswith(".txt")]
    problems += [(t, "transcript has no audio file") for t in texts if t not in used]
    return items, problems


def _ljspeech(tree: _Tree, **_: Any) -> _Found:
    if "metadata.csv" not in tree.set or not tree.audio("wavs/"):
        return None
    items, problems, used = [], [], set()
    with open(tree.root / "metadata.csv", encoding="utf-8-sig", errors="replace", newline="") as f:
        for n, row in enumerate(csv.reader(f, delimiter="|", quoting=csv.QUOTE_NONE), 1):
            if not row or not "".join(row).strip():
                continue
            if len(row) < 2:
                problems.append((f"metadata.csv:{n}", "line has no '|' separated transcript"))
                continue
            audio = tree.find(f"wavs/{row[0].strip()}")
            if audio is None:
                problems.append((f"metadata.csv:{n}", f"no audio file wavs/{row[0].strip()}.wav"))
                continue
            used.add(audio)
            text = row[2] if len(row) > 2 and row[2].strip() else row[1]
            items.append(_item(tree, audio, text.strip(), "LJ"))
    return items, problems + _orphans(tree.audio("wavs/"), used)


def _commonvoice(tree: _Tree, **_: Any) -> _Found:
    tsvs = [t for t in ("validated.tsv",) if t in tree.set] or [f"{s}.tsv" for s in _CV_SPLITS if f"{s}.tsv" in tree.set]
    if not tsvs or not tree.audio("clips/"):
        return None
    items, problems, used = [], [], set()
    for tsv in tsvs:
        with open(tree.root / tsv, encoding="utf-8-sig", errors="replace", newline="") as f:
            reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
            if not {"client_id", "path", "sentence"} <= set(reader.fieldnames or ()):
                problems.append((tsv, "header lacks client_id, path and sentence columns"))
                continue
            for row in reader:
                where, name = f"{tsv}:{reader.line_num}", (row.get("path") or "").strip()
                audio = tree.find(f"clips/{name}", ("",) + (() if "." in name else (".mp3",))) if name else None
                if audio is None:
                    problems.append((where, f"no audio file clips/{name}"))
                    continue
                if audio in used:
                    problems.append((where, f"clips/{name} is listed more than once"))
                    continue
                used.add(audio)
                spk = "cv_" + hashlib.sha1((row["client_id"] or "").encode()).hexdigest()[:12]
                extra = {k: v.strip() for k, v in row.items() if k not in _CV_DROP and isinstance(v, str) and v.strip()}
                if tsv != "validated.tsv":
                    extra["split"] = tsv[:-4]
                items.append(_item(tree, audio, (row["sentence"] or "").strip(), spk, **extra))
    return items, problems


def _plain(tree: _Tree, **_: Any) -> _Found:
    items = []
    for audio in tree.audio():
        txt = _stem(audio) + ".txt"
        text = _read_text(tree.root / txt).strip() if txt in tree.set else None
        speaker = _parent(audio).rstrip("/").rsplit("/", 1)[-1] or None
        items.append(_item(tree, audio, text, speaker))
    return items, []


_FOLDER_LAYOUTS: list[tuple[str, Callable[..., Any]]] = [
    ("librispeech", _librispeech),
    ("libritts", _libritts),
    ("vctk", _vctk),
    ("ljspeech", _ljspeech),
    ("commonvoice", _commonvoice),
    ("plain", _plain),
]


def _jsonl(manifest: Path) -> tuple[list[SourceItem], list[tuple[str, str]]]:
    base, items, problems = manifest.parent, [], []
    for n, line in enumerate(_read_text(manifest).splitlines(), 1):
        if not line.strip():
            continue
        where = f"{manifest.name}:{n}"
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            problems.append((where, f"not valid JSON ({e.msg})"))
            continue
        audio = rec.get("audio", rec.get("path")) if isinstance(rec, dict) else None
        if not isinstance(audio, str) or not audio:
            problems.append((where, "line is not a JSON object with an 'audio' (or 'path') string"))
            continue
        path = (base / audio) if not os.path.isabs(audio) else Path(audio)
        if not path.is_file():
            problems.append((where, f"no audio file {audio}"))
            continue
        text, spk = (None if rec.get(k) is None else str(rec[k]) for k in ("text", "speaker"))
        extra = {k: v for k, v in rec.items() if k not in ("audio", "path", "text", "speaker")}
        items.append(SourceItem(path, _stem(Path(os.path.relpath(path, base)).as_posix()), text, spk, extra))
    return items, problems


def _assign_keys(items: list[SourceItem]) -> None:
    """Turn each item's relative stem into a unique webdataset key (see :mod:`data.layout_keys`)."""
    for it, key in zip(items, unique_keys([it.key for it in items])):
        it.key = key


def discover(input: str | Path, *, vctk_mic: str | None = "mic1") -> Discovery:
    """Recognize the layout of a folder or jsonl manifest and list its audio items.

    ``vctk_mic`` picks the microphone of VCTK's ``wav48_silence_trimmed`` ("mic1", "mic2", or
    None for both). Raises FileNotFoundError when ``input`` does not exist.
    """
    root = Path(input).expanduser()
    if not root.exists():
        raise FileNotFoundError(f"{root} does not exist: pass a dataset folder or a jsonl manifest")
    if root.is_file():
        if root.suffix.lower() in AUDIO_EXTS:
            raise ValueError(f"{root} is a single audio file: pass the folder that holds it, or a jsonl manifest")
        items, problems = _jsonl(root)
        _assign_keys(items)
        return Discovery("jsonl", items, problems)
    tree = _Tree(root)
    for name, find in _FOLDER_LAYOUTS:
        found = find(tree, vctk_mic=vctk_mic)
        if found is not None:
            items, problems = found
            items.sort(key=lambda it: it.key)  # still the relative stem here
            _assign_keys(items)
            return Discovery(name, items, problems)
    raise AssertionError("unreachable: the plain layout accepts any folder")
