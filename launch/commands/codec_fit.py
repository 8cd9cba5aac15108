"""``codeclm codec fit``: train the codec with LightningCLI.

Every option is settable from YAML (``--config``) or the command line (``--model.optim.lr 1e-4``,
``--data.shards DIR``, ``--trainer.max_steps N``); ``--ckpt_path last`` or a path resumes.
``codeclm codec fit --help`` lists them all.
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    sub.add_parser("fit", add_help=False,
                   help="train the codec (LightningCLI: --config YAML, any option on the command line, --ckpt_path to resume)")


def run(argv: list[str]) -> int:
    from launch.lightning_cli import run_fit
    from codec.lightning_module import CodecModule
    from data.datamodule import AudioDataModule

    return run_fit(CodecModule, AudioDataModule, argv)
