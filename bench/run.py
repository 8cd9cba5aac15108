"""Runs every benchmark script in ``bench/`` and prints one table of their figures.

Each ``bench/*.py`` (except this file, ``_*.py`` helpers and ``quality.py``, which judges a trained
run rather than timing a pair) runs in its own process with ``--json`` (plus ``--device``,
``--preset`` and ``--smoke`` when given); the JSON rows it prints on stdout are collected, and one
table (bench, figure, ours, reference, ratio, unit, device) is printed at the end. A script that
fails, prints no rows or prints a malformed row makes the exit status non-zero, and is named.

    python bench/run.py                               # CPU presets
    python bench/run.py --device cuda --preset gpu    # real sizes on a GPU machine
    python bench/run.py --json > rows.jsonl           # the rows, one JSON object a line
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
FIELDS = ("bench", "figure", "ours", "reference", "ratio", "unit", "device", "config")
NUMBERS = ("ours", "reference", "ratio")


# scripts of bench/ that are not side-by-side ratio benchmarks: quality.py judges a trained run's
# output (minutes of training and Whisper), with its own arguments and report
NOT_RATIO = {"quality"}


def scripts(only: list[str] | None = None) -> list[Path]:
    found = sorted(p for p in HERE.glob("*.py") if p.name != Path(__file__).name and not p.name.startswith("_")
                   and p.stem not in NOT_RATIO)
    if only:
        missing = [n for n in only if n not in {p.stem for p in found}]
        if missing:
            raise SystemExit(f"no benchmark named {missing[0]!r} in {HERE} (have: {', '.join(p.stem for p in found)})")
        found = [p for p in found if p.stem in only]
    return found


def parse_rows(stdout: str) -> list[dict]:
    """The JSON rows of a script's stdout; raises ValueError on a row missing a field or a number."""
    rows = []
    for line in stdout.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        row = json.loads(line)
        missing = [f for f in FIELDS if f not in row]
        if missing:
            raise ValueError(f"row without {missing}: {line[:200]}")
        bad = [f for f in NUMBERS if not isinstance(row[f], (int, float)) or not math.isfinite(row[f])]
        if bad:
            raise ValueError(f"row with non-numeric {bad}: {line[:200]}")
        rows.append(row)
    return rows


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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default=None, help="forwarded to every script (cpu, cuda)")
    ap.add_argument("--preset", default=None, help="forwarded to every script (cpu, gpu, smoke)")
    ap.add_argument("--smoke", action="store_true", help="forwarded: the smallest run of every script")
    ap.add_argument("--only", nargs="+", default=None, metavar="NAME", help="run only these scripts (e.g. codec)")
    ap.add_argument("--timeout", type=float, default=None, help="seconds allowed per script (default: no limit)")
    ap.add_argument("--json", action="store_true", help="print the rows as JSON lines on stdout (table on stderr)")
    args = ap.parse_args(argv)

    forward = ["--json"]
    if args.device:
        forward += ["--device", args.device]
    if args.preset:
        forward += ["--preset", args.preset]
    if args.smoke:
        forward += ["--smoke"]

    rows: list[dict] = []
    failed: list[tuple[str, str]] = []
    for script in scripts(args.only):
        cmd = [sys.executable, str(script), *forward]
        print(f"== {script.name}: {' '.join(cmd[1:])}", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        try:
            # stderr (progress, the script's own table) passes through; stdout carries the rows
            proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, timeout=args.timeout)
        except subprocess.TimeoutExpired:
            failed.append((script.name, f"no result within {args.timeout:g} s"))
            continue
        took = time.perf_counter() - t0
        if proc.returncode != 0:
            failed.append((script.name, f"exit status {proc.returncode}"))
            continue
        try:
            got = parse_rows(proc.stdout)
        except ValueError as e:
            failed.append((script.name, f"bad JSON output ({e})"))
            continue
        if not got:
            failed.append((script.name, "printed no JSON rows"))
            continue
        print(f"== {script.name}: {len(got)} rows in {took:.1f} s", file=sys.stderr, flush=True)
        rows.extend(got)

    out = sys.stderr if args.json else sys.stdout
    print(file=out)
    if rows:
        print_table(rows, out)
    if args.json:
        for r in rows:
            print(json.dumps(r))
    if failed:
        for name, why in failed:
            print(f"bench/run.py: {name} failed: {why}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
