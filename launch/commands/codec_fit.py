"""``codeclm codec fit``: train the codec with LightningCLI.

Every option is settable from YAML (``--config``) or the command line (``--model.optim.lr 1e-4``,
``--data.shards DIR``, ``--trainer.max_steps N``); ``--ckpt_path last`` or a path resumes.
``codeclm codec fit --help`` lists them all.

On more than one process (``--trainer.devices 2``, several nodes, ``--trainer.strategy ddp``) the
codec trains with :class:`codec.ddp.GANDDPStrategy` whatever config it comes from: plain DDP
cannot train its GAN (see :func:`codec.ddp.gan_strategy`); FSDP, DeepSpeed and the like are
refused with one line.
"""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    sub.add_parser("fit", add_help=False,
                   help="train the codec (LightningCLI: --config YAML, any option on the command line, --ckpt_path to resume)")


def codec_cli():
    """The :class:`~launch.lightning_cli.CodeclmCLI` of codec training: its Trainer gets the GAN-aware
    DDP strategy where plain DDP would run."""
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    from codec.ddp import gan_strategy
    from launch.lightning_cli import CodeclmCLI, TrainConfigError

    class CodecCLI(CodeclmCLI):
        def _instantiate_trainer(self, config, callbacks):
            try:
                config["strategy"], note = gan_strategy(config.get("strategy"), config.get("accelerator"),
                                                        config.get("devices"), config.get("num_nodes") or 1)
            except ValueError as e:
                raise TrainConfigError(str(e)) from None
            if note and rank_zero_only.rank == 0:
                print(f"codeclm: {note}", file=sys.stderr)
            return super()._instantiate_trainer(config, callbacks)

    return CodecCLI


def run(argv: list[str]) -> int:
    from codec.lightning_module import CodecModule
    from data.datamodule import AudioDataModule
    from launch.lightning_cli import run_fit

    return run_fit(CodecModule, AudioDataModule, argv, cli_class=codec_cli())
