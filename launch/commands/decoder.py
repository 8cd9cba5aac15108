"""``codeclm decoder ...``: train a second decoder on a frozen codec's tokens (``fit``) and
export it (``export``). Every command that decodes takes the export as ``--decoder DIR``.

    codeclm decoder fit --config configs/decoder/vocos-tiny.yaml --codec runs/quickstart/codec/export \\
        [--data.shards DIR] [--trainer.max_steps N] [--ckpt_path last]
    codeclm decoder export runs/quickstart/decoder/checkpoints/last.ckpt runs/quickstart/decoder/export [--steps N]
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    sub.add_parser("fit", add_help=False,
                   help="train a decoder on a frozen codec's tokens (LightningCLI: --config YAML, --codec SPEC, "
                        "any option on the command line, --ckpt_path to resume)")
    p = sub.add_parser("export", help="export a decoder checkpoint as model.safetensors + config.json")
    p.add_argument("ckpt", help="training checkpoint (.ckpt) written by `codeclm decoder fit`")
    p.add_argument("out_dir", help="export directory (created; an earlier export there is replaced)")
    p.add_argument("--steps", type=int, default=None,
                   help="Euler steps a flow decoder samples with (default: its config's decoder.flow.steps; "
                        "e.g. the model.gan_steps its sampler was fine-tuned at)")
    p.set_defaults(func=cmd_export)


def cmd_export(a: argparse.Namespace) -> None:
    from codec.decoder.export import export_decoder_checkpoint, load_decoder

    out = export_decoder_checkpoint(a.ckpt, a.out_dir, a.steps)
    decoder = load_decoder(out)
    params = sum(p.numel() for p in decoder.parameters())
    steps = f" sampling in {decoder.cfg.flow.steps} steps" if decoder.cfg.head == "flow" else ""
    print(f"{out}: {decoder.cfg.head} decoder{steps}, {params / 1e6:.2f}M parameters, for codec {decoder.codec_id} "
          f"(1..{decoder.num_codebooks} codebooks, {decoder.sample_rate} Hz)")
