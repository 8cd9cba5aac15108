"""``codeclm decoder fit``: train a second decoder (:mod:`codec.decoder`) with LightningCLI.

Options as ``codec fit`` takes them (``--config``, ``--data.*``, ``--trainer.*``, ``--model.*``,
``--ckpt_path``); ``--codec SPEC`` is short for ``--model.codec SPEC``, the frozen codec whose
tokens the decoder learns to read. On more than one process it trains with the codec's GAN-aware
DDP (:class:`codec.ddp.GANDDPStrategy`).
"""

from __future__ import annotations

import os
import sys


def expand_codec_option(argv: list[str]) -> list[str]:
    """``--codec X`` / ``--codec=X`` -> ``--model.codec X``."""
    out: list[str] = []
    for arg in argv:
        if arg == "--codec":
            out.append("--model.codec")
        elif arg.startswith("--codec="):
            out.append("--model.codec=" + arg.split("=", 1)[1])
        else:
            out.append(arg)
    return out


def run(argv: list[str]) -> int:
    from codec.decoder.lightning_module import DecoderModule
    from data.datamodule import AudioDataModule
    from launch.commands.codec_fit import codec_cli
    from launch.lightning_cli import run_fit

    try:
        return run_fit(DecoderModule, AudioDataModule, expand_codec_option(argv), cli_class=codec_cli())
    except (ValueError, FileNotFoundError) as e:  # the frozen codec could not be read, or does not fit
        if os.environ.get("CODECLM_DEBUG"):
            raise
        print(f"codeclm: error: {e}", file=sys.stderr)
        return 2
