"""Shared data of the evaluation tests: a small espeak corpus (3 speakers, several utterances
each, 16 kHz, real shards), the Debian tools of the codec baselines, and the Whisper judge."""

from __future__ import annotations

import pytest

from tests.demo.conftest import demo_models  # noqa: F401  (the tiny random models of the demo tests)
from tests.system_packages import ensure_programs


@pytest.fixture(scope="session")
def eval_speech(tmp_path_factory):
    """Shard folder of ~45 s of espeak speech from 3 speakers."""
    from data.corpus.speech import SpeechCorpusConfig, build_speech

    out = tmp_path_factory.mktemp("eval_speech") / "shards"
    build_speech(SpeechCorpusConfig(out_dir=str(out), hours=45 / 3600, speakers=3, workers=1, seed=3), progress=False)
    return out


@pytest.fixture(scope="session")
def eval_clips(eval_speech):
    from data.clips import iter_clips

    return list(iter_clips(str(eval_speech)))


@pytest.fixture(scope="session")
def opus_tools():
    return ensure_programs("opus-tools", "opusenc", "opusdec", purpose="the Opus baseline")


@pytest.fixture(scope="session")
def codec2_tools():
    return ensure_programs("codec2", "c2enc", "c2dec", purpose="the Codec2 baseline")


@pytest.fixture(scope="session")
def whisper():
    """The real Whisper tiny.en judge (the eval extra); the test is skipped, with the reason, without it."""
    from audiolm.evaluation.asr import load_transcriber

    asr, why = load_transcriber("whisper-tiny")
    if asr is None:
        pytest.skip(f"the Whisper judge is not installed: {why}")
    return asr
