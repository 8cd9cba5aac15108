"""``codeclm lm ...``: audio language models."""

from __future__ import annotations

import argparse

from launch.commands import lm_fit


def register(sub: argparse._SubParsersAction) -> None:
    lm_fit.register(sub)
