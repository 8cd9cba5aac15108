"""Held-out voices: Flite speech (Debian's `flite`, installed here when missing) as real shards
with the same metadata as the espeak corpus, speakers that corpus never has."""

from __future__ import annotations

import json
import tarfile

import numpy as np
import pytest

from data.clips import iter_clips
from data.corpus.flite import FliteCorpusConfig, FliteError, build_flite
from tests.system_packages import ensure_programs


@pytest.fixture(scope="module")
def flite_shards(tmp_path_factory):
    ensure_programs("flite", "flite", purpose="the held-out voice corpus")
    out = tmp_path_factory.mktemp("flite") / "shards"
    build_flite(FliteCorpusConfig(out_dir=str(out), minutes=0.5, voices=["slt", "kal16"], workers=2, max_count=4),
                progress=False)
    return out


def test_flite_corpus_is_shards_of_its_voices_with_texts(flite_shards):
    manifest = json.loads((flite_shards / "shards.json").read_text())
    assert manifest["corpus"] == "flite" and 30 <= manifest["total_duration"] <= 45
    assert len(manifest["shards"]) == -(-manifest["total_count"] // 4)  # max_count samples a shard
    with tarfile.open(flite_shards / manifest["shards"][0]["url"]) as tar:
        names = tar.getnames()
    assert names[:2] == ["flite_0000000.flac", "flite_0000000.json"]
    clips = list(iter_clips(str(flite_shards)))
    assert len(clips) == manifest["total_count"]
    assert {c.speaker for c in clips} == {"flite_slt", "flite_kal16"}
    for c in clips:
        assert c.sample_rate == 16000 and c.text and 0.8 <= c.seconds <= 12
        assert 0.05 < np.abs(c.wav).max() <= 0.96 and np.isfinite(c.wav).all()
    # the two voices really differ: their long-term spectra are far apart
    spectra = {}
    for c in clips:
        mag = np.abs(np.fft.rfft(c.wav[0][: 8000 * (c.wav.shape[-1] // 8000)].reshape(-1, 8000), axis=1)).mean(0)
        spectra.setdefault(c.speaker, []).append(np.log(mag[40:3200] + 1e-6))
    a, b = (np.mean(v, axis=0) for v in spectra.values())
    assert np.abs(a - b).mean() > 0.3


def test_unknown_voice_and_missing_program_are_clear_errors(tmp_path, monkeypatch):
    ensure_programs("flite", "flite", purpose="the held-out voice corpus")
    with pytest.raises(FliteError, match="flite has no voice 'nosuch'"):
        build_flite(FliteCorpusConfig(out_dir=str(tmp_path / "a"), voices=["nosuch"]), progress=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(FliteError, match="apt-get install flite"):
        build_flite(FliteCorpusConfig(out_dir=str(tmp_path / "b")), progress=False)
