"""Text normalisation for WER (a recognizer's digits and punctuation against a corpus' words) and
the corpus-level WER/CER arithmetic."""

from __future__ import annotations

import pytest

from data.transcripts import ErrorCounts, edit_distance, normalize, number_words, ordinal_words, year_words


@pytest.mark.parametrize("text, expected", [
    ("Hello, World!  It's 5 o'clock.", "hello world it's five o'clock"),  # case, punctuation, inner apostrophes
    ("I have 23 apples and 42 oranges.", "i have twenty three apples and forty two oranges"),
    ("Don't, can't; WON'T!", "don't can't won't"),  # contractions stay as written
    ("‘Tis the dogs’ toys, isn’t it?", "tis the dogs toys isn't it"),  # curly quotes; edge apostrophes go
    ("a well-known e-mail, twenty-three", "a well known e mail twenty three"),  # hyphens split words
    ("  tabs\tand\nnew   lines ", "tabs and new lines"),
    ("\"Quoted\" (parenthesised) [bracketed] — dashed… ellipsis", "quoted parenthesised bracketed dashed ellipsis"),
    ("U.S. miles/hour & co.", "u s miles hour co"),
    ("0 7 10 13 99 100 101", "zero seven ten thirteen ninety nine one hundred one hundred one"),
    ("9999 and 1,500 and 2,000,000", "nine thousand nine hundred ninety nine and one thousand five hundred and two million"),
    ("In 1990, 1905 and 1900; in 2024 and 2005", "in nineteen ninety nineteen oh five and nineteen hundred in "
                                                  "twenty twenty four and two thousand five"),
    ("3.5 kg, 50% off, 007", "three point five kg fifty percent off zero zero seven"),
    ("the 1st, 2nd, 3rd, 12th and 21st", "the first second third twelfth and twenty first"),
    ("mp3 and 4th-grade", "mp three and fourth grade"),
    ("Café naïve", "café naïve"),
    ("", ""),
    ("?!.", ""),
])
def test_normalize(text, expected):
    assert normalize(text) == expected


def test_numbers_in_words():
    assert [number_words(n) for n in (0, 15, 40, 42, 110, 1000, 1234, 9999)] == [
        "zero", "fifteen", "forty", "forty two", "one hundred ten", "one thousand",
        "one thousand two hundred thirty four", "nine thousand nine hundred ninety nine"]
    assert number_words(1_002_003) == "one million two thousand three"
    assert year_words(1990) == "nineteen ninety" and year_words(2009) == "twenty oh nine"
    assert [ordinal_words(n) for n in (1, 5, 20, 100, 23)] == ["first", "fifth", "twentieth", "one hundredth",
                                                                "twenty third"]
    with pytest.raises(ValueError):
        number_words(-1)


def test_a_recognizers_writing_scores_like_the_corpus_words():
    e = ErrorCounts()
    assert e.add("I have twenty three apples, and forty-two oranges", "I have 23 apples and 42 oranges.") == 0.0
    assert e.add("it was nineteen ninety", "It was 1990!") == 0.0
    assert e.wer == 0.0 and e.cer == 0.0


def test_wer_and_cer_are_corpus_level_edit_rates():
    assert edit_distance("a b c d".split(), "a x c".split()) == 2  # one substitution, one deletion
    assert edit_distance([], list("abc")) == 3 and edit_distance(list("kitten"), list("sitting")) == 3
    e = ErrorCounts()
    assert e.add("The cat sat.", "the cat sat") == 0.0
    assert e.add("a b c d", "a x c") == 0.5
    assert (e.word_edits, e.words, e.utterances) == (2, 7, 2)
    assert e.wer == pytest.approx(2 / 7)  # total edits over total words, not a mean of per-utterance rates
    assert e.cer == pytest.approx((0 + 2) / (9 + 4))
    assert e.as_dict() == {"wer": e.wer, "cer": e.cer, "word_edits": 2, "words": 7, "utterances": 2}
    empty = ErrorCounts()
    assert empty.add("two words", "") == 1.0  # silence: every word deleted
    assert empty.wer == 1.0 and ErrorCounts().wer is None
    inserted = ErrorCounts()
    inserted.add("one", "one two three")  # insertions can take WER past 100%
    assert inserted.wer == 2.0
    assert ErrorCounts().add("", "words") is None  # no reference words: no rate
