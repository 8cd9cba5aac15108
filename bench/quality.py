"""What a quickstart run's models are worth on voices they never heard, beside Opus and Codec2.

    python bench/quality.py [RUN]          # RUN: a `codeclm quickstart` folder (default runs/quickstart)
    python bench/quality.py --train RUN    # first run `codeclm quickstart --out RUN` (or finish it)

1. Flite speech (`codeclm data flite`: four voices and sentences the espeak corpus never has) is
   built under RUN/quality/flite when missing (Debian's `flite` must be installed);
2. `codeclm eval codec` measures the run's codec at 1.6 and 3.2 kbps on those clips beside Opus
   (6 kbps, its lowest rate) and Codec2 (3.2 kbps): PESQ, STOI, mel distance and the Whisper tiny.en word error
   rate of every reconstruction, with the originals' own WER as the reference row;
3. `codeclm eval tts` clones those voices with the run's VALL-E (prompts of 3 s, new sentences of
   the same speaker): WER of the clones, speaker similarity to the prompt beside the similarity of
   real pairs of the same and of different speakers, empty and never-ending rates.

It prints one table and writes RUN/quality/quality.json. Quality figures live here, not in timed
tests: they take minutes and depend on how long the run trained.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def codeclm() -> list[str]:
    local = ROOT / ".venv" / "bin" / "codeclm"
    if local.exists():
        return [str(local)]
    found = shutil.which("codeclm")
    return [found] if found else [sys.executable, "-m", "launch.cli"]


def sh(args: list[str]) -> None:
    print("$ " + " ".join(args), flush=True)
    subprocess.run(args, check=True, cwd=ROOT)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run", nargs="?", default="runs/quickstart", help="a `codeclm quickstart` folder")
    p.add_argument("--train", action="store_true", help="run (or finish) `codeclm quickstart --out RUN` first")
    p.add_argument("--minutes", type=float, default=4.0, help="minutes of Flite speech to judge on (default 4)")
    p.add_argument("--clips", type=int, default=30, help="clips for the codec rows (default 30)")
    p.add_argument("--pairs", type=int, default=12, help="voice clones (default 12)")
    a = p.parse_args(argv)
    run = Path(a.run).resolve()
    cli = codeclm()
    if a.train:
        sh([*cli, "quickstart", "--out", str(run)])
    export, ar, nar = run / "codec" / "export", run / "lm" / "valle-ar" / "run" / "checkpoints" / "last.ckpt", \
        run / "lm" / "valle-nar" / "run" / "checkpoints" / "last.ckpt"
    if not (export / "config.json").exists():
        raise SystemExit(f"no exported codec in {export}: run `codeclm quickstart --out {run}` (or --train)")
    q = run / "quality"
    flite = q / "flite"
    if not (flite / "shards.json").exists():
        sh([*cli, "data", "flite", "--out", str(flite), "--minutes", str(a.minutes)])
    sh([*cli, "eval", "codec", "--codec", str(export), "--audio", str(flite), "--bandwidths", "1.6,3.2,6",
        "--max-clips", str(a.clips), "--skip-metrics", "visqol", "--encodec", "none", "--out", str(q / "codec"),
        "--quiet"])
    codec = json.loads((q / "codec" / "results.json").read_text())
    tts = None
    if ar.exists() and nar.exists():
        sh([*cli, "eval", "tts", "--codec", str(export), "--prompts", str(flite), "--valle-ar", str(ar),
            "--valle-nar", str(nar), "--text-model", str(run / "text" / "phonemes.json"), "--max-pairs", str(a.pairs),
            "--temperature", "0.8", "--top-k", "50", "--out", str(q / "tts"), "--quiet"])
        tts = json.loads((q / "tts" / "results.json").read_text())
    record = {"run": str(run), "codec": summarize_codec(codec), "tts": summarize_tts(tts) if tts else None}
    (q / "quality.json").write_text(json.dumps(record, indent=1))
    print_table(record)
    return 0


def summarize_codec(res: dict) -> list[dict]:
    rows = []
    for r in res["rows"]:
        if not r["clips_measured"]:  # a baseline that has no such rate (Opus under 6 kbps)
            continue
        m = r["mean"]
        rows.append({"system": r["system"], "kbps": r["kbps"], "pesq": m.get("pesq"), "stoi": m.get("stoi"),
                     "mel": m.get("mel"), "wer": m.get("wer"), "clips": r["clips_measured"]})
    return rows


def summarize_tts(res: dict) -> list[dict]:
    return [{k: r.get(k) for k in ("name", "count", "wer", "cer", "similarity", "empty_rate", "never_ending_rate")}
            for r in res["rows"]]


def _f(x, pct: bool = False) -> str:
    if x is None:
        return "n/a"
    return f"{100 * x:.0f}%" if pct else f"{x:.2f}"


def print_table(record: dict) -> None:
    print(f"\n{'system':28s} {'kbps':>5s} {'PESQ':>5s} {'STOI':>5s} {'mel':>5s} {'WER':>6s}")
    for r in record["codec"]:
        kbps = "-" if r["kbps"] is None else f"{r['kbps']:.1f}"
        print(f"{r['system']:28s} {kbps:>5s} {_f(r['pesq']):>5s} {_f(r['stoi']):>5s} {_f(r['mel']):>5s} "
              f"{_f(r['wer'], True):>6s}")
    if record["tts"]:
        print(f"\n{'voice clones':28s} {'n':>5s} {'WER':>6s} {'CER':>6s} {'sim':>5s} {'empty':>6s} {'endless':>7s}")
        for r in record["tts"]:
            print(f"{r['name']:28s} {r['count']:>5d} {_f(r['wer'], True):>6s} {_f(r['cer'], True):>6s} "
                  f"{_f(r['similarity']):>5s} {_f(r['empty_rate'], True):>6s} {_f(r['never_ending_rate'], True):>7s}")


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.exit(main())
