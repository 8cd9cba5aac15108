"""LightningCLI set up the same way for every training command of codeclm."""

from __future__ import annotations

import os
import warnings

from lightning.pytorch.cli import LightningCLI

# ShardDataset's __len__ is exact per rank and worker (see data/webdataset.py)
warnings.filterwarnings("ignore", message=r".*IterableDataset.*has `__len__` defined")


# wandb stays offline unless the user turns it online (WANDB_MODE=online or `wandb online`)
os.environ.setdefault("WANDB_MODE", "offline")


class CodeclmCLI(LightningCLI):
    def add_arguments_to_parser(self, parser) -> None:
        parser.set_defaults({"trainer.default_root_dir": "runs/train"})


def default_callbacks() -> list:
    """Callbacks every training run gets, besides those its config names."""
    from launch.rng_state import RNGStateCallback

    return [RNGStateCallback()]  # per-rank random states in checkpoints: exact resumption


def run_fit(model_class, datamodule_class, argv: list[str]) -> int:
    """``fit`` with a model and datamodule class; configs are saved beside the logs."""
    CodeclmCLI(model_class, datamodule_class, args=["fit", *argv], seed_everything_default=0,
               save_config_kwargs={"overwrite": True}, auto_configure_optimizers=False,
               trainer_defaults={"callbacks": default_callbacks()})
    return 0
