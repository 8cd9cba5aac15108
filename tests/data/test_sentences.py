"""Built-in English sentences (grammar, variety, lengths) and the reader of a user's sentence file."""

from __future__ import annotations

import re
import time

import pytest

from data.corpus import vocabulary as V
from data.corpus.sentences import MAX_LINE_CHARS, SentenceGenerator, load_text_file, split_long_line

N = 10_000


@pytest.fixture(scope="module")
def corpus() -> list[str]:
    start = time.perf_counter()
    out = SentenceGenerator(seed=0).sentences(N)
    elapsed = time.perf_counter() - start
    assert elapsed < 5.0, f"{N} sentences took {elapsed:.2f} s"
    return out


@pytest.fixture(scope="module")
def tokens(corpus) -> list[list[str]]:
    return [re.findall(r"[a-z']+", s.lower()) for s in corpus]


def test_same_seed_same_sentences_other_seed_others():
    assert SentenceGenerator(3).sentences(300) == SentenceGenerator(3).sentences(300)
    assert [SentenceGenerator(5).sample() for _ in range(3)] != SentenceGenerator(6).sentences(3)
    a, b = set(SentenceGenerator(3).sentences(300)), set(SentenceGenerator(4).sentences(300))
    assert len(a & b) < 30


def test_sample_returns_one_sentence():
    gen = SentenceGenerator(1)
    s = gen.sample()
    assert isinstance(s, str) and s and s != gen.sample()


def test_distinct_sentences_and_large_vocabulary(corpus, tokens):
    assert len(corpus) == N
    assert len(set(corpus)) >= 9_500
    vocabulary = {w for sentence in tokens for w in sentence}
    assert len(vocabulary) >= 1_500


def test_lengths_spread_over_short_medium_and_long(corpus):
    counts = [len(s.split()) for s in corpus]
    assert min(counts) >= 2 and max(counts) <= 30
    short = sum(n <= 5 for n in counts) / N
    medium = sum(6 <= n <= 15 for n in counts) / N
    long = sum(n > 15 for n in counts) / N
    assert min(short, medium, long) >= 0.15, (short, medium, long)
    assert sum(n >= 25 for n in counts) > 100  # the longest band reaches ~10 s of speech


def test_capital_start_final_punctuation_and_plain_characters(corpus):
    for s in corpus:
        core = s.strip('"')
        assert core[0].isupper(), s
        assert core[-1] in ".?!" or (s.endswith('"') and core[-1] in ".?!"), s
        assert re.fullmatch(r"[A-Za-z ,.?!'\"]+", s), s
        assert "  " not in s and " ," not in s and " ." not in s, s
        assert s.count('"') in (0, 2), s


# Words whose first letter misleads about their first sound.
VOWEL_SOUND = ("hour", "honest", "honor", "heir")
CONSONANT_SOUND = ("unique", "unicorn", "uniform", "union", "unit", "univers", "use", "usual", "euro", "one")


def expected_article(word: str) -> str:
    if word.startswith(VOWEL_SOUND):
        return "an"
    if word.startswith(CONSONANT_SOUND):
        return "a"
    return "an" if word[0] in "aeiou" else "a"


def test_a_and_an_follow_the_sound_of_the_next_word(tokens):
    checked = 0
    for sentence in tokens:
        for art, nxt in zip(sentence, sentence[1:]):
            if art in ("a", "an"):
                assert art == expected_article(nxt), " ".join(sentence)
                checked += 1
    assert checked > 2_000


@pytest.mark.parametrize("word, art", [
    ("hour", "an"), ("honest", "an"), ("university", "a"), ("useful", "a"), ("unusual", "an"),
    ("umbrella", "an"), ("eleven", "an"), ("european", "a"), ("one", "a"), ("cat", "a"), ("owl", "an"),
])
def test_article_exceptions(word, art):
    assert V.article(word) == art


WRONG_AGREEMENT = {
    ("i", "is"), ("i", "are"), ("i", "were"), ("i", "has"), ("i", "does"), ("i", "doesn't"),
    ("you", "is"), ("you", "was"), ("you", "has"), ("we", "is"), ("we", "was"), ("we", "has"),
    ("they", "is"), ("they", "was"), ("they", "has"), ("they", "does"), ("they", "doesn't"),
    ("he", "are"), ("he", "were"), ("he", "have"), ("he", "do"), ("he", "don't"),
    ("she", "are"), ("she", "were"), ("she", "have"), ("she", "do"), ("she", "don't"),
    ("it", "are"), ("it", "were"), ("it", "have"), ("it", "don't"),
}
# "you" and "it" may end an object phrase, and "have"/"do" follow a subject after an auxiliary
# ("did she have"): check those pairs only where a clause starts.
CLAUSE_START = {"and", "but", "so", "because", "although", "while", "when", "if", "that", "before", "after"}
BASE_FORM_AFTER = {"do", "does", "did", "don't", "doesn't", "didn't", "will", "won't", "can", "can't",
                   "cannot", "could", "couldn't", "should", "shouldn't", "would", "wouldn't", "might",
                   "must"}  # not "may": the month looks the same in lower case
SKIPPABLE = {"not", "never", "ever"} | set(V.FREQUENCY)
PAST_ONLY = {form for base, forms in V.IRREGULAR.items() for form in forms if form != base}


def test_subjects_agree_and_auxiliaries_take_base_forms(tokens):
    seen_after_aux = 0
    for sentence in tokens:
        text = " ".join(sentence)
        for i, (a, b) in enumerate(zip(sentence, sentence[1:])):
            ambiguous = a in ("you", "it") or b in ("have", "do")
            if not ambiguous or i == 0 or sentence[i - 1] in CLAUSE_START:
                assert (a, b) not in WRONG_AGREEMENT, text
        for i, w in enumerate(sentence):
            if w in BASE_FORM_AFTER:
                j = i + 1
                while j < len(sentence) and sentence[j] in SKIPPABLE:
                    j += 1
                if j < len(sentence):
                    seen_after_aux += 1
                    assert sentence[j] not in PAST_ONLY or sentence[j] in ("been",), text
    assert seen_after_aux > 2_000


def test_constructions_of_many_kinds_occur(corpus):
    text = " ".join(corpus)
    assert sum(s.endswith("?") for s in corpus) > 0.08 * N
    for marker in (" because ", " although ", " while ", " when ", " but ", " so ", " who ", " that ",
                   "Don't ", "Let's ", "Where ", "What ", "Why ", "Who ", "Did ", "Will ", "Has ", "Is there ",
                   "There ", "o'clock", "half past", " ago", "next ", " twenty ", " hundred ", '"', "n't "):
        assert marker in text, marker
    for group in (V.DAYS, V.MONTHS, V.CITIES[:20], V.FEMALE_NAMES[:20]):
        assert any(w in text for w in group)


def test_inflection_rules():
    assert [V.third_person(v) for v in ("watch", "go", "coo", "try", "play", "have", "wake up")] == [
        "watches", "goes", "coos", "tries", "plays", "has", "wakes up"]
    assert [V.past(v) for v in ("stop", "try", "bake", "play", "buy", "give up")] == [
        "stopped", "tried", "baked", "played", "bought", "gave up"]
    assert [V.participle(v) for v in ("write", "swim", "visit")] == ["written", "swum", "visited"]
    assert [V.gerund(v) for v in ("make", "run", "see", "tie", "visit")] == [
        "making", "running", "seeing", "tying", "visiting"]
    assert [V.plural(n) for n in ("box", "city", "day", "dish")] == ["boxes", "cities", "days", "dishes"]
    assert V.split_plural("knife/knives") == ("knife", "knives")


def test_numbers_as_words():
    assert V.number_words(23) == "twenty three"
    assert V.number_words(305) == "three hundred and five"
    assert V.number_words(1000) == "one thousand"
    assert V.number_words(12_040) == "twelve thousand and forty"
    assert [V.ordinal_words(n) for n in (1, 3, 12, 20, 21, 28)] == [
        "first", "third", "twelfth", "twentieth", "twenty first", "twenty eighth"]
    assert V.year_words(1998) == "nineteen ninety eight"
    assert V.year_words(1905) == "nineteen oh five"
    assert V.year_words(2005) == "two thousand and five"
    assert V.year_words(1900) == "nineteen hundred"


# --- user text files ------------------------------------------------------------------------


def write(tmp_path, text: str | bytes, name: str = "lines.txt"):
    path = tmp_path / name
    (path.write_bytes if isinstance(text, bytes) else lambda t: path.write_text(t, encoding="utf-8"))(text)
    return path


def test_text_file_skips_comments_and_blanks_and_normalizes_whitespace(tmp_path):
    path = write(tmp_path, "# my sentences\n\n  Hello,   world.  \n\t# an indented comment\n"
                           "Second\tline\u00a0here!\r\n   \nThird # not a comment\n")
    assert load_text_file(path) == ["Hello, world.", "Second line here!", "Third # not a comment"]
    assert load_text_file(str(path)) == load_text_file(path)


def test_text_file_with_byte_order_mark(tmp_path):
    path = write(tmp_path, "\ufeffFirst line.\nSecond line.\n".encode("utf-8"))
    assert load_text_file(path) == ["First line.", "Second line."]


def test_long_lines_are_split_at_sentence_punctuation(tmp_path):
    sentences = [f"Sentence number {V.number_words(i)} is here to fill the line up." for i in range(1, 16)]
    line = " ".join(sentences)
    assert len(line) > 2 * MAX_LINE_CHARS
    out = load_text_file(write(tmp_path, f"Short one.\n{line}\nShort two?\n"))
    assert out[0] == "Short one." and out[-1] == "Short two?"
    pieces = out[1:-1]
    assert len(pieces) >= 3
    assert all(len(p) <= MAX_LINE_CHARS and p.endswith(".") for p in pieces)
    assert " ".join(pieces) == line


def test_long_lines_without_sentence_punctuation_still_get_split():
    line = "; ".join(["a clause with several words in it"] * 20)
    pieces = split_long_line(line)
    assert len(pieces) > 1 and all(len(p) <= MAX_LINE_CHARS for p in pieces)
    assert " ".join(pieces) == line
    words = " ".join(["word"] * 200)
    assert " ".join(split_long_line(words, limit=50)) == words
    assert all(len(p) <= 50 for p in split_long_line(words, limit=50))


@pytest.mark.parametrize("content", ["", "\n\n   \n", "# only\n  # comments\n"])
def test_text_file_without_sentences_is_an_error_naming_the_file(tmp_path, content):
    path = write(tmp_path, content, "empty.txt")
    with pytest.raises(ValueError, match="empty.txt"):
        load_text_file(path)


def test_text_file_not_utf8_or_missing_is_a_clear_error(tmp_path):
    path = write(tmp_path, "caf\xe9 au lait\n".encode("latin-1"), "latin.txt")
    with pytest.raises(ValueError, match=r"latin\.txt.*UTF-8"):
        load_text_file(path)
    with pytest.raises(ValueError, match="missing.txt"):
        load_text_file(tmp_path / "missing.txt")
