"""``codeclm semantic ...``: learn semantic units (k-means over frame features of audio shards),
and write them into token shards.

    codeclm semantic fit --shards AUDIO --out runs/semantic/mfcc100 --units 100
    codeclm semantic label --model runs/semantic/mfcc100 --audio AUDIO --tokens TOKENS
"""

from __future__ import annotations

import argparse
import time


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("fit", help="learn k-means units over MFCC, log-mel or HuBERT frame features")
    p.add_argument("--shards", required=True, help="audio shards: a directory, a shards.json or a brace pattern")
    p.add_argument("--out", required=True, help="model directory to write (semantic.safetensors + config.json)")
    p.add_argument("--units", type=int, default=100, help="number of units, k-means clusters (default 100)")
    p.add_argument("--features", default=None, choices=["mfcc", "logmel", "hubert"],
                   help="frame features (default: hubert with --hubert, else mfcc)")
    p.add_argument("--frame-rate", type=float, default=50.0, help="frames per second (default 50)")
    p.add_argument("--sample-rate", type=int, default=16000, help="audio is resampled to this rate (default 16000)")
    p.add_argument("--max-frames", type=int, default=200_000, help="frames sampled for fitting (default 200000)")
    p.add_argument("--iters", type=int, default=20, help="k-means iterations (default 20)")
    p.add_argument("--hubert", default=None, metavar="PATH",
                   help="local state dict of torchaudio's hubert_base (.pt, .pth, .safetensors); never downloaded")
    p.add_argument("--layer", type=int, default=6, help="HuBERT transformer layer, 1..12 (default 6)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    p.add_argument("--workers", type=int, default=0, help="audio decoding processes (default 0: in-process)")
    p.set_defaults(func=cmd_fit)

    p = sub.add_parser("label", help="add a semantic model's units to every sample of token shards (in place, restartable)")
    p.add_argument("--model", required=True, help="semantic model directory from `codeclm semantic fit`")
    p.add_argument("--audio", required=True, help="the audio shards the token shards were tokenized from")
    p.add_argument("--tokens", required=True, help="token shard directory from `codeclm codec tokenize` (rewritten in place)")
    p.set_defaults(func=cmd_label)


def cmd_fit(a: argparse.Namespace) -> None:
    import torch

    from data.semantic import SemanticConfig, fit_semantic

    features = a.features or ("hubert" if a.hubert else "mfcc")
    if a.hubert and features != "hubert":
        raise ValueError(f"--hubert is only used with --features hubert (got --features {features})")
    cfg = SemanticConfig(features=features, n_units=a.units, frame_rate=a.frame_rate, sample_rate=a.sample_rate,
                         hubert_path=a.hubert, hubert_layer=a.layer, kmeans_iters=a.iters, max_frames=a.max_frames,
                         seed=a.seed)
    device = a.device or ("cuda" if torch.cuda.is_available() else "cpu")
    t0 = time.time()
    model = fit_semantic(a.shards, cfg, a.out, device=device, workers=a.workers)
    s = model.fit_summary
    print(f"{a.out}: {model.n_units} units over {features} features at {model.frame_rate:g} Hz "
          f"(semantic_id {model.semantic_id}); fit on {s.frames_used} of {s.frames_seen} frames from {s.clips} clips "
          f"({s.seconds / 3600:.3f} h), {s.units_used} units in use, inertia {s.inertia:.3f}, {s.skipped} skipped "
          f"({time.time() - t0:.1f}s)")


def cmd_label(a: argparse.Namespace) -> None:
    from audiolm.semantic_labels import add_semantic_units
    from data.semantic import SemanticModel

    t0 = time.time()
    model = SemanticModel.load(a.model)
    s = add_semantic_units(model, a.audio, a.tokens)
    print(f"{a.tokens}: semantic units {model.semantic_id} in {s.samples} samples; {s.labelled} shards labelled, "
          f"{s.kept} already were, {s.missing} samples without audio ({time.time() - t0:.1f}s)")
    if s.missing_keys:
        print(f"  e.g. {', '.join(s.missing_keys[:5])}")
