"""``codeclm lm fit``: train a language-model stage with LightningCLI.

``--model.model`` names the stage model class and its arguments (usually from a config in
``configs/lm/``); ``--data.shards`` the token shards; ``--ckpt_path`` resumes.
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    sub.add_parser("fit", add_help=False,
                   help="train a language-model stage (LightningCLI: --config configs/lm/NAME.yaml, --ckpt_path to resume)")


def run(argv: list[str]) -> int:
    from audiolm.lightning_module import LMModule
    from data.token_datamodule import TokenDataModule
    from launch.lightning_cli import run_fit

    return run_fit(LMModule, TokenDataModule, argv)
