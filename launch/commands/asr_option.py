"""``--asr``: the speech recognizer a command uses, by name (``audiolm.evaluation.asr``)."""

from __future__ import annotations

import argparse


def add_asr_argument(p: argparse.ArgumentParser, what: str, none: bool = True) -> None:
    """Add ``--asr whisper-tiny|pocketsphinx[|none]`` (default whisper-tiny) to ``p``; ``what`` says
    what the recognizer is for. Every choice ships its model: nothing is downloaded."""
    from audiolm.evaluation.asr import CHOICES, DEFAULT_ASR

    choices = CHOICES if none else tuple(c for c in CHOICES if c != "none")
    p.add_argument("--asr", choices=choices, default=DEFAULT_ASR,
                   help=f"{what}: whisper-tiny (Whisper tiny.en, offline; the default) or pocketsphinx"
                        + ("; none leaves it out" if none else ""))
