"""``codeclm generate ...``: audio from trained language models, decoded by a codec."""

from __future__ import annotations

import argparse

from launch.commands import generate_music


def register(sub: argparse._SubParsersAction) -> None:
    generate_music.register(sub)
