"""``codeclm eval asr``: the token recognizer's WER and CER beside the offline judges, same clips.

    codeclm eval asr --model ASR.ckpt --codec SPEC --audio runs/shards/flite [--max-clips 60] \\
        [--judges whisper-tiny,pocketsphinx] [--out runs/eval/asr]

Every clip of ``--audio`` (audio shards or a folder, each with its transcript) is encoded by the
codec and transcribed by the recognizer (greedy CTC, batched), and the same audio by each judge.
Scores are corpus-level (total word edits over total reference words, both texts normalised as
every WER here is: ``data/transcripts.py``) with a 95% bootstrap interval over clips (1,000
resamples, fixed seed). Prints a table and writes ``results.json`` (every clip's transcripts too)
under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("asr", help="the token recognizer's WER/CER beside Whisper tiny.en and pocketsphinx")
    p.add_argument("--model", required=True, metavar="CKPT", help="the recognizer (`lm fit` of configs/lm/asr-*.yaml)")
    p.add_argument("--codec", required=True, metavar="SPEC", help="the codec its token shards were made with")
    p.add_argument("--text-model", default=None, metavar="SPM",
                   help="sentencepiece .model (default: data.text_model of the run's config.yaml)")
    p.add_argument("--audio", required=True, help="audio shards or a folder, with transcripts")
    p.add_argument("--max-clips", type=int, default=60, help="clips measured (default 60)")
    p.add_argument("--judges", default="whisper-tiny,pocketsphinx",
                   help="recognizers measured on the same audio (comma-separated; 'none' for none)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--out", default="runs/eval/asr", help="folder for results.json")
    p.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    p.set_defaults(func=run)


def bootstrap(per_clip: list[tuple[int, int]], rounds: int = 1000, seed: int = 0) -> tuple[float, float]:
    """95% interval of ``sum(edits) / sum(words)`` over clips resampled with replacement."""
    rng = random.Random(seed)
    n = len(per_clip)
    values = []
    for _ in range(rounds):
        sample = [per_clip[rng.randrange(n)] for _ in range(n)]
        words = sum(w for _, w in sample)
        values.append(sum(e for e, _ in sample) / words if words else 0.0)
    values.sort()
    return values[int(0.025 * (rounds - 1))], values[int(0.975 * (rounds - 1))]


def score(references: list[str], hypotheses: list[str]) -> dict:
    from data.transcripts import ErrorCounts, edit_distance, normalize

    counts = ErrorCounts()
    per_clip = []
    for ref, hyp in zip(references, hypotheses):
        counts.add(ref, hyp)
        r, h = normalize(ref).split(), normalize(hyp).split()
        per_clip.append((edit_distance(r, h), len(r)))
    low, high = bootstrap(per_clip) if per_clip else (float("nan"), float("nan"))
    return {**counts.as_dict(), "wer_95": [low, high]}


def run(a: argparse.Namespace) -> int:
    import torch

    from audiolm.evaluation.asr import load_transcriber
    from codec.load import load_tokenizer
    from data.datamodule import AudioLoaderConfig, audio_dataset
    from data.text import SpmTokenizer
    from data.webdataset import ShardLoader
    from launch.commands.transcribe import _text_model, load_asr, transcribe_codes

    if a.max_clips < 1:
        raise ValueError(f"--max-clips must be >= 1, got {a.max_clips}")
    device = a.device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = load_asr(a.model, device)
    text = SpmTokenizer(_text_model(a))
    tokenizer = load_tokenizer(a.codec, device=device)
    cfg = AudioLoaderConfig(sample_rate=tokenizer.sample_rate, crop_seconds=None, batch_size=1)
    clips = []
    for batch in ShardLoader(audio_dataset(str(a.audio), cfg, train=False)):
        if batch.texts[0]:
            clips.append((batch.keys[0], batch.audio[0, :, : int(batch.lengths[0])], batch.texts[0]))
        if len(clips) >= a.max_clips:
            break
    if not clips:
        raise ValueError(f"{a.audio}: no clips with transcripts")
    refs = [c[2] for c in clips]
    seconds = sum(c[1].shape[-1] for c in clips) / tokenizer.sample_rate
    t0 = time.perf_counter()
    with torch.inference_mode():
        codes = [tokenizer.encode(c[1][None].to(device), model.cfg.num_codebooks)[0].cpu() for c in clips]
        hyps = [text.decode(p) for p in transcribe_codes(model, codes, a.batch_size)]
    took = time.perf_counter() - t0
    systems = {"ours (codec tokens)": {"transcripts": hyps, **score(refs, hyps), "seconds": round(took, 2)}}
    from audiolm.evaluation.evaluate import to_16k

    for name in [j.strip() for j in a.judges.split(",") if j.strip() and j.strip() != "none"]:
        judge, why = load_transcriber(name)
        if judge is None:
            systems[name] = {"n/a": why}
            continue
        t0 = time.perf_counter()
        heard = [judge(to_16k(c[1].mean(dim=0).numpy(), tokenizer.sample_rate)) for c in clips]
        systems[name] = {"transcripts": heard, **score(refs, heard), "seconds": round(time.perf_counter() - t0, 2)}
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({"audio": str(a.audio), "clips": len(clips), "audio_seconds": seconds,
                                                  "references": refs, "keys": [c[0] for c in clips],
                                                  "systems": systems}, indent=1))
    print(f"{len(clips)} clips, {seconds:.0f} s of audio from {a.audio}")
    print(f"{'system':24s} {'WER':>7s} {'95% interval':>16s} {'CER':>7s} {'x real time':>12s}")
    for name, s in systems.items():
        if "n/a" in s:
            print(f"{name:24s} n/a: {s['n/a']}")
            continue
        lo, hi = s["wer_95"]
        print(f"{name:24s} {100 * s['wer']:6.1f}% {100 * lo:7.1f}-{100 * hi:5.1f}% {100 * (s['cer'] or 0):6.1f}% "
              f"{seconds / max(s['seconds'], 1e-9):11.0f}x")
    print(f"wrote {out / 'results.json'}")
    return 0
