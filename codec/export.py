"""Exported codecs: ``model.safetensors`` + ``config.json``, loadable without pickle or training code.

An export directory holds

- ``model.safetensors``: the codec's state dict (weights and persistent buffers), its header
  metadata naming the format and the ``codec_id``;
- ``config.json``: ``{"format": "codeclm.codec/1", "config": CodecConfig.to_dict(), "codec_id",
  "sample_rate", "channels", "frame_rate", "num_codebooks", "cardinality"}``.

:func:`load_export` rebuilds the codec from the config, loads the weights strictly and recomputes
the ``codec_id`` (a hash of weights and config): an export whose files were changed or mixed from
two exports is refused. :func:`load_checkpoint` reads a training checkpoint (``.ckpt``) with
``torch.load(..., weights_only=True)`` only: the codec's weights under the ``codec.`` prefix of
``state_dict`` and its config under ``codec_config``; everything else in it is training state.
"""

from __future__ import annotations

import json
import os
import pickle
import re
from pathlib import Path
from typing import Any, Mapping

import torch

from codec.codec import Codec, CodecConfig, build_codec
from codec.tokenizer import codec_id as compute_codec_id

EXPORT_FORMAT = "codeclm.codec/1"
WEIGHTS = "model.safetensors"
CONFIG = "config.json"
_EXPORT_HINT = "export a trained codec with `codeclm codec export CKPT DIR`"


def export_codec(codec: Codec, out_dir: str | Path) -> Path:
    """Write ``codec`` to ``out_dir`` (created if needed; an earlier export there is replaced).

    Each file is written to a hidden temporary name and renamed into place, weights first, so a
    reader sees whole files; a reader that catches the weights and config of two different exports
    in between is refused by the ``codec_id`` check. Returns ``out_dir``.
    """
    out = export_folder(out_dir)
    # Fresh, contiguous CPU copies: tied or shared tensors become independent (safetensors refuses
    # shared storage) and views are stored as themselves.
    state = {name: t.detach().to("cpu", copy=True).contiguous() for name, t in codec.state_dict().items()}
    config = codec.cfg.to_dict()
    ident = compute_codec_id(state, config)
    record = {
        "format": EXPORT_FORMAT, "config": config, "codec_id": ident, "sample_rate": int(codec.sample_rate),
        "channels": int(codec.channels), "frame_rate": float(codec.frame_rate),
        "num_codebooks": int(codec.num_codebooks), "cardinality": int(codec.cardinality),
    }
    return write_export(out, state, record, {"format": EXPORT_FORMAT, "codec_id": ident})


def write_export(out: Path, state: Mapping[str, torch.Tensor], record: Mapping[str, Any],
                 metadata: Mapping[str, str]) -> Path:
    """``state`` to ``out/model.safetensors`` (with ``metadata`` in its header) and ``record`` to
    ``out/config.json``, each through a hidden temporary name renamed into place, weights first."""
    from safetensors.torch import save_file

    tmp_weights, tmp_config = out / f".{WEIGHTS}.tmp", out / f".{CONFIG}.tmp"
    try:
        save_file(dict(state), str(tmp_weights), metadata=dict(metadata))
        tmp_config.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
        for tmp in (tmp_weights, tmp_config):
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
        os.replace(tmp_weights, out / WEIGHTS)
        os.replace(tmp_config, out / CONFIG)
    finally:
        tmp_weights.unlink(missing_ok=True)
        tmp_config.unlink(missing_ok=True)
    return out


def export_folder(out_dir: str | Path) -> Path:
    """``out_dir``, created if needed; a file there is refused."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} is a file, not a directory: choose another export directory")
    out.mkdir(parents=True, exist_ok=True)
    return out


def read_weights(weights: Path, fix: str) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    """The header metadata and tensors of a safetensors file; errors say ``fix``."""
    from safetensors import safe_open

    if not weights.is_file():
        raise FileNotFoundError(f"{weights.parent} holds no {weights.name}: {fix}")
    try:
        with safe_open(str(weights), framework="pt", device="cpu") as f:
            return (f.metadata() or {}), {name: f.get_tensor(name) for name in f.keys()}
    except Exception as e:  # safetensors reports a bad header or a short file in its own words
        raise ValueError(f"{weights} is not a readable safetensors file ({_first_line(e)}): {fix}") from None


def read_training_checkpoint(path: Path, producer: str) -> dict[str, Any]:
    """A ``.ckpt`` read with ``weights_only=True``: tensors and plain data only; anything else is
    refused with one message (``producer`` names the command that writes such checkpoints)."""
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found: pass the .ckpt written by `{producer}`")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        found = re.search(r"(?:Unsupported global: GLOBAL|unsupported GLOBAL) (\S+)", str(e))
        if found:
            raise ValueError(f"{path}: refused: it holds the Python object {found.group(1)}, not only tensors and "
                             f"plain data, and loading it could run code; use a checkpoint written by "
                             f"`{producer}` or an export directory") from None
        raise ValueError(f"{path} is not a PyTorch checkpoint (corrupt or another format)") from None
    except Exception as e:
        raise ValueError(f"{path} is not a readable PyTorch checkpoint "
                         f"({type(e).__name__}: {_first_line(e)})") from None
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), Mapping):
        raise ValueError(f"{path} is not a training checkpoint (no 'state_dict'): pass the .ckpt written by "
                         f"`{producer}`")
    return ckpt


def read_export_config(out_dir: str | Path) -> dict[str, Any]:
    """The checked ``config.json`` of an export directory."""
    out = Path(out_dir)
    if not out.is_dir():
        raise FileNotFoundError(f"no codec export at {out}: {_EXPORT_HINT}")
    path = out / CONFIG
    if not path.is_file():
        raise FileNotFoundError(f"{out} holds no {CONFIG}, so it is not a codec export: {_EXPORT_HINT}")
    try:
        record = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path} is not valid JSON ({e}): re-export the codec") from None
    if not isinstance(record, dict) or record.get("format") != EXPORT_FORMAT:
        found = record.get("format") if isinstance(record, dict) else type(record).__name__
        raise ValueError(f"{path} has format {found!r}, not {EXPORT_FORMAT!r}: it is not a codeclm codec export; "
                         f"{_EXPORT_HINT}")
    for key in ("config", "codec_id"):
        if key not in record:
            raise ValueError(f"{path} has no {key!r} entry: re-export the codec")
    return record


def load_export(out_dir: str | Path, device: str | torch.device = "cpu") -> Codec:
    """The codec saved by :func:`export_codec`, in eval mode on ``device``."""
    out = Path(out_dir)
    record = read_export_config(out)
    cfg = _config_from(record["config"], out / CONFIG)
    weights = out / WEIGHTS
    meta, state = read_weights(weights, f"re-export the codec ({_EXPORT_HINT})")
    if meta.get("codec_id") not in (None, record["codec_id"]):
        raise ValueError(f"{weights} belongs to codec {meta['codec_id']} but {out / CONFIG} describes codec "
                         f"{record['codec_id']}: the two files come from different exports; re-export the codec")
    codec = _codec_from_state(cfg, state, weights)
    if codec.codec_id != record["codec_id"]:
        raise ValueError(f"{out}: its weights and config hash to codec_id {codec.codec_id}, but the export "
                         f"recorded {record['codec_id']}: the export was modified after it was written; "
                         "re-export the codec from its checkpoint")
    return codec.to(device)


def load_checkpoint(ckpt_path: str | Path) -> Codec:
    """The codec inside a training checkpoint, on the CPU, in eval mode."""
    path = Path(ckpt_path)
    ckpt = read_training_checkpoint(path, "codeclm codec fit")
    if not isinstance(ckpt.get("codec_config"), Mapping):
        raise ValueError(f"{path} has no 'codec_config': it is not a codec checkpoint; pass the .ckpt written by "
                         "`codeclm codec fit`")
    cfg = _config_from(ckpt["codec_config"], path)
    prefix = "codec."
    state = {k[len(prefix):]: v for k, v in ckpt["state_dict"].items() if isinstance(k, str) and k.startswith(prefix)}
    if not state:
        raise ValueError(f"{path} holds no weights under '{prefix}' in its state_dict: it is not a codec checkpoint")
    return _codec_from_state(cfg, state, path)


def export_from_checkpoint(ckpt_path: str | Path, out_dir: str | Path) -> Path:
    """Export the codec of a training checkpoint; returns ``out_dir``."""
    return export_codec(load_checkpoint(ckpt_path), out_dir)


def _config_from(d: Any, where: Path) -> CodecConfig:
    try:
        return CodecConfig.from_dict(d)
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{where}: the codec config is not valid ({type(e).__name__}: {_first_line(e)}); "
                         "re-export the codec from its checkpoint") from None


def _codec_from_state(cfg: CodecConfig, state: Mapping[str, Any], where: Path) -> Codec:
    """Build the codec of ``cfg`` and load ``state`` into it strictly; errors name ``where``."""
    codec = build_codec(cfg)
    expected = codec.state_dict()
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ValueError(f"{where}: the weights do not fit the codec its config describes: {len(missing)} missing "
                         f"(e.g. {missing[:2]}), {len(unexpected)} unexpected (e.g. {unexpected[:2]}); "
                         "re-export the codec from its checkpoint")
    for name, want in expected.items():
        got = state[name]
        if not isinstance(got, torch.Tensor) or tuple(got.shape) != tuple(want.shape):
            shape = tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__
            raise ValueError(f"{where}: {name} has shape {shape} but the config needs {tuple(want.shape)}; "
                             "re-export the codec from its checkpoint")
    codec.load_state_dict(state, strict=True)
    codec.refresh_codec_id()
    return codec.eval()


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:200] if text else "no details"
