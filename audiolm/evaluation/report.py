"""Outputs of ``codeclm eval tts`` / ``eval continue``: a text table, ``results.json``, and
``report.html`` with audio players of a few examples (wav files beside it in ``examples/``)."""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np
import soundfile as sf

from audiolm.evaluation.evaluate import LMEvalResult

HEADERS = ["row", "n", "WER", "CER", "sim to prompt", "empty", "silent", "never-ending"]


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.1f}%"


def _num(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def table_rows(result: LMEvalResult) -> list[list[str]]:
    out = []
    for r in result.rows:
        d = r.as_dict()
        gen = r.name == "generated"
        out.append([r.name, str(r.count), _pct(d["wer"]) if r.name != "different speakers" else "-",
                    _pct(d["cer"]) if r.name != "different speakers" else "-", _num(d["similarity"]),
                    _pct(d["empty_rate"]) if gen else "-", _pct(d["silent_rate"]) if gen else "-",
                    (_pct(d["never_ending_rate"]) if d["never_ending_rate"] is not None else "n/a") if gen else "-"])
    return out


def format_table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)), "  ".join("-" * w for w in widths)]
    return "\n".join(lines + ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows])


def judge_line(result: LMEvalResult) -> str:
    return f"WER/CER judge: {result.asr or 'none'}"


def text_report(result: LMEvalResult, title: str) -> str:
    lines = [title, "", format_table(HEADERS, table_rows(result)), "", judge_line(result)]
    lines += [f"note: {n}" for n in result.notes]
    lines += [f"{k}: n/a ({v})" for k, v in result.unavailable.items()]
    return "\n".join(lines)


def write_outputs(result: LMEvalResult, out_dir: Path, title: str) -> tuple[Path, Path]:
    """``results.json`` and ``report.html`` (with ``examples/*.wav``) under ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / "results.json"
    json_path.write_text(json.dumps(result.as_dict(), indent=2))
    ex_dir = out_dir / "examples"
    ex_dir.mkdir(exist_ok=True)
    head = "".join(f"<th>{html.escape(h)}</th>" for h in HEADERS)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in table_rows(result))
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>" + html.escape(title) + "</title><style>"
             "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
             "padding:3px 8px}</style></head><body>", f"<h1>{html.escape(title)}</h1>",
             f"<p>{html.escape(judge_line(result))}</p>", f"<table><tr>{head}</tr>{body}</table><ul>"]
    parts += [f"<li>{html.escape(n)}</li>" for n in result.notes]
    parts += [f"<li>{html.escape(k)}: n/a ({html.escape(v)})</li>" for k, v in result.unavailable.items()]
    parts.append("</ul>")
    for i, (ex, item) in enumerate(zip(result.examples, result.items)):
        text = item.get("text", "")
        parts.append(f"<h2>Example {i + 1}</h2><p>{html.escape(text)}</p>")
        for label, (wav, sr) in ex.items():
            name = f"{i:02d}_{label.replace(' ', '_')}.wav"
            sf.write(ex_dir / name, np.clip(wav, -1, 1), sr, subtype="PCM_16")
            heard = item.get(f"{'generated' if label == 'generated' else 'real'}_transcript")
            caption = f"{label}" + (f" (heard: {heard!r})" if heard is not None and label != "prompt" else "")
            parts.append(f"<p>{html.escape(caption)}<br><audio controls preload='none' src='examples/{name}'></audio></p>")
    parts.append("</body></html>")
    html_path = out_dir / "report.html"
    html_path.write_text("\n".join(parts), encoding="utf-8")
    return json_path, html_path
