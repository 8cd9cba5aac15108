"""Exported second decoders: ``model.safetensors`` + ``config.json``, as codecs are exported.

``config.json``: ``{"format": "codeclm.decoder/1", "config": DecoderConfig.to_dict(), "codec":
{sample_rate, channels, hop_length, dimension, num_codebooks, cardinality}, "codec_id", "codec_spec",
"decoder_id"}``. ``codec_id`` names the codec whose tokens the decoder reads: decoding another
codec's tokens with it is refused (:mod:`codec.decoder.tokenizer`). ``decoder_id`` hashes the
decoder's own weights and config: files changed or mixed after the export are refused.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import torch

from codec.decoder.model import CodecShape, DecoderConfig, TokenDecoder
from codec.export import CONFIG, WEIGHTS, export_folder, read_training_checkpoint, read_weights, write_export
from codec.tokenizer import codec_id as content_hash

DECODER_FORMAT = "codeclm.decoder/1"
_HINT = "export a trained decoder with `codeclm decoder export CKPT DIR`"


def export_decoder(decoder: TokenDecoder, codec_id: str, out_dir: str | Path, codec_spec: str = "") -> Path:
    """Write ``decoder`` (trained on the tokens of codec ``codec_id``) to ``out_dir``."""
    out = export_folder(out_dir)
    state = {name: t.detach().to("cpu", copy=True).contiguous() for name, t in decoder.state_dict().items()}
    config = decoder.cfg.to_dict()
    ident = content_hash(state, {"config": config, "codec": vars(decoder.shape)})
    record = {"format": DECODER_FORMAT, "config": config, "codec": dict(vars(decoder.shape)), "codec_id": codec_id,
              "codec_spec": codec_spec, "decoder_id": ident}
    return write_export(out, state, record, {"format": DECODER_FORMAT, "decoder_id": ident, "codec_id": codec_id})


def _build(record: Mapping[str, Any], state: Mapping[str, Any], where: Path) -> TokenDecoder:
    try:
        decoder = TokenDecoder(DecoderConfig.from_dict(record["config"]), CodecShape(**record["codec"]))
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{where}: the decoder config is not valid ({type(e).__name__}: {e}); {_HINT}") from None
    expected = decoder.state_dict()
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    bad = [n for n in expected if n in state and tuple(state[n].shape) != tuple(expected[n].shape)]
    if missing or unexpected or bad:
        raise ValueError(f"{where}: the weights do not fit the decoder its config describes ({len(missing)} missing, "
                         f"{len(unexpected)} unexpected, {len(bad)} of another shape); {_HINT}")
    decoder.load_state_dict(dict(state), strict=True)
    decoder.codec_id = str(record["codec_id"])
    decoder.codec_spec = str(record.get("codec_spec") or "")
    return decoder.eval()


def read_decoder_config(out_dir: str | Path) -> dict[str, Any]:
    out = Path(out_dir)
    path = out / CONFIG
    if not out.is_dir() or not path.is_file():
        raise FileNotFoundError(f"no decoder export at {out}: {_HINT}")
    try:
        record = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path} is not valid JSON ({e}): {_HINT}") from None
    if not isinstance(record, dict) or record.get("format") != DECODER_FORMAT:
        found = record.get("format") if isinstance(record, dict) else type(record).__name__
        raise ValueError(f"{path} has format {found!r}, not {DECODER_FORMAT!r}: it is not a codeclm decoder export "
                         f"({'a codec export: pass it as --codec' if found == 'codeclm.codec/1' else _HINT})")
    for key in ("config", "codec", "codec_id", "decoder_id"):
        if key not in record:
            raise ValueError(f"{path} has no {key!r} entry: {_HINT}")
    return record


def load_decoder(spec: str | Path, device: str | torch.device = "cpu") -> TokenDecoder:
    """The decoder of an export directory or of a ``codeclm decoder fit`` checkpoint (``.ckpt``), in
    eval mode on ``device``, with ``codec_id`` set to the codec whose tokens it reads."""
    path = Path(spec).expanduser()
    if path.suffix.lower() == ".ckpt":
        return load_decoder_checkpoint(path).to(device)
    record = read_decoder_config(path)
    meta, state = read_weights(path / WEIGHTS, _HINT)
    if meta.get("decoder_id") not in (None, record["decoder_id"]):
        raise ValueError(f"{path / WEIGHTS} and {path / CONFIG} come from different exports: {_HINT}")
    decoder = _build(record, state, path)
    ident = content_hash(decoder.state_dict(), {"config": record["config"], "codec": record["codec"]})
    if ident != record["decoder_id"]:
        raise ValueError(f"{path}: its weights and config hash to {ident}, but the export recorded "
                         f"{record['decoder_id']}: the export was modified after it was written; {_HINT}")
    return decoder.to(device)


def load_decoder_checkpoint(path: Path) -> TokenDecoder:
    ckpt = read_training_checkpoint(path, "codeclm decoder fit")
    record = ckpt.get("decoder_record")
    if not isinstance(record, Mapping):
        raise ValueError(f"{path} has no 'decoder_record': it is not a decoder checkpoint; pass the .ckpt written "
                         "by `codeclm decoder fit`")
    prefix = "decoder."
    state = {k[len(prefix):]: v for k, v in ckpt["state_dict"].items() if isinstance(k, str) and k.startswith(prefix)}
    return _build(record, state, path)


def export_decoder_checkpoint(ckpt_path: str | Path, out_dir: str | Path, steps: int | None = None) -> Path:
    """Export the decoder of a training checkpoint. ``steps``: the Euler steps a ``flow`` decoder
    decodes with (default: its config's ``flow.steps``), e.g. the ``gan_steps`` its sampler was
    fine-tuned at; recorded in the export and covered by its ``decoder_id``."""
    decoder = load_decoder_checkpoint(Path(ckpt_path))
    if steps is not None:
        if decoder.cfg.head != "flow":
            raise ValueError(f"{ckpt_path}: --steps sets a flow decoder's sampling steps; this is an "
                             f"{decoder.cfg.head} decoder (one step by construction)")
        if steps < 1:
            raise ValueError(f"--steps must be at least 1, got {steps}")
        decoder.cfg.flow.steps = steps  # the network's FlowConfig is this very object
    return export_decoder(decoder, decoder.codec_id, out_dir, decoder.codec_spec)
