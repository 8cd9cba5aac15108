"""Streaming: latency, time to first audio, the real-time factor of streaming decode, and whether a
chunk late in a stream costs what an early one does. One run, one device, random-init models of
the quickstart's sizes (``configs/codec/tiny-causal.yaml``, ``configs/codec/tiny.yaml``,
``configs/lm/valle-{ar,nar}-tiny.yaml``), batch 1, warm.

Rows (ours / reference = ratio):

- ``latency_causal``: the causal tiny codec's algorithmic latency (one hop: a frame's codes need
  the samples it covers), against Mimi's published 80 ms (one 12.5 Hz frame);
- ``decode_rtf_causal``: real-time factor (seconds of compute per second of audio) of decoding
  4-frame chunks through the causal codec's stream, against decoding the same codes in one pass
  (the target: streaming RTF <= 0.5 on 2 CPU cores);
- ``decode_rtf_windowed``: the same for the quickstart's codec (``tiny.yaml``: not causal, decoded
  in windows of its measured reach), against its one-pass decode;
- ``chunk_cost_late``: median time of the 1,000th 4-frame chunk of a causal stream, against the
  10th (the target: <= 1.2, a stream's cost is linear in its length): the stream's state is saved
  before each and the two chunks are timed alternately, so that load drift falls on both;
- ``first_audio_causal`` / ``first_audio_windowed``: milliseconds from the call to the first audio
  of a streamed voice clone (prompt encoding, the AR's first chunk of 10 frames, the NAR, the
  decode; the windowed codec also waits for its lookahead), against the one-pass clone of the same
  length (the target: <= 300 ms on 2 CPU cores).

    python bench/stream.py                  # CPU preset
    python bench/stream.py --device cuda    # on a GPU
    python bench/stream.py --smoke          # tiny sizes: checks the plumbing
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import yaml  # noqa: E402

from bench.codec import describe_device, print_table  # noqa: E402
from codec.codec import CodecConfig, build_codec  # noqa: E402
from codec.stream import WindowedDecodeStream, decode_stream  # noqa: E402

MIMI_LATENCY_MS = 80.0  # one frame of Mimi at 12.5 Hz (its published algorithmic latency)
PRESETS = {
    "smoke": dict(decode_seconds=1.0, late_chunk=30, early_chunk=5, clone_frames=30, repeats=1, small=True),
    "cpu": dict(decode_seconds=20.0, late_chunk=1000, early_chunk=10, clone_frames=100, repeats=3, small=False),
    "gpu": dict(decode_seconds=20.0, late_chunk=1000, early_chunk=10, clone_frames=100, repeats=5, small=False),
}


def codec_of(config: str, small: bool):
    model = yaml.safe_load((ROOT / "configs" / "codec" / config).read_text())["model"]["codec"]
    if small:
        model["seanet"]["n_filters"] = 4
        model.setdefault("fourier", {}).update(width=32, layers=2, encoder_layers=1)
    torch.manual_seed(0)
    return build_codec(CodecConfig(**model)).eval()


def lm_of(stage: str, small: bool):
    from audiolm.models.valle import ValleAR, ValleConfig
    from audiolm.models.valle_nar import ValleNAR

    cfg = yaml.safe_load((ROOT / "configs" / "lm" / f"valle-{stage}-tiny.yaml").read_text())["model"]["model"]["init_args"]["cfg"]
    if small:
        cfg.update(dim=32, layers=1, heads=2)
    torch.manual_seed(0)
    return (ValleAR if stage == "ar" else ValleNAR)(ValleConfig(**cfg)).eval()


def row(figure: str, ours: float, reference: float, unit: str, device: str, config: dict) -> dict:
    return {"bench": "stream", "figure": figure, "ours": float(ours), "reference": float(reference),
            "ratio": float(ours) / float(reference), "unit": unit, "device": device, "config": config}


def decode_rtf(codec, codes: torch.Tensor, chunk: int, repeats: int) -> tuple[float, float, list[float]]:
    """(streaming RTF, one-pass RTF, per-chunk seconds of the last streaming run)."""
    seconds = codes.shape[-1] / codec.frame_rate
    best_stream, best_whole, chunk_times = float("inf"), float("inf"), []
    with torch.inference_mode():
        codec.decode(codes[..., :8])  # warm
        for _ in range(repeats):
            stream = decode_stream(codec)
            times = []
            t0 = time.perf_counter()
            for i in range(0, codes.shape[-1], chunk):
                c0 = time.perf_counter()
                stream.decode_step(codes[..., i:i + chunk])
                times.append(time.perf_counter() - c0)
            stream.finish()
            best_stream = min(best_stream, time.perf_counter() - t0)
            chunk_times = times
            t0 = time.perf_counter()
            codec.decode(codes)
            best_whole = min(best_whole, time.perf_counter() - t0)
    return best_stream / seconds, best_whole / seconds, chunk_times


def chunk_costs(codec, codes: torch.Tensor, early: int, late: int, chunk: int, repeats: int) -> tuple[float, float]:
    """Median seconds of decoding chunk ``early`` and chunk ``late`` of one stream: the stream's
    state is saved before each, then the two are timed alternately (drift in the machine's load
    falls on both alike)."""
    stream = codec.stream()
    saved = {}
    with torch.inference_mode():
        for i in range(late + 1):
            if i in (early, late):
                saved[i] = stream.state()
            stream.decode_step(codes[..., i * chunk:(i + 1) * chunk])
        times = {early: [], late: []}
        for _ in range(repeats):
            for i in (early, late):
                stream.load_state(saved[i])
                t0 = time.perf_counter()
                stream.decode_step(codes[..., i * chunk:(i + 1) * chunk])
                times[i].append(time.perf_counter() - t0)
    return statistics.median(times[early]), statistics.median(times[late])


def first_audio(codec, ar, nar, frames: int, repeats: int) -> tuple[float, float]:
    """(ms to the first streamed audio, ms to the whole one-pass clone) of a ``frames``-frame clone."""
    from audiolm.models.valle_generate import clone, clone_stream
    from audiolm.models.valle_length import LengthBounds
    from audiolm.sampling import SamplingConfig

    g = torch.Generator().manual_seed(0)
    prompt_wav = torch.randn(1, 1, int(3 * codec.sample_rate), generator=g) * 0.1
    text = torch.randint(1, ar.cfg.text_vocab, (40,), generator=g)
    bounds = LengthBounds(min_frames=frames, max_frames=frames, expected_frames=float(frames), frames_per_token=1.0,
                          measured=True)
    sampling = SamplingConfig(temperature=1.0, top_k=50, seed=0)
    k = nar.cfg.num_codebooks
    best_first, best_whole = float("inf"), float("inf")
    with torch.inference_mode():
        for _ in range(repeats + 1):  # the first round warms up
            t0 = time.perf_counter()
            prompt = codec.encode(prompt_wav)[0, :k]
            stream = decode_stream(codec)
            stream.decode_step(prompt[None])
            first = None
            for chunk in clone_stream(ar, nar, text, prompt, None, sampling, bounds, chunk_frames=10):
                if stream.decode_step(chunk[None]).shape[-1] and first is None:
                    first = time.perf_counter() - t0
                    break
            if first is None:
                stream.finish()
                first = time.perf_counter() - t0
            t0 = time.perf_counter()
            prompt = codec.encode(prompt_wav)[0, :k]
            out = clone(ar, nar, text, prompt, None, sampling, bounds)
            codec.decode(torch.cat([prompt, out.codes], 1)[None])
            whole = time.perf_counter() - t0
            best_first, best_whole = min(best_first, first), min(best_whole, whole)
    return 1000 * best_first, 1000 * best_whole


def run(device: torch.device, preset_name: str, threads: int | None) -> list[dict]:
    p = PRESETS[preset_name]
    if threads:
        torch.set_num_threads(threads)
    dev = describe_device(device)
    causal, windowed = codec_of("tiny-causal.yaml", p["small"]).to(device), codec_of("tiny.yaml", p["small"]).to(device)
    rows = []
    hop_ms = 1000 * causal.hop_length / causal.sample_rate
    rows.append(row("latency_causal", hop_ms, MIMI_LATENCY_MS, "ms", dev,
                    {"codec": "configs/codec/tiny-causal.yaml", "reference": "Mimi, one 12.5 Hz frame (published)"}))

    g = torch.Generator().manual_seed(0)
    frames = int(p["decode_seconds"] * causal.frame_rate)
    for name, codec in (("causal", causal), ("windowed", windowed)):
        codes = torch.randint(0, codec.cardinality, (1, codec.num_codebooks, frames), generator=g).to(device)
        rtf, whole, _ = decode_rtf(codec, codes, 4, p["repeats"])
        extra = {}
        if name == "windowed":
            w = WindowedDecodeStream(codec)
            extra = {"context_frames": w.context, "lookahead_frames": w.lookahead}
        rows.append(row(f"decode_rtf_{name}", rtf, whole, "s/s", dev,
                        {"codec": f"configs/codec/{'tiny-causal' if name == 'causal' else 'tiny'}.yaml",
                         "chunk_frames": 4, "seconds": p["decode_seconds"], "target": "ours <= 0.5", **extra}))

    late, early = p["late_chunk"], p["early_chunk"]
    codes = torch.randint(0, causal.cardinality, (1, causal.num_codebooks, 4 * (late + 1)), generator=g).to(device)
    early_t, late_t = chunk_costs(causal, codes, early, late, 4, 20 if not p["small"] else 3)
    rows.append(row("chunk_cost_late", 1000 * late_t, 1000 * early_t, "ms", dev,
                    {"chunks": [early, late], "chunk_frames": 4, "target": "ratio <= 1.2",
                     "how": "the stream's state saved before each chunk, the two chunks timed alternately"}))

    ar, nar = lm_of("ar", p["small"]).to(device), lm_of("nar", p["small"]).to(device)
    for name, codec in (("causal", causal), ("windowed", windowed)):
        first, whole = first_audio(codec, ar, nar, p["clone_frames"], p["repeats"])
        rows.append(row(f"first_audio_{name}", first, whole, "ms", dev,
                        {"models": "configs/lm/valle-{ar,nar}-tiny.yaml, random init", "clone_frames": p["clone_frames"],
                         "chunk_frames": 10, "target": "ours <= 300 ms on 2 CPU cores"}))
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    ap.add_argument("--preset", choices=tuple(PRESETS), default=None, help="default: cpu, or gpu on cuda")
    ap.add_argument("--smoke", action="store_true", help="the smoke preset")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--json", action="store_true", help="print the rows as JSON lines")
    a = ap.parse_args(argv)
    device = torch.device(a.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    preset = "smoke" if a.smoke else a.preset or ("gpu" if device.type == "cuda" else "cpu")
    rows = run(device, preset, a.threads)
    if a.json:
        for r in rows:
            print(json.dumps(r))
    else:
        print_table(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
