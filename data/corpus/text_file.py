"""The reader of a user's sentence file: one sentence a line, long lines cut at punctuation."""

from __future__ import annotations

import re
from pathlib import Path

MAX_LINE_CHARS = 300

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|(?<=[.!?][\"'\u201d)])\s+")
_CLAUSE_END = re.compile(r"(?<=[,;:])\s+")


def _pack(pieces: list[str], limit: int) -> list[str]:
    """Join consecutive pieces with spaces into chunks of at most ``limit`` characters."""
    out: list[str] = []
    for piece in pieces:
        if out and len(out[-1]) + 1 + len(piece) <= limit:
            out[-1] += " " + piece
        else:
            out.append(piece)
    return out


def split_long_line(line: str, limit: int = MAX_LINE_CHARS) -> list[str]:
    """Cut a line longer than ``limit`` at sentence punctuation, then at clause punctuation,
    then between words, into pieces of at most ``limit`` characters (a single longer word stays)."""
    if len(line) <= limit:
        return [line]
    out: list[str] = []
    for pattern in (_SENTENCE_END, _CLAUSE_END, re.compile(r"\s+")):
        pieces = pattern.split(line)
        if len(pieces) > 1:
            for chunk in _pack(pieces, limit):
                out.extend(split_long_line(chunk, limit) if len(chunk) > limit else [chunk])
            return out
    return [line]


def load_text_file(path) -> list[str]:
    """Sentences of a user's UTF-8 text file, one a line. Blank lines and lines starting with
    ``#`` are skipped, runs of whitespace become one space, and lines longer than
    :data:`MAX_LINE_CHARS` are split at sentence punctuation."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ValueError(f"{path}: cannot read the sentence file ({e.strerror or e}); check the path") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text (bad byte at offset {e.start}); "
                         "save the file as UTF-8") from None
    out: list[str] = []
    for line in text.splitlines():
        line = " ".join(line.split())
        if line and not line.startswith("#"):
            out.extend(split_long_line(line))
    if not out:
        raise ValueError(f"{path}: no sentences found (only blank lines or '#' comments); "
                         "write one sentence a line")
    return out
