"""``evaluate_codec``: a codec against Opus, Codec2 and EnCodec on the same clips, at several bitrates.

Every clip is mixed to mono, resampled to the codec's rate (the evaluation rate: every output is
brought back to it) and cut to ``clip_seconds``. Each system processes it; the output is aligned
with the clip and measured (:class:`~codec.evaluation.metrics.MetricSet`). The codes of the codec
under test feed the per-level codebook statistics. A system that cannot run (a tool not installed,
no EnCodec weights, a bitrate below Opus' floor) is a row of n/a with the reason.

Given a recognizer (``asr``), every system's output is also transcribed and scored for WER against
the clip's text (:mod:`codec.evaluation.intelligibility`); the original's own WER is the first
row, the floor of that column.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np

from codec.evaluation.baselines import CODEC2_KBPS, OPUS_MIN_KBPS, Codec2Codec, OpusCodec, find_codec2, find_opus
from codec.evaluation.intelligibility import ORIGINAL, Intelligibility
from codec.evaluation.metrics import ALL_METRICS, MetricSet, _resample_np
from codec.evaluation.systems import LevelUsage, TokenizerFamily, codebook_usage, codebooks_for
from codec.tokenizer import AudioTokenizer
from data.clips import Clip
from data.transcripts import ErrorCounts, Recognizer

MIN_CLIP_SECONDS = 0.25
REPORTED = (*ALL_METRICS, "wer")  # the signal metrics, then intelligibility


@dataclass
class CodecEvalConfig:
    bandwidths: tuple[float, ...] = (1.5, 3.0, 6.0, 12.0)
    max_clips: int = 20
    clip_seconds: float = 10.0
    examples: int = 3  # clips whose audio and spectrograms go into the report
    skip_metrics: tuple[str, ...] = ()
    opus: bool = True
    codec2: bool = True
    progress: bool = True

    def __post_init__(self) -> None:
        if not self.bandwidths or any(not (b > 0 and math.isfinite(b)) for b in self.bandwidths):
            raise ValueError(f"bandwidths must be positive kbps values, got {self.bandwidths}")
        if self.max_clips < 1:
            raise ValueError(f"max_clips must be >= 1, got {self.max_clips}")
        if self.clip_seconds < MIN_CLIP_SECONDS:
            raise ValueError(f"clip_seconds must be >= {MIN_CLIP_SECONDS}, got {self.clip_seconds}")


@dataclass
class Row:
    """One system at one bitrate: per-clip metric values, or why it could not run."""

    system: str
    target_kbps: float
    kbps: float | None
    note: str = ""  # why n/a
    clips: list[dict[str, float | None]] = field(default_factory=list)
    delays: list[int] = field(default_factory=list)
    failures: Counter = field(default_factory=Counter)  # "metric: reason" -> clips
    errors: ErrorCounts = field(default_factory=ErrorCounts)  # WER counts over the clips heard

    @property
    def label(self) -> str:
        return f"{self.system}@{self.kbps if self.kbps is not None else self.target_kbps:g}"

    def mean(self, metric: str) -> float | None:
        """Mean over clips; ``wer`` is corpus-level (total edits over total reference words)."""
        if metric == "wer":
            return self.errors.wer
        values = [c[metric] for c in self.clips if c.get(metric) is not None]
        return float(np.mean(values)) if values else None

    def as_dict(self) -> dict:
        return {"system": self.system, "target_kbps": self.target_kbps, "kbps": self.kbps, "note": self.note,
                "clips_measured": len(self.clips), "mean": {m: self.mean(m) for m in REPORTED},
                "wer_counts": self.errors.as_dict(), "per_clip": self.clips, "delay_samples": self.delays,
                "failures": dict(self.failures)}


@dataclass
class Example:
    key: str
    audio: dict[str, np.ndarray]  # "original" or a row label -> [T] at the evaluation rate
    heard: dict[str, str] = field(default_factory=dict)  # the same labels -> the recognizer's transcript


@dataclass
class CodecEvalResult:
    codec: str
    sample_rate: int
    rows: list[Row]
    clip_keys: list[str]
    usage: list[LevelUsage]
    unavailable_metrics: dict[str, str]
    tools: dict[str, str]
    skipped: dict[str, int]
    examples: list[Example]
    asr: str = "none"  # the judge of the WER column
    wer_references: dict[str, int] = field(default_factory=dict)  # "text" / "original transcript" -> clips

    def as_dict(self) -> dict:
        return {"codec": self.codec, "sample_rate": self.sample_rate, "clips": self.clip_keys,
                "metrics": list(REPORTED), "asr": self.asr, "wer_references": self.wer_references,
                "unavailable_metrics": self.unavailable_metrics,
                "tools": self.tools, "skipped": self.skipped, "rows": [r.as_dict() for r in self.rows],
                "codebook_usage": [u.as_dict() for u in self.usage]}


def prepare_clip(clip: Clip, sample_rate: int, seconds: float) -> np.ndarray:
    """Mono ``[T]`` float32 at ``sample_rate``, at most ``seconds`` long."""
    mono = clip.wav.mean(axis=0)
    return _resample_np(mono, clip.sample_rate, sample_rate)[: int(seconds * sample_rate)]


def _families(tokenizer: AudioTokenizer, name: str, bandwidths: tuple[float, ...],
              encodec: AudioTokenizer | None) -> tuple[TokenizerFamily, dict[int, float], TokenizerFamily | None, dict[int, float]]:
    """The codec under test and EnCodec as families, each with ``{k: first target kbps mapping to k}``."""
    def targets(tok):
        first: dict[int, float] = {}
        for b in sorted(bandwidths):
            first.setdefault(codebooks_for(tok, b), b)
        return first

    ours_t = targets(tokenizer)
    ours = TokenizerFamily(name, tokenizer, list(ours_t))
    if encodec is None:
        return ours, ours_t, None, {}
    enc_t = targets(encodec)
    return ours, ours_t, TokenizerFamily("encodec24k", encodec, list(enc_t)), enc_t


def evaluate_codec(tokenizer: AudioTokenizer, codec_name: str, clips: Iterable[Clip], cfg: CodecEvalConfig,
                   encodec: AudioTokenizer | None = None, encodec_note: str = "",
                   skipped: dict[str, int] | None = None, asr: Recognizer | None = None,
                   asr_note: str = "no recognizer given", decoders: dict[str, AudioTokenizer] | None = None) -> CodecEvalResult:
    """Measure ``tokenizer`` (and the baselines) on up to ``cfg.max_clips`` of ``clips``.

    ``encodec``: a loaded EnCodec tokenizer for the baseline rows, or None (``encodec_note`` says why).
    ``asr``: the recognizer of the WER column (mono float32 at 16 kHz -> text), or None
    (``asr_note`` says why). ``decoders``: ``{name: tokenizer}`` whose ``decode`` is a second
    decoder of the same codec (:class:`codec.decoder.tokenizer.DecodedWith`): rows ``ours+NAME``
    decode the codes of the ``ours`` rows.
    """
    from tqdm import tqdm

    sr = int(tokenizer.sample_rate)
    metrics = MetricSet(cfg.skip_metrics)
    ours, ours_t, enc, enc_t = _families(tokenizer, "ours", cfg.bandwidths, encodec)
    rows: dict[tuple[str, int | float], Row] = {}
    intel = Intelligibility(asr, "" if asr is not None else asr_note)
    original = Row(ORIGINAL, 16 * sr / 1000, 16 * sr / 1000)  # 16-bit PCM at the evaluation rate
    for k, target in ours_t.items():
        rows[("ours", k)] = Row("ours", target, round(ours.kbps[k], 4))
    second = {f"ours+{name}": TokenizerFamily(f"ours+{name}", tok, ours.ks) for name, tok in (decoders or {}).items()}
    for system, fam in second.items():
        for k, target in ours_t.items():
            rows[(system, k)] = Row(system, target, round(ours.kbps[k], 4))
    tools: dict[str, str] = {}
    tool_codecs: dict[tuple[str, float], object] = {}
    opus_tool, opus_note = find_opus() if cfg.opus else (None, "disabled (--no-opus)")
    tools["opus"] = opus_tool.description if opus_tool else f"absent: {opus_note}"
    for b in sorted(cfg.bandwidths):
        if opus_tool is None:
            rows[("opus", b)] = Row("opus", b, None, f"absent: {opus_note}")
        elif b < OPUS_MIN_KBPS:
            rows[("opus", b)] = Row("opus", b, None, f"Opus goes no lower than {OPUS_MIN_KBPS:g} kbps")
        else:
            rows[("opus", b)] = Row("opus", b, b)
            tool_codecs[("opus", b)] = OpusCodec(opus_tool, b)
    c2_tool, c2_note = find_codec2() if cfg.codec2 else (None, "disabled (--no-codec2)")
    tools["codec2"] = c2_tool.description if c2_tool else f"absent: {c2_note}"
    rows[("codec2", CODEC2_KBPS)] = Row("codec2", CODEC2_KBPS, CODEC2_KBPS if c2_tool else None,
                                        "" if c2_tool else f"absent: {c2_note}")
    if c2_tool:
        tool_codecs[("codec2", CODEC2_KBPS)] = Codec2Codec(c2_tool)
    if enc is None:
        tools["encodec24k"] = f"absent: {encodec_note or 'no weights given'}"
        for b in sorted(cfg.bandwidths):
            rows[("encodec24k", b)] = Row("encodec24k", b, None, tools["encodec24k"])
    else:
        tools["encodec24k"] = "codec.encodec adapter over the encodec package"
        for k, target in enc_t.items():
            rows[("encodec24k", k)] = Row("encodec24k", target, round(enc.kbps[k], 4))

    codes_seen: list[np.ndarray] = []
    clip_keys: list[str] = []
    examples: list[Example] = []
    skipped = dict(skipped or {})
    bar = tqdm(total=cfg.max_clips, desc="clips", unit="clip", disable=not cfg.progress, leave=False)
    for clip in clips:
        if len(clip_keys) >= cfg.max_clips:
            break
        ref = prepare_clip(clip, sr, cfg.clip_seconds)
        if ref.size < MIN_CLIP_SECONDS * sr or not np.any(ref):
            skipped["too_short_or_silent"] = skipped.get("too_short_or_silent", 0) + 1
            continue
        clip_keys.append(clip.key)
        reference = None
        if intel.on:
            reference = intel.reference(clip.text, clip.seconds <= cfg.clip_seconds, ref, sr)
            original.clips.append({"clip": clip.key})
            intel.score_original(original.errors, original.clips[-1], reference)
        outputs: dict[tuple, np.ndarray] = {}
        codes, decoded = ours.process(ref, sr)
        codes_seen.append(codes)
        outputs.update({("ours", k): w for k, w in decoded.items()})
        for system, fam in second.items():  # sr is the codec's rate
            outputs.update({(system, k): w for k, w in fam.decode(codes, ref.size, sr).items()})
        if enc is not None:
            outputs.update({("encodec24k", k): w for k, w in enc.process(ref, sr)[1].items()})
        for key, tool in tool_codecs.items():
            try:
                outputs[key] = tool.process(ref, sr)
            except (RuntimeError, OSError, ValueError) as e:
                rows[key].failures[f"run: {str(e)[:120]}"] += 1
        for key, out in outputs.items():
            values, errors, delay = metrics.measure(ref, out, sr)
            rows[key].clips.append({"clip": clip.key, **values})
            rows[key].delays.append(delay)
            for name, why in errors.items():
                rows[key].failures[f"{name}: {why[:120]}"] += 1
            if reference is not None:
                intel.score(rows[key].errors, rows[key].clips[-1], rows[key].failures, reference, out, sr)
        if len(examples) < cfg.examples:
            heard = {rows[k].label: rows[k].clips[-1].get("transcript") for k in outputs if rows[k].clips}
            if reference is not None:
                heard[ORIGINAL] = reference.original_heard
            examples.append(Example(clip.key, {ORIGINAL: ref, **{rows[k].label: w for k, w in outputs.items()}},
                                    {k: v for k, v in heard.items() if v is not None}))
        bar.update(1)
    bar.close()
    if not clip_keys:
        raise ValueError(f"no usable clips (skipped: {skipped or 'none read'}): give audio of at least "
                         f"{MIN_CLIP_SECONDS} s")
    order = ["ours", *second, "opus", "codec2", "encodec24k"]
    ordered = sorted(rows.values(), key=lambda r: (r.target_kbps, order.index(r.system)))
    unavailable = dict(metrics.unavailable)
    if not intel.on:
        unavailable["wer"] = intel.note
    return CodecEvalResult(codec_name, sr, ([original] if intel.on else []) + ordered, clip_keys,
                           codebook_usage(codes_seen, int(tokenizer.cardinality)), unavailable, tools, skipped,
                           examples, intel.judge, dict(intel.sources))
