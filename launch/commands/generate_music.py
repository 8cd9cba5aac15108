"""``codeclm generate music``: text to music with a trained MusicGen-style LM and its codec.

    codeclm generate music --codec SPEC --lm CKPT --text "solo piano, slow" --seconds 10 --out m.wav
        [--text-model spm.model] [--lm-config config.yaml] [--cfg-scale 3] [--temperature 1]
        [--top-k 250] [--top-p P] [--seed N] [--device cuda]

The model is rebuilt from the ``config.yaml`` LightningCLI saved in the run's log directory (found
by searching upward from the checkpoint), or from ``--lm-config``; the text model defaults to
that config's ``data.text_model``. Weights load without pickle (``weights_only=True``).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from launch.commands.codec import decoder_arg
from launch.commands.stream_out import add_stream_args

log = logging.getLogger("codeclm.generate")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("music", help="generate music from a text description (MusicGen-style LM)",
                       description="Generate music from text with a MusicGen-style LM and decode it with its codec.")
    p.add_argument("--codec", required=True, metavar="SPEC",
                   help="the codec the LM was trained on: export dir, codec .ckpt, or encodec24k/encodec48k")
    decoder_arg(p)
    p.add_argument("--lm", required=True, metavar="CKPT", help="LM checkpoint (.ckpt from `codeclm lm fit`)")
    p.add_argument("--lm-config", default=None, metavar="YAML",
                   help="the run's config.yaml (default: found upward from the checkpoint)")
    p.add_argument("--text", required=True, help='the description, e.g. "solo piano, slow"')
    p.add_argument("--text-model", default=None, metavar="SPM",
                   help="sentencepiece .model (default: data.text_model of the run's config)")
    p.add_argument("--seconds", type=float, default=10.0, help="length of the music (default 10)")
    p.add_argument("--out", required=True, help="wav file to write (with --stream also -: raw s16le PCM on stdout)")
    add_stream_args(p, "music")
    p.add_argument("--cfg-scale", type=float, default=3.0, help="classifier-free guidance scale (1 = off; default 3)")
    p.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (0 = greedy; default 1)")
    p.add_argument("--top-k", type=int, default=250, help="keep the k likeliest codes (default 250)")
    p.add_argument("--top-p", type=float, default=None, help="nucleus sampling mass (default off)")
    p.add_argument("--seed", type=int, default=None, help="make the result repeatable")
    p.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    p.set_defaults(func=run)


def find_run_config(ckpt: Path) -> Path:
    """The ``config.yaml`` nearest above ``ckpt`` (LightningCLI writes it in the log directory)."""
    for folder in ckpt.resolve().parents:
        candidate = folder / "config.yaml"
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"no config.yaml found above {ckpt}: pass the run's config with --lm-config")


def load_run_config(path: Path) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise ValueError(f"{path}: cannot read the run config ({e})") from None
    if not isinstance(data, dict) or not isinstance(data.get("model"), dict):
        raise ValueError(f"{path}: not a `codeclm lm fit` config (no model section)")
    return data


def build_model(config: dict[str, Any], path: Path):
    """The MusicGen described by a run config's ``model.model``."""
    from audiolm.models.musicgen import MusicGen, MusicGenConfig

    spec = config["model"].get("model") or {}
    class_path = spec.get("class_path", "") if isinstance(spec, dict) else ""
    if class_path.rsplit(".", 1)[-1] != "MusicGen":
        raise ValueError(f"{path}: model.model is {class_path or 'missing'}, not a MusicGen: "
                         "`generate music` needs a run of configs/lm/musicgen-*.yaml")
    fields = (spec.get("init_args") or {}).get("cfg") or {}
    try:
        return MusicGen(MusicGenConfig(**fields))
    except TypeError as e:
        raise ValueError(f"{path}: model.model.init_args.cfg does not fit MusicGenConfig ({e})") from None


def load_weights(model, ckpt: Path) -> None:
    """Load the ``model.``-prefixed weights of a Lightning checkpoint into ``model`` (no pickle)."""
    import pickle

    import torch

    if not ckpt.is_file():
        raise FileNotFoundError(f"no LM checkpoint at {ckpt}")
    try:
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as e:
        raise ValueError(f"{ckpt}: cannot read the checkpoint without pickle ({str(e).splitlines()[0]})") from None
    weights = {k[len("model."):]: v for k, v in state.get("state_dict", {}).items() if k.startswith("model.")}
    if not weights:
        raise ValueError(f"{ckpt}: no model weights (is it a `codeclm lm fit` checkpoint?)")
    missing, unexpected = model.load_state_dict(weights, strict=False)
    if missing or unexpected:
        raise ValueError(f"{ckpt} does not match the config's model: missing {sorted(missing)[:3]}, "
                         f"unexpected {sorted(unexpected)[:3]}: is --lm-config the run's own config?")


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import soundfile as sf
    import torch

    from audiolm.models.musicgen_generate import generate_music
    from audiolm.sampling import SamplingConfig
    from codec.load import load_tokenizer
    from data.text import SpmTokenizer

    if args.seconds <= 0:
        raise ValueError(f"--seconds must be > 0, got {args.seconds}")
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    ckpt = Path(args.lm)
    config_path = Path(args.lm_config) if args.lm_config else find_run_config(ckpt)
    config = load_run_config(config_path)
    model = build_model(config, config_path)
    load_weights(model, ckpt)
    model.to(device).eval()

    text_model = args.text_model or ((config.get("data") or {}).get("text_model"))
    if not text_model:
        raise ValueError(f"{config_path} names no data.text_model: pass --text-model spm.model")
    pieces = SpmTokenizer(text_model)
    if pieces.vocab_size > model.cfg.text_vocab:
        raise ValueError(f"{text_model} has {pieces.vocab_size} pieces but the LM's text_vocab is "
                         f"{model.cfg.text_vocab}: pass the sentencepiece model the LM was trained with")
    ids = pieces(args.text)[: model.cfg.max_text_len]

    tokenizer = load_tokenizer(args.codec, device=device, decoder=args.decoder)
    if tokenizer.cardinality != model.cfg.cardinality or tokenizer.num_codebooks < model.cfg.num_codebooks:
        raise ValueError(f"codec {args.codec} ({tokenizer.num_codebooks} codebooks x {tokenizer.cardinality}) "
                         f"does not fit the LM ({model.cfg.num_codebooks} x {model.cfg.cardinality}): "
                         "pass the codec the LM's token shards were made with")
    frames = max(1, round(args.seconds * tokenizer.frame_rate))
    if frames > model.cfg.max_frames:
        print(f"{args.seconds:g} s is {frames} frames, past the LM's context of {model.cfg.max_frames} "
              f"({model.cfg.max_frames / tokenizer.frame_rate:.1f} s): the window slides")
    sampling = SamplingConfig(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                              cfg_scale=args.cfg_scale, seed=args.seed)
    if args.stream:
        return _run_stream(args, model, tokenizer, torch.tensor(ids, dtype=torch.long), frames, sampling)
    if args.out == "-":
        raise ValueError("writing PCM to stdout (--out -) needs --stream")
    codes = generate_music(model, torch.tensor(ids, dtype=torch.long), frames, sampling)  # [1, K, T]
    with torch.no_grad():
        wav = tokenizer.decode(codes.to(device))[0].float().cpu().numpy()  # [C, T]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(out), np.clip(wav, -1.0, 1.0).T, tokenizer.sample_rate, subtype="PCM_16")
    print(f"{out}: {wav.shape[-1] / tokenizer.sample_rate:.2f} s at {tokenizer.sample_rate} Hz from {frames} "
          f"frames x {model.cfg.num_codebooks} codebooks (cfg scale {args.cfg_scale})")
    return 0


def _run_stream(args: argparse.Namespace, model, tokenizer, ids, frames: int, sampling) -> int:
    import sys

    import torch

    from audiolm.models.musicgen_generate import music_stream
    from launch.commands.stream_out import ChunkDecoder, StreamWriter

    if args.chunk_frames < 1:
        raise ValueError(f"--chunk-frames must be >= 1, got {args.chunk_frames}")
    say = (lambda *x: print(*x, file=sys.stderr)) if args.out == "-" else print
    decoder = ChunkDecoder(tokenizer)
    say(f"streaming {args.chunk_frames}-frame chunks; the codec's decoder adds {decoder.latency_ms:.0f} ms of lookahead")
    writer = StreamWriter(args.out, int(tokenizer.sample_rate), int(tokenizer.channels))
    ok = False
    try:
        with torch.no_grad():
            for codes in music_stream(model, ids, frames, sampling, chunk_frames=args.chunk_frames):
                writer.write(decoder.decode(codes[0].to(next(model.parameters()).device)))
            writer.write(decoder.finish())
        ok = writer.samples > 0
    finally:
        writer.close(ok)
    say(f"{args.out}: {writer.seconds:.2f} s at {tokenizer.sample_rate} Hz from {frames} frames x "
        f"{model.cfg.num_codebooks} codebooks (cfg scale {args.cfg_scale})")
    say(writer.summary())
    return 0
