"""``codeclm generate ...``: audio from trained language models, decoded by a codec."""

from __future__ import annotations

import argparse

from launch.commands import generate_clone, generate_continue, generate_music


def register(sub: argparse._SubParsersAction) -> None:
    generate_clone.register(sub)
    generate_continue.register(sub)
    generate_music.register(sub)
