"""Keep secrets out of everything a training run writes.

A secret is

- the value of an environment variable whose name contains ``KEY``, ``TOKEN``, ``SECRET``,
  ``PASSWORD``, ``PASSWD`` or ``CREDENTIAL`` (``WANDB_API_KEY``, ``HF_TOKEN``, ...);
- a string given to a configuration option or command-line option whose name is such a word
  (``api_key``, ``hf_token``, ``password``, ...; ``num_tokens`` is not one), from YAML or the
  command line.

Values shorter than :data:`MIN_SECRET_LEN` characters are not treated as secrets: a variable such
as ``TOKENIZERS_PARALLELISM=false`` must not blank every ``false`` in a config.

:class:`Redactor` replaces secrets by ``<redacted>`` in text and in nested config objects; the
training CLI uses it for the saved ``config.yaml``, the checkpoints' non-tensor entries and log
records. wandb records the command line in its run metadata, so when the command line holds a
secret, wandb's metadata collection is turned off for the run (``WANDB_X_DISABLE_META``).
"""

from __future__ import annotations

import copy
import json
import logging
import os
import re
from typing import Any, Iterable, Mapping

import torch

REDACTED = "<redacted>"
MIN_SECRET_LEN = 8
_ENV_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL", re.IGNORECASE)
# a whole word of an option name: api_key, apikey, hf_token, db-password, secret, credentials
_OPTION_NAME = re.compile(r"(^|[_\-])(api_?key|key|token|secret|password|passwd|credentials?)($|[_\-])", re.IGNORECASE)


def is_secret_name(name: str) -> bool:
    """Whether an option or config key named ``name`` (its last dotted part) holds a secret."""
    return bool(_OPTION_NAME.search(str(name).rsplit(".", 1)[-1]))


def env_secrets(environ: Mapping[str, str] | None = None) -> list[str]:
    """Values of the secret-named environment variables."""
    environ = os.environ if environ is None else environ
    return [v for k, v in environ.items() if _ENV_NAME.search(k) and len(v) >= MIN_SECRET_LEN]


def secrets_in(obj: Any) -> list[str]:
    """Strings held under secret-named keys anywhere inside ``obj`` (dicts, lists, namespaces,
    JSON text)."""
    found: list[str] = []

    def walk(o: Any, secret: bool) -> None:
        if isinstance(o, str):
            if secret and len(o) >= MIN_SECRET_LEN:
                found.append(o)
            elif o.lstrip().startswith("{"):
                try:
                    walk(json.loads(o), secret)
                except ValueError:
                    pass
        elif _is_mapping(o):
            for k, v in _items(o):
                walk(v, secret or is_secret_name(str(k)))
        elif isinstance(o, (list, tuple)):
            for v in o:
                walk(v, secret)

    walk(obj, False)
    return found


def argv_secrets(argv: Iterable[str]) -> list[str]:
    """Secrets on a command line: the values of secret-named options (``--x.api_key V``,
    ``--x.api_key=V``) and secrets inside JSON values (``--x.settings '{"api_key": "V"}'``)."""
    argv = list(argv)
    found: list[str] = []
    for i, arg in enumerate(argv):
        if arg.startswith("--"):
            name, eq, value = arg[2:].partition("=")
            if not eq and i + 1 < len(argv) and not argv[i + 1].startswith("--"):
                value = argv[i + 1]
            if is_secret_name(name) and len(value) >= MIN_SECRET_LEN:
                found.append(value)
        found += secrets_in(arg.partition("=")[2] if arg.startswith("--") else arg)
    return found


class Redactor:
    """Replaces known secret values (and values under secret-named keys) by ``<redacted>``."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: list[str] = []
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        new = {s for s in secrets if isinstance(s, str) and len(s) >= MIN_SECRET_LEN}
        self._secrets = sorted(new | set(self._secrets), key=len, reverse=True)  # longest first

    @property
    def secrets(self) -> list[str]:
        return list(self._secrets)

    def text(self, s: str) -> str:
        for secret in self._secrets:
            if secret in s:
                s = s.replace(secret, REDACTED)
        return s

    def obj(self, o: Any, secret: bool = False) -> Any:
        """A copy of ``o`` with secrets replaced in every string; tensors are returned as they are."""
        if isinstance(o, str):
            return REDACTED if secret and o else self.text(o)
        if isinstance(o, torch.Tensor) or o is None or isinstance(o, (bool, int, float)):
            return o
        if isinstance(o, Mapping):
            out = copy.copy(o)  # keeps the mapping's type
            for k, v in o.items():
                out[k] = self.obj(v, secret or is_secret_name(str(k)))
            return out
        if _is_mapping(o):  # a namespace: one attribute a level
            out = copy.copy(o)
            for k, v in vars(o).items():
                setattr(out, k, self.obj(v, secret or is_secret_name(k)))
            return out
        if isinstance(o, list):
            return [self.obj(v, secret) for v in o]
        if isinstance(o, tuple):
            return tuple(self.obj(v, secret) for v in o)
        return o


class RedactingFilter(logging.Filter):
    """A logging filter that redacts secrets from formatted messages."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = self.redactor.text(message)
        if clean != message:
            record.msg, record.args = clean, ()
        return True


LOGGERS = ("", "codeclm", "lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning")


def install_log_filter(redactor: Redactor) -> RedactingFilter:
    """Put a :class:`RedactingFilter` on every handler of the loggers a run writes through."""
    filt = RedactingFilter(redactor)
    for name in LOGGERS:
        for handler in logging.getLogger(name).handlers:
            if not any(isinstance(f, RedactingFilter) for f in handler.filters):
                handler.addFilter(filt)
    return filt


def protect_run_metadata(argv: Iterable[str], redactor: Redactor) -> bool:
    """When the command line holds a secret, stop wandb from recording it (its run metadata holds
    ``sys.argv``); returns whether metadata collection was turned off."""
    if any(secret in arg for arg in argv for secret in redactor.secrets):
        os.environ["WANDB_X_DISABLE_META"] = "true"
        return True
    return False


def _is_mapping(o: Any) -> bool:
    return isinstance(o, Mapping) or type(o).__name__ == "Namespace"


def _items(o: Any):
    if isinstance(o, Mapping):
        return list(o.items())
    return list(vars(o).items())  # jsonargparse / argparse Namespace: one level at a time
