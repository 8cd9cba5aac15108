"""Transcripts scored against reference texts: one text normalisation, word/character error rates.

Both evaluations use this module (``codec/`` for the intelligibility of reconstructions, ``audiolm/``
for generated speech), so a WER means the same thing in every report. Everything here is pure.

:func:`normalize` makes a recognizer's writing and a corpus' writing comparable: recognizers such as
Whisper write digits and punctuation ("I have 23 apples."), while espeak references are words
("I have twenty three apples"). It lowercases, turns numbers into words, splits hyphenated words,
drops punctuation (apostrophes inside a word stay, so contractions are left as written) and
collapses whitespace.

A recognizer is anything with a ``name`` that maps mono float32 audio at :data:`ASR_RATE` to the
words it hears (:class:`Recognizer`); the models live in ``audiolm.evaluation``, and a caller hands
one to whichever evaluation needs it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

import numpy as np

ASR_RATE = 16000


class Recognizer(Protocol):
    """``name`` says which judge produced a WER; calling it transcribes mono ``wav [T]`` at 16 kHz."""

    name: str

    def __call__(self, wav: np.ndarray) -> str: ...


_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
         "sixteen seventeen eighteen nineteen").split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = ((10**9, "billion"), (10**6, "million"), (1000, "thousand"))
_ORDINAL = {"one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
            "nine": "ninth", "twelve": "twelfth"}


def _below_thousand(n: int) -> list[str]:
    words: list[str] = []
    if n >= 100:
        words += [_ONES[n // 100], "hundred"]
        n %= 100
        if n == 0:
            return words
    if n < 20:
        return words + [_ONES[n]]
    return words + [_TENS[n // 10]] + ([_ONES[n % 10]] if n % 10 else [])


def number_words(n: int) -> str:
    """A non-negative integer as English words ("forty two", "one thousand two hundred five");
    past 999,999,999,999 the digits are read one by one."""
    if n < 0:
        raise ValueError(f"number_words takes n >= 0, got {n}")
    if n >= 10**12:
        return " ".join(_ONES[int(d)] for d in str(n))
    if n < 1000:
        return " ".join(_below_thousand(n))
    words: list[str] = []
    for scale, name in _SCALES:
        if n >= scale:
            words += _below_thousand(n // scale) + [name]
            n %= scale
    return " ".join(words + (_below_thousand(n) if n else []))


def year_words(n: int) -> str:
    """1100-1999 and 2010-2099 the way years are said: "nineteen ninety", "nineteen oh five",
    "nineteen hundred", "twenty twenty four"."""
    hi, lo = divmod(n, 100)
    if lo == 0:
        return f"{number_words(hi)} hundred"
    return f"{number_words(hi)} {'oh ' if lo < 10 else ''}{number_words(lo)}"


def ordinal_words(n: int) -> str:
    """ "twenty first", "twelfth", "one hundredth"."""
    *head, last = number_words(n).split()
    if last in _ORDINAL:
        last = _ORDINAL[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return " ".join([*head, last])


def _is_year(digits: str) -> bool:
    n = int(digits)
    return len(digits) == 4 and (1100 <= n <= 1999 or 2010 <= n <= 2099)


def _integer(digits: str, grouped: bool) -> str:
    """Words of a digit string: leading zeros ("007") are read digit by digit, four plain digits
    in the years' ranges as a year, anything else as a cardinal."""
    if len(digits) > 1 and digits[0] == "0":
        return " ".join(_ONES[int(d)] for d in digits)
    if not grouped and _is_year(digits):
        return year_words(int(digits))
    return number_words(int(digits))


_NUMBER = re.compile(r"(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d+))?(?:(st|nd|rd|th)\b)?(%)?", re.IGNORECASE)


def _number_match(m: re.Match) -> str:
    whole, frac, ordinal, percent = m.groups()
    grouped = "," in whole
    digits = whole.replace(",", "")
    if ordinal and frac is None:
        words = ordinal_words(int(digits))
    else:
        words = _integer(digits, grouped)
        if ordinal:  # "1.5th" is no ordinal: keep the letters as a word
            words = f"{words} point {' '.join(_ONES[int(d)] for d in frac)} {ordinal}"
        elif frac is not None:
            words += " point " + " ".join(_ONES[int(d)] for d in frac)
    words += " percent" if percent else ""
    s, i, j = m.string, m.start(), m.end()  # keep apart from letters around it ("mp3" -> "mp three")
    return (" " if i and s[i - 1].isalpha() else "") + words + (" " if j < len(s) and s[j].isalpha() else "")


_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'"})
_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*")


def normalize(text: str) -> str:
    """Lowercase words separated by single spaces, for scoring.

    - numbers become words: "42" -> "forty two", "1,500" -> "one thousand five hundred",
      "3.5" -> "three point five", "21st" -> "twenty first", "50%" -> "fifty percent",
      four digits in 1100-1999 or 2010-2099 are read as a year ("1990" -> "nineteen ninety");
    - hyphens, slashes and every other punctuation mark separate words ("e-mail" -> "e mail");
    - an apostrophe inside a word stays ("it's", "o'clock": contractions are left as written),
      one at a word's edge goes ("'tis" -> "tis", "dogs'" -> "dogs"); curly apostrophes count.
    """
    text = _NUMBER.sub(_number_match, text.translate(_APOSTROPHES))
    return " ".join(_WORD.findall(text.lower()))


def edit_distance(ref: list, hyp: list) -> int:
    """Levenshtein distance (substitutions, insertions, deletions all cost 1)."""
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1]


@dataclass
class ErrorCounts:
    """Summed edits and reference lengths over utterances; ``wer``/``cer`` are their ratios.

    Scores are corpus-level: total edits over total reference words (characters for CER, spaces
    excluded), the way ASR papers report them, both texts passed through :func:`normalize`."""

    word_edits: int = 0
    words: int = 0
    char_edits: int = 0
    chars: int = 0
    utterances: int = 0

    def add(self, reference: str, hypothesis: str) -> float | None:
        """Count one utterance; returns its own WER (None for an empty reference)."""
        ref, hyp = normalize(reference), normalize(hypothesis)
        edits = edit_distance(ref.split(), hyp.split())
        self.word_edits += edits
        self.words += len(ref.split())
        self.char_edits += edit_distance(list(ref.replace(" ", "")), list(hyp.replace(" ", "")))
        self.chars += len(ref.replace(" ", ""))
        self.utterances += 1
        return edits / len(ref.split()) if ref else None

    @property
    def wer(self) -> float | None:
        return self.word_edits / self.words if self.words else None

    @property
    def cer(self) -> float | None:
        return self.char_edits / self.chars if self.chars else None

    def as_dict(self) -> dict:
        return {"wer": self.wer, "cer": self.cer, "word_edits": self.word_edits, "words": self.words,
                "utterances": self.utterances}
