"""The ``codeclm`` console script: subcommands grouped by stage.

    codeclm data speech|music|shard|spm|info|voices ...
    codeclm codec fit|export|encode|decode|tokenize ...
    codeclm decoder fit|export ...
    codeclm semantic fit ...
    codeclm lm fit ...
    codeclm generate clone|continue|music ...
    codeclm eval codec|tts|continue|asr ...
    codeclm transcribe ...
    codeclm quickstart
    codeclm bench
    codeclm demo ...

Errors a user can cause end in one line (``codeclm: error: ...``); set ``CODECLM_DEBUG=1`` for
the full traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from launch.commands import bench as bench_cmd
from launch.commands import codec as codec_cmds
from launch.commands import data as data_cmds
from launch.commands import decoder as decoder_cmds
from launch.commands import eval as eval_cmds
from launch.commands import generate as generate_cmds
from launch.commands import lm as lm_cmds
from launch.commands import quickstart as quickstart_cmd
from launch.commands import semantic as semantic_cmds
from launch.commands import transcribe as transcribe_cmd
from launch.demo import command as demo_cmd

GROUPS = {
    "data": (data_cmds, "build corpora, shard audio, train text models"),
    "codec": (codec_cmds, "train, export and run codecs: fit, export, tokenize, encode, decode"),
    "decoder": (decoder_cmds, "train and export second decoders of a frozen codec's tokens: fit, export"),
    "semantic": (semantic_cmds, "learn semantic units (k-means over frame features)"),
    "lm": (lm_cmds, "train audio language models: fit"),
    "generate": (generate_cmds, "generate audio with trained models: clone, continue, music"),
    "eval": (eval_cmds, "measure codecs (beside Opus, Codec2, EnCodec), voice cloning / continuation and speech recognition"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="codeclm", description="Neural audio codecs and audio language models.")
    sub = parser.add_subparsers(dest="group", metavar="{data,codec,decoder,semantic,lm,generate,eval,quickstart,transcribe,bench,demo}", required=True)
    for name, (module, help_) in GROUPS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        module.register(p.add_subparsers(dest="command", required=True))
    quickstart_cmd.register(sub)
    transcribe_cmd.register(sub)
    bench_cmd.register(sub)
    demo_cmd.register(sub)
    return parser


USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError, PermissionError, RuntimeError, KeyError)


def _setup_logging() -> None:
    """codeclm's own messages at INFO on stderr; Lightning keeps its own handler."""
    log = logging.getLogger("codeclm")
    if not log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False


# Training commands hand their arguments to LightningCLI untouched.
FIT_COMMANDS = {("codec", "fit"): "launch.commands.codec_fit", ("decoder", "fit"): "launch.commands.decoder_fit",
                ("lm", "fit"): "launch.commands.lm_fit"}


def main(argv: list[str] | None = None) -> int:
    _setup_logging()
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bench"]:  # bench/run.py parses its own options
        from launch.commands import bench

        return bench.main(argv[1:])
    if tuple(argv[:2]) in FIT_COMMANDS:
        import importlib

        return importlib.import_module(FIT_COMMANDS[tuple(argv[:2])]).run(argv[2:])
    args = build_parser().parse_args(argv)
    try:
        result = args.func(args)
    except KeyboardInterrupt:
        print("codeclm: interrupted", file=sys.stderr)
        return 130
    except USER_ERRORS as e:
        if os.environ.get("CODECLM_DEBUG"):
            raise
        print(f"codeclm: error: {e}", file=sys.stderr)
        return 2
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
