"""Sentencepiece training on shard transcripts, and the phoneme vocabulary."""

from __future__ import annotations

import pytest

from data.text import PhonemeVocab, SpmTokenizer, train_spm
from data.shards import ShardWriter


def transcript_shards(out, lines):
    with ShardWriter(out, "t") as w:
        for i, line in enumerate(lines):
            w.write(f"k{i}", {"json": {"text": line, "phonemes": "həlˈoʊ wˈɜːld", "duration": 1.0}})


def test_spm_round_trip(tmp_path):
    from data.corpus.sentences import SentenceGenerator

    lines = SentenceGenerator(seed=0).sentences(400)
    transcript_shards(tmp_path / "s", lines)
    path = train_spm(str(tmp_path / "s"), 200, tmp_path / "spm.model")
    tok = SpmTokenizer(path)
    assert tok.vocab_size == 200 and (tmp_path / "spm.vocab").exists()
    for line in lines[:20]:
        ids = tok(line)
        assert ids and min(ids) > 0  # 0 stays free for padding
        assert tok.decode(ids) == line


def test_spm_errors(tmp_path):
    transcript_shards(tmp_path / "s", [""])
    with pytest.raises(ValueError, match="no 'text' transcripts"):
        train_spm(str(tmp_path / "s"), 100, tmp_path / "x.model")
    with pytest.raises(FileNotFoundError, match="codeclm data spm"):
        SpmTokenizer(tmp_path / "missing.model")


def test_phoneme_vocab(tmp_path):
    v = PhonemeVocab.fit(["həlˈoʊ", "wˈɜːld"])
    ids = v("həlˈoʊ wˈɜːld")
    assert 0 not in ids and v.decode(ids) == "həlˈoʊwˈɜːld".replace("", "")[: len(v.decode(ids))]
    assert v("ʒ") == [PhonemeVocab.UNK]
    v.save(tmp_path / "p.json")
    assert PhonemeVocab.load(tmp_path / "p.json").symbols == v.symbols
