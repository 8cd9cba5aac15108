"""``codeclm bench``: every ``bench/*.py`` of the source checkout, one table (what ``make bench`` runs).

    codeclm bench [--device cuda --preset gpu] [--only codec lm] [--smoke] [--json] [--timeout S]

The options are ``bench/run.py``'s own (``codeclm bench --help`` lists them); each figure is
printed beside a reference measured in the same run, with their ratio and the device. The
benchmarks live in the checkout, not in the installed package: run it from an editable install.
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parents[2] / "bench"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="run every benchmark in bench/ and print one table (same as `make bench`)",
                       add_help=False)
    p.add_argument("args", nargs=argparse.REMAINDER, help="bench/run.py's options (--help for the list)")
    p.set_defaults(func=run)


def load_runner(bench_dir: Path = BENCH_DIR):
    """``bench/run.py`` as a module."""
    path = bench_dir / "run.py"
    if not path.is_file():
        raise FileNotFoundError(f"no benchmark runner at {path}: `codeclm bench` runs from a source checkout "
                                "(pip install -e .)")
    spec = importlib.util.spec_from_file_location("codeclm_bench_run", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(a: argparse.Namespace) -> int:
    return main(list(a.args))


def main(argv: list[str]) -> int:
    """``bench/run.py``'s ``main`` on ``argv``; ``codeclm bench ...`` comes here with its options untouched."""
    import sys

    try:
        return int(load_runner().main(argv) or 0)
    except FileNotFoundError as e:
        print(f"codeclm: error: {e}", file=sys.stderr)
        return 2
    except SystemExit as e:  # argparse's --help / usage errors, a missing --only name
        if isinstance(e.code, str):
            print(f"codeclm: error: {e.code}", file=sys.stderr)
            return 2
        return int(e.code or 0)
