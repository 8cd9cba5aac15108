"""Training checkpoints that survive kills, and resumption from the newest complete one.

- :class:`SafeCheckpointIO` is the Trainer's checkpoint plugin for every training command. A
  checkpoint is written to a temporary file beside its target, flushed to disk, then renamed over
  the target: a process killed during the write leaves the previous checkpoint intact and at
  most a ``.*.ckpt.tmp-*`` file, never a truncated ``.ckpt``. Loading is ``weights_only=True``
  only: a checkpoint holding pickled Python objects is refused before any of it runs. Secrets
  (:mod:`launch.secrets`) are blanked from the non-tensor entries before they are written.
- :func:`check_checkpoint` tells a complete checkpoint from a truncated, corrupt or foreign file,
  reading only the zip directory and its checksums.
- :func:`find_resume_checkpoint` picks the newest complete checkpoint under a run's folders
  (``--ckpt_path auto``), passing over incomplete ones with a warning.
- :func:`check_state_keys` turns "a checkpoint of another model" into one clear message instead
  of ``load_state_dict``'s key lists.
"""

from __future__ import annotations

import logging
import os
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

log = logging.getLogger("codeclm.train")

TMP_MARK = ".tmp-"
# debug checkpoints written when training stops on non-finite steps: never resumed from automatically
DEBUG_PREFIXES = ("nonfinite-",)


class CheckpointError(ValueError):
    """A checkpoint that cannot or must not be loaded; the message names the file and the fix."""


def _is_local(path: str | os.PathLike) -> bool:
    return "://" not in str(path)


def check_checkpoint(path: str | os.PathLike, crc: bool = True) -> None:
    """Raise :class:`CheckpointError` unless ``path`` is a complete PyTorch checkpoint file.

    A truncated write loses the zip's central directory (at the end of the file); ``crc`` also
    verifies every member's checksum (reads the whole file once).
    """
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"checkpoint {p} not found: pass a .ckpt written by `codeclm ... fit`, or "
                              "--ckpt_path auto to resume from the newest checkpoint of the run")
    if p.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {p} is empty (an interrupted copy?): delete it or pass another one")
    if not zipfile.is_zipfile(p):
        raise CheckpointError(f"{p} is not a complete PyTorch checkpoint (truncated, or another format): "
                              "resume from an earlier checkpoint, or --ckpt_path auto to pick the newest complete one")
    try:
        with zipfile.ZipFile(p) as z:
            names = z.namelist()
            if not any(n.endswith("/data.pkl") or n == "data.pkl" for n in names):
                raise CheckpointError(f"{p} is a zip file but not a PyTorch checkpoint (no data.pkl)")
            bad = z.testzip() if crc else None
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise CheckpointError(f"{p} is corrupt ({e}): resume from an earlier checkpoint") from None
    if bad is not None:
        raise CheckpointError(f"{p} is corrupt (checksum mismatch in {bad}): resume from an earlier checkpoint")


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:200] if text else type(e).__name__


def read_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """``torch.load(path, weights_only=True)`` with one clear error for every way it can fail."""
    if _is_local(path):
        check_checkpoint(path)
    try:
        if _is_local(path):
            ckpt = torch.load(path, map_location=map_location, weights_only=True)
        else:
            from lightning.fabric.utilities.cloud_io import _load

            ckpt = _load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        found = re.search(r"(?:Unsupported global: GLOBAL|unsupported GLOBAL) (\S+)", str(e))
        what = f"the Python object {found.group(1)}" if found else "pickled Python objects"
        raise CheckpointError(f"{path}: refused: it holds {what}, not only tensors and plain data, and loading it "
                              "could run code. Resume only from checkpoints written by codeclm's training "
                              "commands") from None
    except CheckpointError:
        raise
    except Exception as e:
        raise CheckpointError(f"{path} is not a readable PyTorch checkpoint ({type(e).__name__}: {_first_line(e)})") from None
    if not isinstance(ckpt, Mapping) or not isinstance(ckpt.get("state_dict"), Mapping):
        raise CheckpointError(f"{path} is not a training checkpoint (no 'state_dict'): pass a .ckpt written by "
                              "`codeclm codec fit` or `codeclm lm fit`")
    return dict(ckpt)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` to a temporary file beside ``path``, fsync, rename over ``path``."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}{TMP_MARK}{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(target.parent)
    return target


class SafeCheckpointIO(TorchCheckpointIO):
    """Atomic saves, ``weights_only`` loads, secrets blanked (see the module docstring).

    Args:
        redact: applied to every non-tensor value of a checkpoint before it is written
            (:meth:`launch.secrets.Redactor.obj`); None writes them as they are.
    """

    def __init__(self, redact: Callable[[Any], Any] | None = None) -> None:
        super().__init__()
        self.redact = redact

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError("SafeCheckpointIO takes no storage_options")
        if self.redact is not None:
            checkpoint = self.redact(checkpoint)
        if not _is_local(path):  # object stores: the store's own put is all-or-nothing
            return super().save_checkpoint(checkpoint, path)
        atomic_torch_save(checkpoint, path)

    def load_checkpoint(self, path, map_location: Any = lambda storage, loc: storage,
                        weights_only: bool | None = None) -> dict[str, Any]:
        if weights_only is False:
            log.warning("weights_only=False was asked for %s; codeclm loads checkpoints with weights_only=True only", path)
        return read_checkpoint(path, map_location=map_location)


def _step_of(path: Path) -> int:
    found = re.search(r"step=(\d+)", path.name)
    return int(found.group(1)) if found else -1


def checkpoint_candidates(folders: Iterable[str | os.PathLike]) -> list[Path]:
    """Every ``*.ckpt`` under ``folders`` (recursively), newest first, without temporary files and
    debug checkpoints."""
    seen: dict[Path, None] = {}
    for folder in folders:
        root = Path(folder)
        if not root.is_dir():
            continue
        for p in root.rglob("*.ckpt"):
            if p.is_file() and TMP_MARK not in p.name and not p.name.startswith(DEBUG_PREFIXES):
                seen[p.resolve()] = None
    return sorted(seen, key=lambda p: (p.stat().st_mtime_ns, _step_of(p)), reverse=True)


def find_resume_checkpoint(folders: Iterable[str | os.PathLike],
                           accept: Callable[[Path], Any] | None = None) -> Path | None:
    """The newest complete checkpoint under ``folders``, or None when there is none; each
    incomplete one passed over is logged. ``accept(path)`` may raise :class:`CheckpointError` to
    pass over a complete checkpoint too (one of another model, say)."""
    for path in checkpoint_candidates(folders):
        try:
            check_checkpoint(path)
            if accept is not None:
                accept(path)
        except CheckpointError as e:
            log.warning("passing over %s", e)
            continue
        return path
    return None


def check_state_keys(module: torch.nn.Module, checkpoint: Mapping[str, Any], path: str = "the checkpoint") -> None:
    """Raise :class:`CheckpointError` when ``checkpoint['state_dict']`` is not ``module``'s."""
    state = checkpoint.get("state_dict")
    if not isinstance(state, Mapping):
        raise CheckpointError(f"{path} has no state_dict: it is not a training checkpoint")
    ours = set(module.state_dict())
    theirs = {k for k in state if isinstance(k, str)}
    missing, unexpected = sorted(ours - theirs), sorted(theirs - ours)
    mismatched = [k for k in sorted(ours & theirs) if isinstance(state[k], torch.Tensor)
                  and tuple(state[k].shape) != tuple(module.state_dict()[k].shape)]
    if not (missing or unexpected or mismatched):
        return
    kinds = {k.split(".", 1)[0] for k in theirs}
    parts = []
    if missing:
        parts.append(f"{len(missing)} weights of this model are absent (e.g. {missing[0]})")
    if unexpected:
        parts.append(f"{len(unexpected)} are not this model's (e.g. {unexpected[0]})")
    if mismatched:
        k = mismatched[0]
        parts.append(f"{len(mismatched)} differ in shape (e.g. {k}: {tuple(state[k].shape)} in the checkpoint, "
                     f"{tuple(module.state_dict()[k].shape)} here)")
    raise CheckpointError(f"{path} is a checkpoint of another model (its weights are under {sorted(kinds)}): "
                          + "; ".join(parts) + ". Resume with the config the run was started with, or start a new run")
