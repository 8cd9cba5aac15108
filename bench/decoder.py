"""Second decoders beside the codec's own decoder, on the same tokens, in one run on one device.

(a) decoding speed, as times real time (seconds of audio per second), float32 eval mode, the
    latent of K codebooks in, audio out; ours = the second decoder (``codec/decoder``),
    reference = the codec's own decoder. Random-init models of the configs named below, unless
    trained ones are given:

    - ``speech16k``: ``configs/codec/speech16k-6kbps.yaml`` (SEANet decoder with an LSTM, 50 Hz,
      12 codebooks) against ``configs/decoder/vocos-base.yaml`` (ConvNeXt at 50 Hz, inverse STFT);
    - ``tiny``: ``configs/codec/tiny.yaml`` (a Fourier decoder already) against
      ``configs/decoder/vocos-tiny.yaml`` (the same shape) and, ``tiny-fast``, against
      ``configs/decoder/vocos-tiny-fast.yaml`` (96 channels x 3 blocks);
    - ``*-flow``: the flow configs, at their configured steps and at one step.

(b) with ``--codec DIR --decoder DIR --audio SHARDS`` (trained exports): mel distance to the
    original at every k (``mel_kK``, lower is better; ``--clips`` clips of up to 4 s), ours =
    the second decoder, reference = the codec's decoder, reading the very same codes; and their
    decoding speed (``decode_trained``). PESQ, STOI and Whisper WER of the same pair come from
    ``codeclm eval codec --codec DIR --decoder DIR --audio ...``.

On the CPU presets torch runs on one thread (``--threads`` to change); timed calls alternate
between the two decoders and each figure is the best of its repetitions (medians in ``config``).

    python bench/decoder.py                      # CPU preset: 4 s of audio, speed rows
    python bench/decoder.py --device cuda        # gpu preset: batch 16 x 10 s
    python bench/decoder.py --codec runs/quickstart/codec/export --decoder runs/quickstart/decoder/export \\
        --audio runs/quickstart/shards/speech-val
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import yaml  # noqa: E402

from bench.codec import alternate, describe_device, print_table, test_signal  # noqa: E402
from codec.codec import CodecConfig, build_codec  # noqa: E402
from codec.decoder.model import CodecShape, DecoderConfig, TokenDecoder  # noqa: E402

PAIRS = {"speech16k": ("configs/codec/speech16k-6kbps.yaml", "configs/decoder/vocos-base.yaml"),
         "speech16k-flow": ("configs/codec/speech16k-6kbps.yaml", "configs/decoder/flow-base.yaml"),
         "tiny-flow": ("configs/codec/tiny.yaml", "configs/decoder/flow-tiny.yaml"),
         "tiny": ("configs/codec/tiny.yaml", "configs/decoder/vocos-tiny.yaml"),
         "tiny-fast": ("configs/codec/tiny.yaml", "configs/decoder/vocos-tiny-fast.yaml")}
PRESETS = {  # batch, seconds, warm-up calls, timed calls
    "smoke": dict(batch=1, seconds=0.5, warmup=1, repeats=2, pairs=("tiny",)),
    "cpu": dict(batch=1, seconds=4.0, warmup=2, repeats=5, pairs=("speech16k", "tiny", "tiny-fast", "speech16k-flow", "tiny-flow")),
    "gpu": dict(batch=16, seconds=10.0, warmup=3, repeats=10, pairs=("speech16k", "tiny", "tiny-fast", "speech16k-flow", "tiny-flow")),
}


def models_of(pair: str, smoke: bool):
    codec_yaml, decoder_yaml = (yaml.safe_load((ROOT / p).read_text())["model"] for p in PAIRS[pair])
    if smoke:  # narrow everything: the smoke run checks the plumbing
        decoder_yaml["decoder"]["fourier"].update(width=32, layers=2)
    torch.manual_seed(0)
    codec = build_codec(CodecConfig(**codec_yaml["codec"])).eval()
    decoder = TokenDecoder(DecoderConfig(**decoder_yaml["decoder"]), CodecShape.of(codec)).eval()
    return codec, decoder


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def speed_rows(figure: str, codec, decoder: TokenDecoder, wav: torch.Tensor, preset: dict, device,
               config: dict) -> list[dict]:
    """One row; a flow decoder gets one at its configured steps and one at a single step."""
    if decoder.cfg.head != "flow":
        return [speed_row(figure, codec, decoder, wav, preset, device, config)]
    steps = decoder.cfg.flow.steps
    rows = [speed_row(f"{figure}_{steps}steps", codec, decoder, wav, preset, device, {**config, "steps": steps})]
    decoder.cfg.flow.steps = 1
    try:
        rows.append(speed_row(f"{figure}_1step", codec, decoder, wav, preset, device, {**config, "steps": 1}))
    finally:
        decoder.cfg.flow.steps = steps
    return rows


def speed_row(figure: str, codec, decoder: TokenDecoder, wav: torch.Tensor, preset: dict, device, config: dict) -> dict:
    k = codec.num_codebooks
    with torch.no_grad():
        latent = codec.dequantize(codec.encode(wav))
        times = alternate({"ours": lambda: decoder(latent, k), "reference": lambda: codec.decoder(latent)},
                          preset["warmup"], preset["repeats"], device)
    audio = wav.shape[0] * wav.shape[-1] / codec.sample_rate
    ours, ref = audio / times["ours"]["best"], audio / times["reference"]["best"]
    return {"bench": "decoder", "figure": figure, "ours": ours, "reference": ref, "ratio": ours / ref,
            "unit": "x real time", "device": describe_device(device),
            "config": {**config, "codebooks": k, "batch": wav.shape[0], "seconds": wav.shape[-1] / codec.sample_rate,
                       "params_ours": count(decoder), "params_reference": count(codec.decoder),
                       "median_s": {n: t["median"] for n, t in times.items()}}}


def quality_rows(a, device, preset: dict) -> list[dict]:
    from codec.decoder.export import load_decoder
    from codec.load import load_tokenizer
    from codec.losses import MelLossConfig, mel_distance
    from data.clips import iter_clips
    from data.skips import SkipCounter

    codec = load_tokenizer(a.codec, device=device)
    decoder = load_decoder(a.decoder, device)
    if decoder.codec_id != codec.codec_id:
        raise SystemExit(f"{a.decoder} was trained on codec {decoder.codec_id}, not on {a.codec} ({codec.codec_id})")
    mel = MelLossConfig()
    totals = {k: [0.0, 0.0] for k in range(1, codec.num_codebooks + 1)}
    n, longest = 0, None
    for clip in iter_clips(a.audio, SkipCounter()):
        if n >= a.clips:
            break
        from data.audio import resample

        wav = resample(torch.from_numpy(clip.wav).float().mean(0, keepdim=True), clip.sample_rate, codec.sample_rate)
        wav = wav[..., : int(4 * codec.sample_rate)][None].to(device)  # [1, 1, T]
        if wav.shape[-1] < codec.sample_rate // 2:
            continue
        with torch.no_grad():
            codes = codec.encode(wav)
            for k in totals:
                ours = decoder(codec.dequantize(codes[:, :k]), k)[..., : wav.shape[-1]]
                ref = codec.decode(codes[:, :k])[..., : wav.shape[-1]]
                totals[k][0] += float(mel_distance(ours, wav, codec.sample_rate, mel).mean())
                totals[k][1] += float(mel_distance(ref, wav, codec.sample_rate, mel).mean())
        longest = wav if longest is None or wav.shape[-1] > longest.shape[-1] else longest
        n += 1
    if not n:
        raise SystemExit(f"no clips of at least 0.5 s in {a.audio}")
    cfg = {"codec": a.codec, "decoder": a.decoder, "clips": n}
    rows = [{"bench": "decoder", "figure": f"mel_k{k}", "ours": o / n, "reference": r / n, "ratio": o / r,
             "unit": "mel distance (lower is better)", "device": describe_device(device), "config": cfg}
            for k, (o, r) in totals.items()]
    rows.extend(speed_rows("decode_trained", codec, decoder, longest, preset, device, cfg))
    return rows


def run(a, device, preset_name: str) -> list[dict]:
    preset = PRESETS[preset_name]
    if a.codec:
        return quality_rows(a, device, preset)
    rows = []
    for pair in preset["pairs"]:
        codec, decoder = models_of(pair, preset_name == "smoke")
        codec.to(device), decoder.to(device)
        wav = test_signal(preset["batch"], preset["seconds"], codec.sample_rate, device)
        rows.extend(speed_rows(f"decode_{pair}", codec, decoder, wav, preset, device,
                               {"codec": PAIRS[pair][0], "decoder": PAIRS[pair][1], "weights": "random init"}))
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default=None, help="cpu or cuda[:N] (default: cuda when available, else cpu)")
    ap.add_argument("--preset", choices=sorted(PRESETS), default=None, help="cpu (default on CPU), gpu, smoke")
    ap.add_argument("--smoke", action="store_true", help="the smallest run (same as --preset smoke)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default 1 on the CPU presets)")
    ap.add_argument("--codec", default=None, help="a trained codec export (with --decoder and --audio)")
    ap.add_argument("--decoder", default=None, help="a second decoder trained on its tokens (`codeclm decoder export`)")
    ap.add_argument("--audio", default=None, help="clips to measure on: shards or a folder of audio files")
    ap.add_argument("--clips", type=int, default=20, help="clips for the mel rows (default 20)")
    ap.add_argument("--json", action="store_true", help="print JSON rows on stdout (the table goes to stderr)")
    args = ap.parse_args(argv)
    if bool(args.codec) != bool(args.decoder) or bool(args.codec) != bool(args.audio):
        ap.error("--codec, --decoder and --audio go together")
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    preset = "smoke" if args.smoke else (args.preset or ("gpu" if device.type == "cuda" else "cpu"))
    threads = args.threads or (None if preset == "gpu" else 1)
    if threads:
        torch.set_num_threads(threads)
    warnings.filterwarnings("ignore", category=FutureWarning)
    rows = run(args, device, preset)
    print_table(rows, sys.stderr if args.json else sys.stdout)
    if args.json:
        for r in rows:
            print(json.dumps(r), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
