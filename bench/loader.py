"""Audio loader throughput on local shards, beside a plain tarfile + soundfile reader.

Ours: ``ShardLoader(audio_dataset(shards, cfg, train))`` with ``num_workers`` in {0, 1, 2} (as the
cores allow), counting real (unpadded) audio seconds of the batches it yields:
- ``eval``: one full ordered pass over the shards;
- ``train``: a fixed number of batches (shards resampled with replacement through the shuffle
  buffer: ``epoch_samples = batches x batch_size``).
Reference: one process reads the same shards with Python's ``tarfile`` and decodes every ``.flac``
member with ``soundfile`` (no resampling, no batching), counting decoded audio seconds.

Figure: audio seconds per second per decoding process (``max(1, num_workers)``; with workers the
main process only receives batches), and ratio = ours per process / reference. Both sides
decode every clip whole: crop is off (``crop_seconds=None``: whole clips, cut at ``max_seconds``,
padded to the longest in the batch) and the loader's sample rate is the shards' own, so nothing is
resampled; ``--crop S`` turns on random crops in train mode (then only the S-second crops count,
while every clip is still decoded whole). Every pass is timed whole: DataLoader worker start-up
and the shuffle buffer's fill are part of it. torch runs on one thread in the main process, as it
does in DataLoader workers. Each round runs the reference and every loader
configuration once, in turn (so outside load hits them alike); a figure is the best round (the
JSON ``config`` also carries the medians).

Without ``--shards``, a speech corpus (espeak-ng, 16 kHz, 20 clips a shard) is built into a
temporary folder with ``data.corpus.speech.build_speech`` and removed afterwards.

    python bench/loader.py                          # ~5 min of speech, workers 0/1/2, < 90 s
    python bench/loader.py --shards DIR --workers 0 2 4
    python bench/loader.py --device cuda --preset gpu --json
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import platform
import statistics
import sys
import tarfile
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import soundfile as sf  # noqa: E402

BENCH = "loader"


@dataclass
class Preset:
    minutes: float  # corpus size when it is built here
    batch: int
    workers: tuple[int, ...]  # capped at the CPU cores available
    train_batches: int  # batches per train-mode pass
    shuffle_buffer: int
    rounds: int


PRESETS = {
    "cpu": Preset(minutes=5.0, batch=8, workers=(0, 1, 2), train_batches=48, shuffle_buffer=32, rounds=5),
    "gpu": Preset(minutes=30.0, batch=32, workers=(0, 1, 2, 4, 8), train_batches=200, shuffle_buffer=256, rounds=3),
    "smoke": Preset(minutes=0.25, batch=2, workers=(0, 1), train_batches=2, shuffle_buffer=4, rounds=1),
}


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def describe_cpu() -> str:
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"cpu: {name}, {cores()} cores"


def fmt(v: float) -> str:
    if not math.isfinite(v):
        return str(v)
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.4g}"


def print_table(rows: list[dict], out=sys.stdout) -> None:
    cols = ["bench", "figure", "ours", "reference", "ratio", "unit", "device"]
    cells = [[r["bench"], r["figure"], fmt(r["ours"]), fmt(r["reference"]), fmt(r["ratio"]), r["unit"], r["device"]]
             for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths)), file=out)
    print("  ".join("-" * w for w in widths), file=out)
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths)), file=out)


# ---------------------------------------------------------------------------------- passes


def reference_pass(urls: list[str]) -> tuple[float, float]:
    """``(audio seconds, wall seconds)`` of decoding every flac member of ``urls``."""
    t0 = time.perf_counter()
    seconds = 0.0
    for url in urls:
        with tarfile.open(url) as tar:
            for member in tar:
                if member.isfile() and member.name.endswith(".flac"):
                    data = tar.extractfile(member).read()
                    wav, sr = sf.read(io.BytesIO(data), dtype="float32")
                    seconds += wav.shape[0] / sr
    return seconds, time.perf_counter() - t0


def loader_pass(loader) -> tuple[float, float]:
    """``(audio seconds, wall seconds)`` of one pass of ``loader`` (real samples only)."""
    t0 = time.perf_counter()
    samples, rate = 0, None
    for batch in loader:
        samples += int(batch.lengths.sum())
        rate = batch.sample_rate
    wall = time.perf_counter() - t0
    return (samples / rate if rate else 0.0), wall


def shard_urls(spec: str) -> list[str]:
    from data.urls import expand_urls

    urls = expand_urls(spec).urls
    remote = [u for u in urls if u.startswith("pipe:") or "://" in u]
    if remote:
        raise SystemExit(f"loader bench: the reference reads local tar files only, got {remote[0]}: "
                         "copy the shards to a local folder and pass that")
    return urls


def shards_rate(urls: list[str]) -> int:
    """The sample rate of the first flac member (the loader keeps it, so nothing is resampled)."""
    with tarfile.open(urls[0]) as tar:
        for member in tar:
            if member.isfile() and member.name.endswith(".flac"):
                return sf.info(io.BytesIO(tar.extractfile(member).read())).samplerate
    raise SystemExit(f"loader bench: {urls[0]} holds no .flac member")


def run(spec: str, preset_name: str, preset: Preset, workers: list[int], crop: float | None, log=sys.stderr) -> list[dict]:
    import torch

    from data.datamodule import AudioLoaderConfig, audio_dataset
    from data.webdataset import ShardLoader

    urls = shard_urls(spec)
    rate = shards_rate(urls)
    eval_cfg = AudioLoaderConfig(sample_rate=rate, crop_seconds=None, batch_size=preset.batch, shuffle_buffer=0)
    train_cfg = AudioLoaderConfig(sample_rate=rate, crop_seconds=crop, batch_size=preset.batch,
                                  shuffle_buffer=preset.shuffle_buffer, epoch_samples=preset.train_batches * preset.batch)
    loaders = {}
    for w in workers:
        loaders[f"eval_w{w}"] = (ShardLoader(audio_dataset(spec, eval_cfg, train=False), num_workers=w), w)
        loaders[f"train_w{w}"] = (ShardLoader(audio_dataset(spec, train_cfg, train=True), num_workers=w), w)

    ref_rates: list[float] = []
    rates: dict[str, list[float]] = {k: [] for k in loaders}
    totals: dict[str, float] = {}
    ref_total = 0.0
    for r in range(preset.rounds):
        ref_total, wall = reference_pass(urls)
        ref_rates.append(ref_total / wall)
        for name, (loader, w) in loaders.items():
            audio, wall = loader_pass(loader)
            rates[name].append(audio / wall / max(1, w))
            totals[name] = audio
        print(f"round {r + 1}/{preset.rounds}: reference {ref_rates[-1]:.0f} audio s/s; "
              + ", ".join(f"{k} {v[-1]:.0f}" for k, v in rates.items()), file=log)

    ref = max(ref_rates)
    dev = describe_cpu()
    common = {"preset": preset_name, **{k: v for k, v in asdict(preset).items() if k != "workers"},
              "shards": len(urls), "sample_rate": rate, "reference_audio_s": round(ref_total, 3),
              "torch_threads": torch.get_num_threads()}
    rows = []
    for name, (_, w) in loaders.items():
        mode = name.split("_")[0]
        cfg = {**common, "mode": mode, "num_workers": w, "audio_s_per_pass": round(totals[name], 3),
               "crop_seconds": None if mode == "eval" else crop,
               "shuffle_buffer": 0 if mode == "eval" else preset.shuffle_buffer}
        if mode == "eval":
            cfg.pop("train_batches")
        ours = max(rates[name])
        cfg["median"] = {"ours": statistics.median(rates[name]), "reference": statistics.median(ref_rates)}
        rows.append({"bench": BENCH, "figure": name, "ours": ours, "reference": ref, "ratio": ours / ref,
                     "unit": "audio s/s per worker", "device": dev, "config": cfg})
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shards", default=None, help="local shard spec (folder, shards.json or brace pattern); "
                                                   "default: build a speech corpus in a temporary folder")
    ap.add_argument("--preset", choices=sorted(PRESETS), default=None,
                    help="sizes: cpu (default on CPU), gpu (default with --device cuda), smoke (tests)")
    ap.add_argument("--smoke", action="store_true", help="the smallest run (same as --preset smoke)")
    ap.add_argument("--device", default=None,
                    help="picks the default preset (cuda: gpu); the loader and the reference always run on the host CPU")
    ap.add_argument("--minutes", type=float, default=None, help="size of the corpus built here (default: the preset's)")
    ap.add_argument("--workers", type=int, nargs="+", default=None,
                    help="num_workers values (default: the preset's, capped at the cores available)")
    ap.add_argument("--rounds", type=int, default=None, help="repetitions; figures are the best round (default: the preset's)")
    ap.add_argument("--crop", type=float, default=None, help="random crop seconds in train mode (default: none)")
    ap.add_argument("--json", action="store_true", help="print JSON rows on stdout (the table goes to stderr)")
    args = ap.parse_args(argv)

    import torch

    if args.device is None:
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    name = "smoke" if args.smoke else (args.preset or ("gpu" if args.device.startswith("cuda") else "cpu"))
    preset = PRESETS[name]
    if args.minutes is not None:
        preset = replace(preset, minutes=args.minutes)
    if args.rounds is not None:
        preset = replace(preset, rounds=args.rounds)
    workers = args.workers if args.workers is not None else [w for w in preset.workers if w <= cores()]
    log = sys.stderr
    torch.set_num_threads(1)  # as in DataLoader workers, so every num_workers value runs alike

    with tempfile.TemporaryDirectory(prefix="codeclm-bench-loader-") as tmp:
        spec = args.shards
        if spec is None:
            from data.corpus.speech import SpeechCorpusConfig, build_speech

            t0 = time.perf_counter()
            manifest = build_speech(SpeechCorpusConfig(out_dir=tmp, hours=preset.minutes / 60, max_count=20, seed=0),
                                    progress=False)
            print(f"built {manifest['total_duration']:.0f} s of speech in {len(manifest['shards'])} shards "
                  f"in {time.perf_counter() - t0:.1f} s", file=log)
            spec = tmp
        rows = run(spec, name, preset, workers, args.crop, log)

    print_table(rows, sys.stderr if args.json else sys.stdout)
    if args.json:
        for r in rows:
            print(json.dumps(r), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
