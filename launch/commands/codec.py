"""``codeclm codec ...``: train (``fit``), export, tokenize shards, encode and decode single files.

``--codec SPEC`` is an export directory, a training checkpoint (``.ckpt``), or ``encodec24k`` /
``encodec48k`` (optionally ``:/path/to/weights.th``). Codes files (``.npz``) hold ``codes`` int16
``[K, T]``, ``sample_rate``, ``frame_rate``, ``codec_id`` and ``num_samples``; they load with
``numpy.load(..., allow_pickle=False)``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    from launch.commands import codec_fit

    codec_fit.register(sub)

    p = sub.add_parser("export", help="export a training checkpoint as model.safetensors + config.json")
    p.add_argument("ckpt", help="training checkpoint (.ckpt) written by `codeclm codec fit`")
    p.add_argument("out_dir", help="export directory (created; an earlier export there is replaced)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("tokenize", help="turn audio shards into token shards (restartable shard by shard)")
    _codec_arg(p)
    p.add_argument("--shards", required=True, help="audio shards: a directory, a shards.json or a brace pattern")
    p.add_argument("--out", required=True, help="token shard directory (a rerun resumes where it stopped)")
    p.add_argument("--batch-size", type=int, default=16, help="clips encoded together (default 16)")
    _codebook_args(p)
    p.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    p.set_defaults(func=cmd_tokenize)

    p = sub.add_parser("encode", help="encode one audio file to a codes file (.npz)")
    _codec_arg(p)
    p.add_argument("input", help="audio file (wav, flac, ogg, mp3); with --stream also - (raw s16le PCM at the "
                                 "codec's rate on stdin)")
    p.add_argument("output", help="codes file to write (.npz)")
    _codebook_args(p)
    p.add_argument("--stream", action="store_true",
                   help="encode chunk by chunk through the causal codec's stream (the same codes as one pass); "
                        "reports the latency and the real-time factor")
    p.add_argument("--chunk-ms", type=float, default=80.0, help="with --stream: milliseconds of audio per chunk (default 80)")
    p.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    p.set_defaults(func=cmd_encode)

    p = sub.add_parser("decode", help="decode a codes file (.npz) to a wav file")
    _codec_arg(p)
    p.add_argument("input", help="codes file (.npz) from `codeclm codec encode`")
    p.add_argument("output", help="wav file to write (with --stream also -: raw s16le PCM on stdout)")
    p.add_argument("--stream", action="store_true",
                   help="decode chunk by chunk through the causal codec's stream, writing each chunk's audio as it is "
                        "made; reports the real-time factor")
    p.add_argument("--chunk-frames", type=int, default=4, help="with --stream: frames per chunk (default 4)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--codebooks", type=int, default=None, metavar="K", help="decode only the first K codebooks")
    g.add_argument("--bandwidth", type=float, default=None, metavar="KBPS",
                   help="decode at this bitrate: the most codebooks (of those in the file) that fit it")
    p.add_argument("--force", action="store_true", help="decode codes written by another codec (codec_id differs)")
    decoder_arg(p)
    p.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    p.set_defaults(func=cmd_decode)


def decoder_arg(p: argparse.ArgumentParser) -> None:
    """``--decoder DIR``: decode the codec's tokens with a second decoder (``codeclm decoder fit``)."""
    p.add_argument("--decoder", default=None, metavar="DIR",
                   help="decode with this second decoder trained on the codec's tokens (an export of "
                        "`codeclm decoder export`, or a `decoder fit` checkpoint) instead of the codec's own")


def _codec_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--codec", required=True, metavar="SPEC",
                   help="export directory, training checkpoint (.ckpt), or encodec24k / encodec48k[:WEIGHTS]")


def _codebook_args(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--codebooks", type=int, default=None, metavar="K", help="keep the first K codebooks")
    g.add_argument("--bandwidth", type=float, default=None, metavar="KBPS", help="bitrate in kbps (sets K)")


def _device(name: str | None) -> str:
    import torch

    return name or ("cuda" if torch.cuda.is_available() else "cpu")


def cmd_export(a: argparse.Namespace) -> None:
    from codec.export import export_from_checkpoint, load_export

    out = export_from_checkpoint(a.ckpt, a.out_dir)
    codec = load_export(out)
    print(f"{out}: codec {codec.codec_id}, {codec.sample_rate} Hz, {codec.num_codebooks} codebooks of "
          f"{codec.cardinality}, {codec.frame_rate:g} frames/s, up to {codec.bandwidth(codec.num_codebooks):g} kbps")


def cmd_tokenize(a: argparse.Namespace) -> None:
    from codec.load import load_tokenizer
    from codec.tokenize import tokenize_shards

    device = _device(a.device)
    tokenizer = load_tokenizer(a.codec, device=device, bandwidth=a.bandwidth)
    t0 = time.time()
    m = tokenize_shards(tokenizer, a.shards, a.out, batch_size=a.batch_size, num_codebooks=a.codebooks,
                        device=device)
    skipped = sum(m["skip_counts"].values())
    print(f"{a.out}: {m['total_count']} samples, {m['total_duration'] / 3600:.3f} h of tokens in {len(m['shards'])} "
          f"shards, codec {m['codec_id']}, {m['num_codebooks']} codebooks, {skipped} skipped "
          f"({time.time() - t0:.1f}s)")


def cmd_encode(a: argparse.Namespace) -> None:
    import numpy as np
    import torch

    from codec.load import codebooks_in_use, load_tokenizer, use_codebooks
    from data.audio import read_audio, resample, to_channels

    device = _device(a.device)
    tokenizer = load_tokenizer(a.codec, device=device, bandwidth=a.bandwidth)
    if a.codebooks is not None:
        use_codebooks(tokenizer, a.codebooks)
    k = a.codebooks or codebooks_in_use(tokenizer)
    if a.stream:
        from launch.commands.codec_stream import encode_stream

        codes, num_samples = encode_stream(tokenizer, a.input, a.chunk_ms, k, device)
    else:
        if a.input == "-":
            raise ValueError("reading audio from stdin (-) needs --stream")
        wav, sr = read_audio(a.input)
        try:
            audio = to_channels(resample(torch.from_numpy(wav), sr, tokenizer.sample_rate), tokenizer.channels)
        except ValueError as e:
            raise ValueError(f"{a.input}: {e} (the codec reads {tokenizer.channels}-channel audio)") from None
        with torch.inference_mode():
            codes = tokenizer.encode(audio[None].to(device), k)[0]  # [K, T']
        num_samples = audio.shape[-1]
    _write_atomic(a.output, lambda f: np.savez(
        f, codes=codes.to("cpu", torch.int16).numpy(), sample_rate=np.int64(tokenizer.sample_rate),
        frame_rate=np.float64(tokenizer.frame_rate), codec_id=np.array(str(tokenizer.codec_id)),
        num_samples=np.int64(num_samples)))
    print(f"{a.output}: {codes.shape[0]} codebooks x {codes.shape[1]} frames, codec {tokenizer.codec_id}")


def cmd_decode(a: argparse.Namespace) -> None:
    import numpy as np
    import soundfile as sf
    import torch

    from codec.load import load_tokenizer, use_codebooks

    codes, num_samples, codes_id = _read_codes(Path(a.input))
    tokenizer = load_tokenizer(a.codec, device=_device(a.device), decoder=a.decoder)
    if codes.shape[0] > tokenizer.num_codebooks:
        raise ValueError(f"{a.input} holds {codes.shape[0]} codebooks but {a.codec} has {tokenizer.num_codebooks}: "
                         "decode with the codec that encoded them")
    use_codebooks(tokenizer, codes.shape[0])  # EnCodec: the bandwidth the codes were written at
    if codes_id != tokenizer.codec_id and not a.force:
        raise ValueError(f"{a.input} holds codes of codec {codes_id}, but {a.codec} is codec {tokenizer.codec_id}: "
                         "decode with the codec that encoded them, or pass --force")
    if a.bandwidth is not None:
        from codec.evaluation.systems import bitrates

        rates = {k: b for k, b in bitrates(tokenizer).items() if k <= codes.shape[0]}
        fitting = [k for k, b in rates.items() if b <= a.bandwidth * (1 + 1e-6)]
        if not fitting:
            raise ValueError(f"--bandwidth {a.bandwidth:g} kbps is below this codec's lowest rate "
                             f"({min(rates.values()):g} kbps with one codebook)")
        a.codebooks = max(fitting)
    if a.codebooks is not None:
        if not 1 <= a.codebooks <= codes.shape[0]:
            raise ValueError(f"--codebooks must be in 1..{codes.shape[0]} (the codebooks {a.input} holds), "
                             f"got {a.codebooks}")
        codes = codes[: a.codebooks]
    if codes.min() < 0 or codes.max() >= tokenizer.cardinality:
        raise ValueError(f"{a.input}: codes lie in [{codes.min()}, {codes.max()}], outside this codec's "
                         f"[0, {tokenizer.cardinality}): decode with the codec that encoded them")
    if a.stream:
        from launch.commands.codec_stream import decode_stream

        if a.decoder:
            raise ValueError("--stream decodes with the causal codec's own decoder: a second decoder (--decoder) "
                             "decodes whole signals")
        codes_t = torch.from_numpy(codes.astype(np.int64)).to(_device(a.device))
        written = decode_stream(tokenizer, codes_t, num_samples, a.output, a.chunk_frames)
        print(f"{a.output}: {written / tokenizer.sample_rate:.2f} s at {tokenizer.sample_rate} Hz, streamed from "
              f"{codes.shape[0]} codebooks", file=sys.stderr if a.output == "-" else sys.stdout)
        return
    if a.output == "-":
        raise ValueError("writing PCM to stdout (-) needs --stream")
    with torch.inference_mode():
        wav = tokenizer.decode(torch.from_numpy(codes.astype(np.int64))[None].to(_device(a.device)))[0]
    wav = wav[:, :num_samples].float().cpu().numpy()  # [C, T]
    _write_atomic(a.output, lambda f: sf.write(f, np.clip(wav, -1.0, 1.0).T, tokenizer.sample_rate,
                                                format="WAV", subtype="PCM_16"))
    print(f"{a.output}: {wav.shape[-1] / tokenizer.sample_rate:.2f} s at {tokenizer.sample_rate} Hz, "
          f"{wav.shape[0]} channel(s), from {codes.shape[0]} codebooks")


def _read_codes(path: Path):
    """``(codes int16 [K, T], num_samples, codec_id)`` from a codes file, with clear errors."""
    import zipfile

    import numpy as np

    if not path.is_file():
        raise FileNotFoundError(f"codes file {path} not found: write one with `codeclm codec encode`")
    try:
        with np.load(path, allow_pickle=False) as z:
            fields = {k: z[k] for k in ("codes", "num_samples", "codec_id") if k in z.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as e:
        raise ValueError(f"{path} is not a readable codes file (.npz without pickled objects): {e}") from None
    missing = sorted({"codes", "num_samples", "codec_id"} - set(fields))
    if missing:
        raise ValueError(f"{path} has no {', '.join(missing)}: write it with `codeclm codec encode`")
    codes = fields["codes"]
    if codes.ndim == 3 and codes.shape[0] == 1:
        codes = codes[0]
    if codes.ndim != 2 or codes.shape[0] == 0 or codes.shape[1] == 0 or codes.dtype.kind not in "iu":
        raise ValueError(f"{path}: codes must be integers [K, T], got {codes.dtype} {codes.shape}")
    return codes, int(fields["num_samples"]), str(fields["codec_id"])


def _write_atomic(path: str, write) -> None:
    """Run ``write(file object)`` into a hidden temporary file, then rename it to ``path``."""
    out = Path(path)
    if not out.parent.exists():
        raise FileNotFoundError(f"cannot write {out}: folder {out.parent} does not exist")
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
