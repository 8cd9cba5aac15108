"""The built-in espeak-ng corpus: speakers, hours, metadata, determinism, reuse."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile

import numpy as np
import pytest
import soundfile as sf

from data.corpus.espeak import VoiceParams, get_espeak
from data.corpus.speakers import make_speakers
from data.corpus.speech import SpeechCorpusConfig, build_speech, trim_silence
from data.text import iter_metadata


def test_speaker_table_is_stable_and_distinct():
    a = make_speakers(40, seed=1)
    assert a == make_speakers(40, seed=1) and len(a) == 40
    assert a != make_speakers(40, seed=2)
    params = list(a.values())
    assert len({p.voice for p in params}) == 8 and len({p.variant for p in params}) >= 20
    assert len({(p.pitch, p.rate) for p in params}) >= 35


def test_espeak_speaks_and_phonemizes():
    e = get_espeak()
    wav = e.synthesize("Hello world, this is a test.", VoiceParams("en-us", "m3"))
    assert e.sample_rate == 22050 and 1.0 < len(wav) / e.sample_rate < 4.0
    assert np.abs(wav).max() > 0.1
    assert "wˈɜːld" in e.phonemes("world", VoiceParams("en-us"))
    with pytest.raises(RuntimeError, match="no voice"):
        e.synthesize("x", VoiceParams("xx-nonexistent"))


def test_trim_silence_keeps_margin():
    sr = 1000
    wav = np.concatenate([np.zeros(500), np.ones(300) * 0.5, np.zeros(700)]).astype(np.float32)
    out = trim_silence(wav, sr, margin_s=0.05)
    assert len(out) == 300 + 2 * 50


def _digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.tar"))}


def test_corpus_has_requested_speakers_hours_and_metadata(tmp_path):
    cfg = SpeechCorpusConfig(out_dir=str(tmp_path / "c"), hours=90 / 3600, speakers=6, sample_rate=16000,
                             workers=1, max_count=10)
    m = build_speech(cfg, progress=False)
    metas = list(iter_metadata(str(tmp_path / "c")))
    assert 90 <= m["total_duration"] < 90 + 10.5
    assert abs(sum(x["duration"] for x in metas) - m["total_duration"]) < 0.05
    assert len({x["speaker"] for x in metas}) == 6 == len(m["speakers"])
    assert len(m["shards"]) >= 2 and all(s["count"] <= 10 for s in m["shards"])
    for x in metas:
        assert x["text"] and x["phonemes"] and x["sample_rate"] == 16000 and 1.0 <= x["duration"] <= 10.0
        assert set(x["voice"]) >= {"voice", "variant", "pitch", "range", "rate"}
    with tarfile.open(tmp_path / "c" / m["shards"][0]["url"]) as tar:
        first = json.loads(tar.extractfile(tar.getmembers()[1]).read())
        wav, sr = sf.read(io.BytesIO(tar.extractfile(tar.getmembers()[0]).read()))
    assert sr == 16000 and abs(len(wav) / sr - first["duration"]) < 1e-3

    # same arguments, two workers: the same bytes; rerun reuses what is there
    cfg2 = SpeechCorpusConfig(**{**cfg.__dict__, "out_dir": str(tmp_path / "d"), "workers": 2})
    build_speech(cfg2, progress=False)
    assert _digest(tmp_path / "c") == _digest(tmp_path / "d")
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "d").iterdir()}
    build_speech(cfg2, progress=False)
    assert before == {p: p.stat().st_mtime_ns for p in (tmp_path / "d").iterdir()}


def test_text_file_is_used(tmp_path):
    txt = tmp_path / "lines.txt"
    txt.write_text("# comment\nThe first line is here.\n\nA second line follows it.\n")
    cfg = SpeechCorpusConfig(out_dir=str(tmp_path / "c"), hours=6 / 3600, speakers=2, text_file=str(txt), workers=1)
    build_speech(cfg, progress=False)
    texts = {x["text"] for x in iter_metadata(str(tmp_path / "c"))}
    assert texts == {"The first line is here.", "A second line follows it."}
