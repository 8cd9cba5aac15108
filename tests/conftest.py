"""Shared fixtures: small shard sets made on the fly from synthetic signals."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(1)


def tone(seconds: float, sr: int, freq: float, seed: int = 0) -> np.ndarray:
    """A [1, T] sine with a little noise, distinct per (freq, seed)."""
    t = np.arange(int(seconds * sr)) / sr
    rng = np.random.default_rng(seed)
    return (0.3 * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(t.size)).astype(np.float32)[None]


def make_shards(out: Path, counts: list[int], sr: int = 8000, seconds: float = 0.5, name: str = "syn",
                speakers: int = 3) -> dict:
    """Shards with exactly ``counts[i]`` samples in shard ``i``; sample j's tone encodes j."""
    from data.audio import encode_flac
    from data.shards import ShardWriter

    n = 0
    w = ShardWriter(out, name, max_count=10**9, manifest_extra={"sample_rate": sr})
    for i, c in enumerate(counts):
        if i:
            w._open_next()
        for _ in range(c):
            dur = seconds * (1 + (n % 3) / 2)
            wav = tone(dur, sr, 100 + 10 * n, seed=n)
            w.write(f"{name}_{n:05d}", {"flac": encode_flac(wav, sr), "json": {
                "text": f"utterance number {n}", "speaker": f"spk{n % speakers}", "duration": wav.shape[-1] / sr,
                "sample_rate": sr}})
            n += 1
    return w.close()


@pytest.fixture
def shard_factory(tmp_path):
    def make(counts, **kw):
        out = tmp_path / kw.pop("dirname", "shards")
        make_shards(out, counts, **kw)
        return out

    return make


@pytest.fixture(scope="session")
def speech_token_shards(tmp_path_factory):
    """Real token shards: ~40 s of espeak speech from 4 speakers, tokenized by a tiny random
    codec (codebooks filled by k-means), with a sentencepiece model and a phoneme vocabulary.

    Returns a dict: ``audio`` (audio shard dir), ``tokens`` (token shard dir), ``spm`` (.model),
    ``phonemes`` (phonemes.json), ``codec`` (the Codec), ``export`` (its export dir).
    """
    from codec.export import export_codec
    from codec.tokenize import tokenize_shards
    from data.corpus.speech import SpeechCorpusConfig, build_speech
    from data.text import PhonemeVocab, iter_metadata, train_spm
    from tests.codec.test_export import tiny_codec

    root = tmp_path_factory.mktemp("speech_tokens")
    audio = root / "audio"
    build_speech(SpeechCorpusConfig(out_dir=str(audio), hours=40 / 3600, speakers=4, workers=1, max_count=8),
                 progress=False)
    codec = tiny_codec()
    export = export_codec(codec, root / "codec")
    tokens = root / "tokens"
    tokenize_shards(codec, str(audio), tokens, batch_size=4, progress=False)
    spm_path = train_spm(str(audio), 64, root / "spm.model", hard_limit=False)
    phon = root / "phonemes.json"
    PhonemeVocab.fit(m.get("phonemes", "") for m in iter_metadata(str(audio))).save(phon)
    return {"audio": audio, "tokens": tokens, "spm": spm_path, "phonemes": phon, "codec": codec, "export": export}
