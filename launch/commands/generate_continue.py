"""``codeclm generate continue``: continue a speech prompt with AudioLM's stages.

    codeclm generate continue --prompt a.wav --seconds 10 --out b.wav \\
        [--models DIR | --codec SPEC --coarse CKPT --fine CKPT [--semantic CKPT --semantic-model DIR]] \\
        [--temperature 1.0 --top-k 50 --top-p 0.95 --seed 0]

With ``--semantic`` (and the ``--semantic-model`` that labelled its training shards) the prompt's
units are continued first and the coarse stage follows them; without, the coarse stage continues
the codec tokens alone (it must be trained with ``semantic_prefix: false``). Each stage is rebuilt
from the ``config.yaml`` LightningCLI saved in its run's log directory (found upward from the
checkpoint) or from ``--coarse-config`` / ``--fine-config`` / ``--semantic-config``. The output holds
the prompt followed by the continuation.

``--stack FILE`` names the stage stack in one YAML file instead (keys ``codec``, ``semantic``,
``semantic_model``, ``coarse``, ``fine`` and the ``*_config`` ones; relative paths are relative to
the file); options on the command line win over it. ``--models DIR`` (a ``codeclm quickstart``
run folder, default ``runs/quickstart`` when it exists) supplies what neither gives, the semantic
pair included when the coarse stage comes from it (see ``launch/run_layout.py``)::

    codec: ../codec/export
    semantic: semantic/run/checkpoints/last.ckpt
    semantic_model: ../semantic
    coarse: coarse/run/checkpoints/last.ckpt
    fine: fine/run/checkpoints/last.ckpt
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from launch.commands.codec import decoder_arg
from launch.commands.stream_out import add_stream_args
from launch.run_layout import add_models_option, resolve_continue


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("continue", help="continue a prompt wav through semantic -> coarse -> fine stages")
    add_models_option(p)
    stage_args(p)
    p.add_argument("--prompt", required=True, help="prompt audio file")
    p.add_argument("--seconds", type=float, default=10.0, help="seconds of audio to add after the prompt")
    p.add_argument("--out", required=True, help="output wav (with --stream also -: raw s16le PCM on stdout)")
    add_stream_args(p, "audio")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top-k", type=int, default=None)
    p.add_argument("--top-p", type=float, default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.set_defaults(func=run)


STACK_KEYS = ("codec", "semantic", "semantic_model", "coarse", "fine", "coarse_config", "fine_config",
              "semantic_config")


def stage_args(p: argparse.ArgumentParser) -> None:
    """The stage-stack options, shared by ``generate continue`` and ``eval continue``."""
    p.add_argument("--stack", default=None, metavar="YAML", help="the stage stack in one file (see the module doc)")
    p.add_argument("--codec", help="codec spec: export dir, .ckpt, or encodec24k")
    decoder_arg(p)
    stage_checkpoint_args(p)


def stage_checkpoint_args(p) -> None:
    """The stage checkpoints and their run configs (also the demo's continuation options)."""
    p.add_argument("--coarse", help="coarse stage checkpoint (.ckpt of `codeclm lm fit`)")
    p.add_argument("--fine", help="fine stage checkpoint")
    p.add_argument("--semantic", help="semantic stage checkpoint (needs --semantic-model)")
    p.add_argument("--semantic-model", help="semantic unit model directory (`codeclm semantic fit`)")
    for stage in ("coarse", "fine", "semantic"):
        p.add_argument(f"--{stage}-config", help=f"config.yaml of the {stage} run (default: found beside the checkpoint)")


def apply_stack(args: argparse.Namespace, require: bool = True) -> argparse.Namespace:
    """Fill the stage options the command line left out from ``--stack``; check the required ones
    (unless ``require`` is False)."""
    if getattr(args, "stack", None):
        import yaml

        path = Path(args.stack)
        if not path.is_file():
            raise FileNotFoundError(f"no stack file at {path}")
        stack = yaml.safe_load(path.read_text()) or {}
        if not isinstance(stack, dict):
            raise ValueError(f"{path} must be a mapping of {', '.join(STACK_KEYS)}")
        unknown = sorted(set(stack) - set(STACK_KEYS))
        if unknown:
            raise ValueError(f"{path}: unknown key {unknown[0]!r}; the keys are {', '.join(STACK_KEYS)}")
        for key, value in stack.items():
            if getattr(args, key, None) is None and value is not None:
                value = str(value)
                local = path.parent / value
                is_path = key != "codec" or not value.lower().startswith("encodec")
                setattr(args, key, str(local) if is_path and not Path(value).is_absolute() else value)
    missing = [k for k in ("codec", "coarse", "fine") if getattr(args, k, None) is None]
    if missing and require:
        raise ValueError(f"give --{missing[0]} (or {missing[0]}: in a --stack file)")
    return args


def find_run_config(ckpt: Path) -> Path:
    """The ``config.yaml`` nearest above ``ckpt`` (LightningCLI writes it to the run's log dir)."""
    for folder in ckpt.resolve().parents:
        for candidate in (folder / "config.yaml", *sorted(folder.glob("*/config.yaml"))):
            if candidate.is_file():
                return candidate
    raise FileNotFoundError(f"no config.yaml found above {ckpt}: pass the run's config with --STAGE-config")


def load_stage(ckpt: str, config: str | None, device: torch.device) -> torch.nn.Module:
    """The stage model of an ``LMModule`` checkpoint, rebuilt from its run config, in eval mode."""
    import yaml
    from jsonargparse import ArgumentParser

    from audiolm.lightning_module import LMModule

    ckpt_path = Path(ckpt)
    if not ckpt_path.is_file():
        raise FileNotFoundError(f"no checkpoint at {ckpt_path}")
    cfg_path = Path(config) if config else find_run_config(ckpt_path)
    section = (yaml.safe_load(cfg_path.read_text()) or {}).get("model")
    if not isinstance(section, dict) or "model" not in section:
        raise ValueError(f"{cfg_path} has no model.model section: is it the config.yaml of a `codeclm lm fit` run?")
    parser = ArgumentParser(exit_on_error=False)
    parser.add_class_arguments(LMModule, "lm")
    lm = parser.instantiate_classes(parser.parse_object({"lm": section})).lm
    try:
        state = torch.load(ckpt_path, map_location="cpu", weights_only=True)["state_dict"]
    except Exception as e:  # a user's file: one clear line, not a traceback
        raise ValueError(f"{ckpt_path} is not a readable `codeclm lm fit` checkpoint ({type(e).__name__}: {e})") from None
    weights = {k[len("model."):]: v for k, v in state.items() if k.startswith("model.")}
    missing, unexpected = lm.model.load_state_dict(weights, strict=False)
    if missing or unexpected:
        raise ValueError(f"{ckpt_path} does not fit the model of {cfg_path} (missing {missing[:3]}, "
                         f"unexpected {unexpected[:3]}): give the config of the run that wrote it")
    return lm.model.to(device).eval()


@dataclass
class ContinueModels:
    """Loaded AudioLM stages and their codec; ``semantic``/``unit_model`` are None for the
    codec-only path."""

    tokenizer: Any
    coarse: torch.nn.Module
    fine: torch.nn.Module
    semantic: torch.nn.Module | None
    unit_model: Any
    device: torch.device


def load_continue_models(codec: str, coarse: str, fine: str, semantic: str | None = None,
                         semantic_model: str | None = None, coarse_config: str | None = None,
                         fine_config: str | None = None, semantic_config: str | None = None,
                         device: str | None = None, decoder: str | None = None) -> ContinueModels:
    """Load the codec and the stages of ``codeclm generate continue``."""
    from codec.load import load_tokenizer

    if bool(semantic) != bool(semantic_model):
        raise ValueError("--semantic and --semantic-model go together: give both or neither")
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    tokenizer = load_tokenizer(codec, device=dev, decoder=decoder)
    coarse_lm = load_stage(coarse, coarse_config, dev)
    fine_lm = load_stage(fine, fine_config, dev)
    semantic_lm = unit_model = None
    if semantic:
        from data.semantic import SemanticModel

        semantic_lm = load_stage(semantic, semantic_config, dev)
        unit_model = SemanticModel.load(semantic_model)
    return ContinueModels(tokenizer, coarse_lm, fine_lm, semantic_lm, unit_model, dev)


def _prompt_codes(models: ContinueModels, wav: torch.Tensor, sr: int, seconds: float):
    from data.audio import resample, to_channels

    tokenizer, fine, device = models.tokenizer, models.fine, models.device
    audio = to_channels(resample(wav, sr, tokenizer.sample_rate), tokenizer.channels)
    with torch.no_grad():
        codes = tokenizer.encode(audio[None].to(device))[0]  # [K, Tp]
    k = fine.cfg.num_codebooks
    if codes.shape[0] < k:
        raise ValueError(f"the codec gives {codes.shape[0]} codebooks, the fine model needs {k}: "
                         "use the codec the token shards were made with")
    return codes[:k], max(1, round(seconds * float(tokenizer.frame_rate)))


def _units(models: ContinueModels, wav: torch.Tensor, sr: int):
    """The prompt's semantic units and units per codec frame (None, None for the codec-only path)."""
    if models.semantic is None:
        return None, None
    units = models.unit_model.units(wav, sr).to(models.device)  # [Sp]
    return units, float(models.unit_model.frame_rate) / float(models.tokenizer.frame_rate)


def continue_speech(models: ContinueModels, wav: torch.Tensor, sr: int, seconds: float, sampling,
                    on_stage: Callable[[str], None] | None = None) -> tuple[torch.Tensor, int, int]:
    """Prompt audio ``wav [C, T]`` at ``sr`` -> (``[C, T']`` the prompt and its continuation at the
    codec's rate, prompt frames, new frames). ``on_stage`` hears "encode", "generate" and
    "decode" as each begins."""
    from audiolm.models.audiolm_generate import continue_codes, continue_stack

    tokenizer, coarse, fine, device = models.tokenizer, models.coarse, models.fine, models.device
    stage = on_stage or (lambda name: None)
    stage("encode")
    codes, frames = _prompt_codes(models, wav, sr, seconds)
    stage("generate")
    units, rate = _units(models, wav, sr)
    if units is not None:
        out = continue_stack(models.semantic, coarse, fine, units, codes, frames, sampling, units_per_frame=rate)
    else:
        out = continue_codes(coarse, fine, codes, frames, sampling)
    stage("decode")
    with torch.no_grad():
        result = tokenizer.decode(out[None].to(device))[0].float().cpu()  # [C, T]
    return result, int(codes.shape[-1]), frames


def stream_continuation(models: ContinueModels, wav: torch.Tensor, sr: int, seconds: float, sampling, writer,
                        chunk_frames: int = 25) -> tuple[int, int]:
    """:func:`continue_speech`, writing to ``writer`` (a
    :class:`~launch.commands.stream_out.StreamWriter`) as it goes: the prompt's reconstruction at
    once, then each ``chunk_frames`` of continuation as the fine stage fills it. Returns (prompt
    frames, new frames)."""
    from audiolm.models.audiolm_generate import continue_stream
    from launch.commands.stream_out import ChunkDecoder

    codes, frames = _prompt_codes(models, wav, sr, seconds)
    units, rate = _units(models, wav, sr)
    decoder = ChunkDecoder(models.tokenizer)
    with torch.no_grad():
        writer.write(decoder.decode(codes))
        for chunk in continue_stream(models.coarse, models.fine, codes, frames, sampling, semantic_lm=models.semantic,
                                     prompt_semantic=units, units_per_frame=rate, chunk_frames=chunk_frames):
            writer.write(decoder.decode(chunk))
        writer.write(decoder.finish())
    return int(codes.shape[-1]), frames


def run(args: argparse.Namespace) -> int:
    import soundfile as sf

    from audiolm.sampling import SamplingConfig
    from data.audio import read_audio

    apply_stack(args, require=False)
    resolve_continue(args, ", a --stack file")
    if bool(args.semantic) != bool(args.semantic_model):
        raise ValueError("--semantic and --semantic-model go together: give both or neither")
    if args.seconds <= 0:
        raise ValueError(f"--seconds must be > 0, got {args.seconds}")
    sampling = SamplingConfig(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, seed=args.seed)
    wav_np, sr = read_audio(args.prompt)  # a bad prompt file is one message, before any model loads
    models = load_continue_models(args.codec, args.coarse, args.fine, args.semantic, args.semantic_model,
                                  args.coarse_config, args.fine_config, args.semantic_config, args.device,
                                  decoder=args.decoder)
    if args.stream:
        return _run_stream(args, models, torch.from_numpy(wav_np), sr, sampling)
    if args.out == "-":
        raise ValueError("writing PCM to stdout (--out -) needs --stream")
    result, prompt_frames, frames = continue_speech(models, torch.from_numpy(wav_np), sr, args.seconds, sampling)
    tokenizer = models.tokenizer
    out_path = Path(args.out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(out_path), result.clamp(-1, 1).T.numpy(), int(tokenizer.sample_rate))
    print(f"wrote {out_path}: {result.shape[-1] / tokenizer.sample_rate:.2f} s "
          f"({prompt_frames} prompt + {frames} new frames)")
    return 0


def _run_stream(args: argparse.Namespace, models: ContinueModels, wav: torch.Tensor, sr: int, sampling) -> int:
    import sys

    from launch.commands.stream_out import ChunkDecoder, StreamWriter

    if args.chunk_frames < 1:
        raise ValueError(f"--chunk-frames must be >= 1, got {args.chunk_frames}")
    tokenizer = models.tokenizer
    say = (lambda *x: print(*x, file=sys.stderr)) if args.out == "-" else print
    say(f"streaming {args.chunk_frames}-frame chunks; the codec's decoder adds "
        f"{ChunkDecoder(tokenizer).latency_ms:.0f} ms of lookahead")
    writer = StreamWriter(args.out, int(tokenizer.sample_rate), int(tokenizer.channels))
    ok = False
    try:
        prompt_frames, frames = stream_continuation(models, wav, sr, args.seconds, sampling, writer, args.chunk_frames)
        ok = writer.samples > 0
    finally:
        writer.close(ok)
    say(f"wrote {args.out}: {writer.seconds:.2f} s ({prompt_frames} prompt + {frames} new frames)")
    say(writer.summary())
    return 0
