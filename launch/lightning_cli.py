"""LightningCLI set up the same way for every training command of codeclm.

Every run gets, besides what its config names:

- :class:`~launch.rng_state.RNGStateCallback` (per-rank random states in checkpoints: exact
  resumption) and :class:`~launch.preemption.PreemptionCallback` (SIGTERM / SLURM's warning
  signal: finish the step, save, stop, requeue);
- :class:`~launch.checkpoints.SafeCheckpointIO` (atomic writes, ``weights_only`` loads);
- ``--ckpt_path auto`` (also ``last``): resume from the newest complete checkpoint under the
  run's folders (``trainer.default_root_dir``, the logger's and the checkpoint callback's), or
  start fresh when there is none; the choice is printed. An explicit path is checked before
  anything is built on it: a missing, truncated, pickled or foreign checkpoint is one message;
- secrets (:mod:`launch.secrets`) blanked from the saved ``config.yaml``, from checkpoints and
  from log records; wandb offline unless the user turns it online.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from pathlib import Path

from lightning.pytorch.cli import LightningCLI, SaveConfigCallback

from launch.checkpoints import (CheckpointError, SafeCheckpointIO, check_state_keys, find_resume_checkpoint,
                                read_checkpoint)
from launch.secrets import Redactor, argv_secrets, env_secrets, install_log_filter, protect_run_metadata, secrets_in

log = logging.getLogger("codeclm.train")

# ShardDataset's __len__ is exact per rank and worker (see data/webdataset.py)
warnings.filterwarnings("ignore", message=r".*IterableDataset.*has `__len__` defined")


# `codeclm lm fit ...` hands its own arguments to LightningCLI, as documented
warnings.filterwarnings("ignore", message=r"LightningCLI's args parameter is intended to run from within Python")

# wandb stays offline unless the user turns it online (WANDB_MODE=online or `wandb online`)
os.environ.setdefault("WANDB_MODE", "offline")

AUTO_RESUME = ("auto", "last")


class RedactedSaveConfig(SaveConfigCallback):
    """``config.yaml`` beside the logs, with secrets blanked."""

    redactor: Redactor = Redactor()

    def __init__(self, parser, config, *args, **kwargs) -> None:
        super().__init__(parser, self.redactor.obj(config), *args, **kwargs)


class TrainConfigError(ValueError):
    """A training option that cannot work; the message names it and the fix."""


class DataSpecError(TrainConfigError):
    """A ``--data.*`` option that names no readable shards."""


SHARD_OPTIONS = {"shards": "", "val_shards": " (or null: no validation)"}


def check_shard_options(data) -> None:
    """Resolve the datamodule's shard specs before anything is built: a missing folder or shard
    is one :class:`DataSpecError` naming the option, not a traceback from the first batch."""
    from data.urls import expand_urls

    for key, alternative in SHARD_OPTIONS.items():
        spec = data.get(key) if hasattr(data, "get") else None
        if spec is None or not isinstance(spec, str):
            continue
        try:
            expand_urls(spec)
        except (OSError, ValueError) as e:
            raise DataSpecError(
                f"--data.{key} {spec}: {e}. Give --data.{key} a shard folder (as `codeclm data speech`, `data shard` "
                f"or `codec tokenize` write), its shards.json, or a brace pattern of .tar files{alternative}") from None


class CodeclmCLI(LightningCLI):
    redactor: Redactor = Redactor()

    def add_arguments_to_parser(self, parser) -> None:
        parser.set_defaults({"trainer.default_root_dir": "runs/train"})

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config
        check_shard_options(config.get("data"))

    def _instantiate_trainer(self, config, callbacks):
        plugins = config.get("plugins")
        plugins = [] if plugins is None else list(plugins) if isinstance(plugins, (list, tuple)) else [plugins]
        from lightning.fabric.plugins import CheckpointIO

        if not any(isinstance(p, CheckpointIO) for p in plugins):
            plugins.append(SafeCheckpointIO(self.redactor.obj))
        config["plugins"] = plugins
        from launch.precision import resolve_precision

        config["precision"], note = resolve_precision(config.get("precision"), config.get("accelerator"))
        if note:
            print(f"codeclm: {note}", file=sys.stderr)
        return super()._instantiate_trainer(config, callbacks)

    def _run_folders(self) -> list[Path]:
        trainer = self.trainer
        folders = [Path(trainer.default_root_dir)]
        for logger in trainer.loggers:  # the experiment's folder (all its versions), not the shared save_dir
            root = getattr(logger, "root_dir", None)
            if root:
                folders.append(Path(root))
        for cb in trainer.checkpoint_callbacks:
            if getattr(cb, "dirpath", None):
                folders.append(Path(cb.dirpath))
        return folders

    def _parse_ckpt_path(self) -> None:
        """An explicit ``--ckpt_path`` is read (``weights_only``) and checked before anything is built."""
        sub = self.config.get("subcommand")
        ckpt = self.config[sub].get("ckpt_path") if sub else None
        if ckpt and str(ckpt) not in AUTO_RESUME and "://" not in str(ckpt):
            self._explicit = (str(ckpt), read_checkpoint(ckpt))
            if not self._explicit[1].get("hyper_parameters"):
                return
        super()._parse_ckpt_path()

    def before_fit(self) -> None:
        cfg = self.config_init[self.subcommand]
        ckpt = cfg.get("ckpt_path")
        if ckpt is None:
            return
        states = {}

        def accept(path) -> None:  # a full weights_only read, then this model's weights or pass over it
            states[path] = read_checkpoint(path)
            check_state_keys(self.model, states[path], str(path))

        if str(ckpt) in AUTO_RESUME:
            found = find_resume_checkpoint(self._run_folders(), accept)
            if not self.trainer.is_global_zero:
                pass
            elif found is None:
                print(f"codeclm: no checkpoint of this model under {self.trainer.default_root_dir} yet: starting a "
                      "new run", file=sys.stderr)
            else:
                state = states[found]
                print(f"codeclm: resuming from {found} (step {state.get('global_step', '?')}, epoch "
                      f"{state.get('epoch', '?')})", file=sys.stderr)
            cfg["ckpt_path"] = str(found) if found is not None else None
            states.clear()
            return
        explicit = getattr(self, "_explicit", None)
        if explicit is not None and explicit[0] == str(ckpt):
            check_state_keys(self.model, explicit[1], str(ckpt))
            self._explicit = None


def default_callbacks() -> list:
    """Callbacks every training run gets, besides those its config names."""
    from launch.preemption import PreemptionCallback
    from launch.rng_state import RNGStateCallback

    return [RNGStateCallback(), PreemptionCallback()]


def _config_secrets(argv: list[str]) -> list[str]:
    """Secrets under secret-named keys of the YAML files named by ``--config``."""
    import yaml

    found: list[str] = []
    for i, arg in enumerate(argv):
        path = arg.partition("=")[2] if arg.startswith("--config=") else argv[i + 1] if arg == "--config" and i + 1 < len(argv) else None
        if path and Path(path).is_file():
            try:
                found += secrets_in(yaml.safe_load(Path(path).read_text()))
            except yaml.YAMLError:
                pass  # LightningCLI reports the bad file
    return found


def _redact_warnings(redactor: Redactor) -> None:
    """Python warnings (printed by the warnings module, not logging) go through the redactor too."""
    shown = warnings.showwarning
    if getattr(shown, "_codeclm_redacting", False):
        shown = shown._codeclm_inner

    def show(message, category, filename, lineno, file=None, line=None):
        shown(redactor.text(str(message)), category, filename, lineno, file, line)

    show._codeclm_redacting, show._codeclm_inner = True, shown
    warnings.showwarning = show


def run_fit(model_class, datamodule_class, argv: list[str], cli_class: type[CodeclmCLI] = CodeclmCLI) -> int:
    """``fit`` with a model and datamodule class; configs are saved beside the logs (secrets blanked).
    ``cli_class``: a :class:`CodeclmCLI` subclass for what one kind of training needs.

    A missing shard folder, a checkpoint or numerical problem ends in one line (``codeclm: error: ...``); set
    ``CODECLM_DEBUG=1`` for the traceback.
    """
    from codec.codebook_health import CodebookCollapseError
    from data.numerics import NonFiniteError

    redactor = Redactor([*env_secrets(), *argv_secrets(argv), *_config_secrets(argv)])
    CodeclmCLI.redactor = cli_class.redactor = RedactedSaveConfig.redactor = redactor
    install_log_filter(redactor)
    _redact_warnings(redactor)
    protect_run_metadata(argv, redactor)
    try:
        cli_class(model_class, datamodule_class, args=["fit", *argv], seed_everything_default=0,
                   save_config_callback=RedactedSaveConfig, save_config_kwargs={"overwrite": True},
                   auto_configure_optimizers=False, trainer_defaults={"callbacks": default_callbacks()})
    except (CheckpointError, NonFiniteError, TrainConfigError, CodebookCollapseError) as e:
        if os.environ.get("CODECLM_DEBUG"):
            raise
        print(f"codeclm: error: {redactor.text(str(e))}", file=sys.stderr)
        return 2
    return 0
