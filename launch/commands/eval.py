"""``codeclm eval ...``: measure codecs and language models.

    codeclm eval codec --codec SPEC --audio DIR_OR_SHARDS [--bandwidths 1.5,3,6,12] [--max-clips N] [--out DIR]
    codeclm eval tts --codec SPEC --valle-ar AR.ckpt --valle-nar NAR.ckpt --prompts SHARDS [--out DIR]
    codeclm eval continue --codec SPEC --coarse C.ckpt --fine F.ckpt --prompts SHARDS [--out DIR]
    codeclm eval asr --model ASR.ckpt --codec SPEC --audio SHARDS [--judges whisper-tiny,pocketsphinx]

``eval codec`` compares the codec with Opus, Codec2 and EnCodec on the same clips (mel and STFT
distance, SI-SDR, PESQ, STOI, ViSQOL, codebook usage, and the WER of what ``--asr`` hears in each
reconstruction, beside the original's own WER) and writes ``results.json`` and ``report.html``
(spectrograms and audio players of a few examples) under ``--out``. Metrics whose package is
missing, and baselines whose tool is not installed, are n/a with the reason.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from launch.commands.asr_option import add_asr_argument


def _floats(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated kbps values like 1.5,3,6,12, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError("give at least one bandwidth")
    return values


def _names(text: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in text.split(",") if x.strip())


def register(sub: argparse._SubParsersAction) -> None:
    from launch.commands import eval_lm

    p = sub.add_parser("codec", help="codec quality beside Opus, Codec2 and EnCodec: table, JSON, HTML report")
    p.add_argument("--codec", required=True, metavar="SPEC",
                   help="export directory, training checkpoint (.ckpt), or encodec24k[:WEIGHTS]")
    p.add_argument("--decoder", action="append", default=[], metavar="[NAME=]DIR",
                   help="also decode the same tokens with this second decoder (`codeclm decoder export`); rows "
                        "ours+NAME (default NAME: the folder's name); repeatable")
    p.add_argument("--audio", required=True, help="a folder of audio files, a shard directory or a shard spec")
    p.add_argument("--bandwidths", type=_floats, default=(1.5, 3.0, 6.0, 12.0), metavar="KBPS,...",
                   help="target bitrates (default 1.5,3,6,12); the codec runs at the most codebooks that fit each")
    p.add_argument("--max-clips", type=int, default=20, help="clips measured (default 20)")
    p.add_argument("--clip-seconds", type=float, default=10.0, help="each clip is cut to this length (default 10)")
    p.add_argument("--out", default="runs/eval/codec", help="folder for results.json and report.html")
    p.add_argument("--examples", type=int, default=3, help="clips shown with audio and spectrograms (default 3)")
    p.add_argument("--encodec", default=None, metavar="SPEC",
                   help="EnCodec baseline: encodec24k:/path/to/encodec_24khz-d7cc33bc.th (default: the weights in "
                        "torch's hub cache when present; 'none' to leave it out)")
    p.add_argument("--no-opus", action="store_true", help="leave out the Opus baseline")
    p.add_argument("--no-codec2", action="store_true", help="leave out the Codec2 baseline")
    p.add_argument("--skip-metrics", type=_names, default=(), metavar="NAME,...",
                   help="metrics not to compute (mel, stft, si_sdr, pesq, stoi, visqol); --asr none leaves out WER")
    add_asr_argument(p, "the judge of the WER column (it hears every reconstruction: about a second a clip "
                        "and system on the CPU)")
    p.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_codec)
    eval_lm.register(sub)
    from launch.commands import eval_asr

    eval_asr.register(sub)


def _encodec_baseline(spec: str | None, codec_spec: str, device: str):
    """``(tokenizer or None, note)`` for the EnCodec rows."""
    from codec.evaluation.systems import find_encodec_weights
    from codec.load import load_tokenizer

    if codec_spec.strip().lower().startswith("encodec"):
        return None, "the codec under test is EnCodec"
    if spec is not None and spec.strip().lower() == "none":
        return None, "left out (--encodec none)"
    if spec is None:
        cached = find_encodec_weights()
        if cached is None:
            return None, ("no weights: pass --encodec encodec24k:/path/to/encodec_24khz-d7cc33bc.th "
                          "(nothing is downloaded)")
        spec = f"encodec24k:{cached}"
    if not spec.strip().lower().startswith("encodec24k:"):
        raise ValueError(f"--encodec takes encodec24k:/path/to/weights (a local file), got {spec!r}")
    return load_tokenizer(spec, device=device), ""


def cmd_codec(a: argparse.Namespace) -> int:
    import torch

    from codec.evaluation.report import text_report, write_html, write_json
    from audiolm.evaluation.asr import load_transcriber
    from codec.evaluation.run import CodecEvalConfig, evaluate_codec
    from codec.load import load_tokenizer
    from data.clips import iter_clips
    from data.skips import SkipCounter

    device = a.device or ("cuda" if torch.cuda.is_available() else "cpu")
    cfg = CodecEvalConfig(bandwidths=a.bandwidths, max_clips=a.max_clips, clip_seconds=a.clip_seconds,
                          examples=a.examples, skip_metrics=a.skip_metrics, opus=not a.no_opus,
                          codec2=not a.no_codec2, progress=not a.quiet)
    tokenizer = load_tokenizer(a.codec, device=device)
    encodec, note = _encodec_baseline(a.encodec, a.codec, device)
    asr, asr_note = load_transcriber(a.asr)
    skips = SkipCounter()
    decoders = {}
    for item in a.decoder:
        name, sep, path = item.partition("=")
        name, path = (name, path) if sep else (Path(item.rstrip("/")).name or "decoder", item)
        if name in decoders:
            raise ValueError(f"--decoder {item}: the name {name!r} is given twice; write NAME=DIR")
        decoders[name] = load_tokenizer(a.codec, device=device, decoder=path)
    result = evaluate_codec(tokenizer, a.codec, iter_clips(a.audio, skips), cfg, encodec, note, asr=asr,
                            asr_note=asr_note, decoders=decoders)
    result.skipped.update(skips.as_dict())
    print(text_report(result))
    out = Path(a.out)
    json_path, html_path = write_json(result, out / "results.json"), write_html(result, out)
    print(f"\nwrote {json_path} and {html_path}")
    return 0
