"""The codec evaluation's outputs: a text table, a JSON file, and an HTML report.

The HTML page is one file with its spectrograms embedded as base64 PNG; the example audio it plays
lies beside it in ``examples/`` (16-bit wav), so the folder is the whole report.
"""

from __future__ import annotations

import base64
import html
import io
import json
import re
from pathlib import Path

import numpy as np
import soundfile as sf

from codec.evaluation.intelligibility import ORIGINAL
from codec.evaluation.metrics import ALL_METRICS, HIGHER_IS_BETTER
from codec.evaluation.run import REPORTED, CodecEvalResult

HEADERS = {"mel": "mel", "stft": "stft", "si_sdr": "si-sdr dB", "pesq": "pesq", "stoi": "stoi", "visqol": "visqol",
           "wer": "wer %"}


def format_table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)), "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    return "\n".join(lines)


def _num(v: float | None, digits: int = 3) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}"


def _cell(v: float | None, metric: str) -> str:
    if metric == "wer":
        return "n/a" if v is None else f"{100 * v:.1f}"
    return _num(v, 2 if metric == "si_sdr" else 3)


def table_rows(result: CodecEvalResult) -> tuple[list[str], list[list[str]]]:
    """One line a row; the original (the WER reference row) has no signal metrics: "-"."""
    better = {**HIGHER_IS_BETTER, "wer": False}
    headers = ["system", "target kbps", "kbps", *(HEADERS[m] + (" ↑" if better[m] else " ↓") for m in REPORTED),
               "clips"]
    rows = []
    for r in result.rows:
        cells = ["-" if r.system == ORIGINAL and m in ALL_METRICS else _cell(r.mean(m), m) for m in REPORTED]
        rows.append([r.system, f"{r.target_kbps:g}", "n/a" if r.kbps is None else f"{r.kbps:g}", *cells,
                     str(len(r.clips))])
    return headers, rows


def wer_line(result: CodecEvalResult) -> str:
    """Which judge produced the WER column, and what it scored against."""
    refs = ", ".join(f"{n} clips against their {k}" for k, n in result.wer_references.items())
    return f"WER judge: {result.asr}" + (f"; references: {refs}" if refs else "")


def text_report(result: CodecEvalResult) -> str:
    """The table, the codebook statistics, and every n/a with its reason."""
    out = [f"codec {result.codec} at {result.sample_rate} Hz on {len(result.clip_keys)} clips", ""]
    out.append(format_table(*table_rows(result)))
    out.append(wer_line(result))
    if result.usage:
        out += ["", "codebook usage (codec under test)"]
        out.append(format_table(["level", "used", "usage", "entropy bits", "perplexity"],
                                [[str(u.level), f"{u.used}/{u.cardinality}", f"{u.usage:.3f}",
                                  f"{u.entropy_bits:.2f}/{np.log2(u.cardinality):.0f}", f"{u.perplexity:.1f}"]
                                 for u in result.usage]))
    out += ["", "baselines: " + "; ".join(f"{k}: {v}" for k, v in result.tools.items())]
    for name, why in result.unavailable_metrics.items():
        out.append(f"{name}: n/a ({why})")
    for r in result.rows:
        if r.note:
            out.append(f"{r.system}@{r.target_kbps:g}: n/a ({r.note})")
        for what, n in sorted(r.failures.items()):
            out.append(f"{r.label}: {what} ({n} clips)")
    if result.skipped:
        out.append("skipped clips: " + ", ".join(f"{k} {v}" for k, v in result.skipped.items()))
    return "\n".join(out)


def write_json(result: CodecEvalResult, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result.as_dict(), indent=2))
    return path


def _png_b64(wav: np.ndarray, sr: int, title: str) -> str:
    import matplotlib.pyplot as plt
    import torch

    from codec.media import spectrogram_image

    fig = spectrogram_image(torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32)), sr, title)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


STYLE = """body{font-family:sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse;margin:1em 0}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#eee}td:first-child{text-align:left}
.ex{display:flex;flex-wrap:wrap;gap:12px}.ex figure{margin:0;border:1px solid #ddd;padding:6px}
figcaption{font-size:90%;font-weight:bold}.note{color:#666;font-size:90%}"""


def _html_table(headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def write_html(result: CodecEvalResult, out_dir: Path) -> Path:
    """``out_dir/report.html`` with ``out_dir/examples/*.wav`` beside it."""
    out_dir.mkdir(parents=True, exist_ok=True)
    ex_dir = out_dir / "examples"
    ex_dir.mkdir(exist_ok=True)
    sr = result.sample_rate
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>codec evaluation</title><style>{STYLE}</style>"
             f"</head><body><h1>Codec evaluation</h1><p>{html.escape(result.codec)} at {sr} Hz, "
             f"{len(result.clip_keys)} clips. Metrics are means over clips, each measured after aligning the "
             "output with the original.</p>", _html_table(*table_rows(result))]
    if result.usage:
        parts.append("<h2>Codebook usage</h2>" + _html_table(
            ["level", "used", "usage", "entropy bits", "perplexity"],
            [[str(u.level), f"{u.used}/{u.cardinality}", f"{u.usage:.3f}", f"{u.entropy_bits:.2f}",
              f"{u.perplexity:.1f}"] for u in result.usage]))
    notes = [wer_line(result)]
    if any(r.system == ORIGINAL for r in result.rows):
        notes.append("original: the unprocessed clips, heard by the same judge (the floor of the WER column)")
    notes += [f"{k}: {v}" for k, v in result.tools.items()]
    notes += [f"{k}: n/a ({v})" for k, v in result.unavailable_metrics.items()]
    notes += [f"{r.system}@{r.target_kbps:g}: n/a ({r.note})" for r in result.rows if r.note]
    parts.append("<ul class='note'>" + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ul>")
    for i, ex in enumerate(result.examples):
        parts.append(f"<h2>Example {i + 1}: {html.escape(ex.key)}</h2><div class='ex'>")
        for label, wav in ex.audio.items():
            name = f"{i:02d}_{_safe(label)}.wav"
            sf.write(ex_dir / name, np.clip(wav, -1, 1), sr, subtype="PCM_16")
            heard = ex.heard.get(label)
            caption = f"<br><span class='note'>heard: {html.escape(repr(heard))}</span>" if heard is not None else ""
            parts.append(f"<figure><figcaption>{html.escape(label)}</figcaption>"
                         f"<img src='data:image/png;base64,{_png_b64(wav, sr, label)}' alt='spectrogram of {html.escape(label)}'>"
                         f"<br><audio controls preload='none' src='examples/{name}'></audio>{caption}</figure>")
        parts.append("</div>")
    parts.append("</body></html>")
    path = out_dir / "report.html"
    path.write_text("\n".join(parts), encoding="utf-8")
    return path
