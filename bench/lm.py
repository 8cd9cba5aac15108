"""LM training-step throughput of our Transformer beside a plain nanoGPT-style GPT, in one run.

Both sides are a GPT over tokens (vocab 1024) of the same width, depth and heads, with the token
embedding tied to the output head, trained by the same step: forward, cross-entropy over every
position, backward, AdamW (lr 3e-4, betas 0.9/0.95, weight decay 0.1; fused on CUDA).

- ours: ``nn.Embedding`` -> ``audiolm.nn.transformer.Transformer`` (RMSNorm, RoPE, SwiGLU, SDPA)
  -> tied head.
- reference (written below, nanoGPT's ``model.py`` in miniature): token + learned position
  embeddings, pre-LayerNorm blocks, one fused qkv projection, SDPA with ``is_causal=True``, GELU
  MLP, final LayerNorm, tied head. No biases on either side. The GELU MLP's hidden width is
  chosen so the whole model's parameter count is as close to ours as a multiple of 8 allows (the
  learned positions are paid for with a slightly narrower MLP); both counts are in the rows.

Figures: tokens per second of the train step (ratio = ours / reference), achieved model TFLOP/s
and, where a peak is known, model FLOPs utilization. Model FLOPs per token follow nanoGPT's
``estimate_mfu``: ``6 * N + 12 * layers * dim * seq`` (N: parameters that take part in a matmul,
i.e. without the learned position table; the attention term counts the full, unmasked score
matrix). The peak comes from ``--peak-tflops`` or, on CUDA with bf16, from a table of dense bf16
peaks by device name (H100 SXM / H200 989, H100 PCIe 756, A100 312 TFLOP/s); on the CPU MFU is
n/a unless ``--peak-tflops`` is given.

On the CPU presets torch runs on one thread (``--threads`` to change). Timed steps alternate
between the two models, so outside load hits both alike; each figure comes from the best of its
timed steps (the JSON ``config`` also carries the medians).

    python bench/lm.py                                      # CPU preset: dim 128, 2 layers, fp32
    python bench/lm.py --device cuda --preset gpu           # ~300M params, seq 2048, bf16 autocast
    python bench/lm.py --device cuda --preset gpu --compile # both models under torch.compile
    python bench/lm.py --json                               # JSON rows on stdout, table on stderr
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from einops import rearrange  # noqa: E402
from torch import nn  # noqa: E402

from audiolm.nn.transformer import Transformer, TransformerConfig, init_weights  # noqa: E402

BENCH = "lm"
VOCAB = 1024
# dense bf16 peaks in TFLOP/s; the longest name contained in the device's name wins
PEAK_TFLOPS_BF16 = {"H100 PCIe": 756.0, "H100": 989.0, "H200": 989.0, "A100": 312.0}


@dataclass
class Preset:
    dim: int
    layers: int
    heads: int
    seq: int
    batch: int
    warmup: int  # untimed train steps per model
    steps: int  # timed train steps per model
    precision: str  # "fp32" or "bf16" (autocast)


PRESETS = {
    "cpu": Preset(dim=128, layers=2, heads=4, seq=256, batch=4, warmup=3, steps=15, precision="fp32"),
    "gpu": Preset(dim=1024, layers=24, heads=16, seq=2048, batch=8, warmup=5, steps=20, precision="bf16"),
    # the smallest run that goes through every code path (for the test suite)
    "smoke": Preset(dim=64, layers=1, heads=2, seq=64, batch=2, warmup=1, steps=2, precision="fp32"),
}


# ------------------------------------------------------------------------------ devices, output


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return f"cpu: {name}, {cores} cores"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


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


def alternate(fns: dict[str, Callable[[], object]], warmup: int, repeats: int,
              device: torch.device) -> dict[str, dict[str, float]]:
    """Seconds per call of each function (``best`` and ``median`` of ``repeats``), calls
    interleaved across the functions so that outside load hits them alike."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            sync(device)
            t0 = time.perf_counter()
            fn()
            sync(device)
            times[name].append(time.perf_counter() - t0)
    return {k: {"best": min(v), "median": statistics.median(v)} for k, v in times.items()}


def peak_tflops(device: torch.device, precision: str, given: float | None) -> float | None:
    """``given``, else the table's dense bf16 peak for a CUDA device running bf16, else None."""
    if given is not None:
        return given
    if device.type != "cuda" or precision != "bf16":
        return None
    name = torch.cuda.get_device_name(device)
    for key in sorted(PEAK_TFLOPS_BF16, key=len, reverse=True):
        if key.lower() in name.lower():
            return PEAK_TFLOPS_BF16[key]
    return None


# ------------------------------------------------------------------------------------- models


class OurGPT(nn.Module):
    """``ids [B, S] -> logits [B, S, V]``: embedding, our Transformer, head tied to the embedding."""

    def __init__(self, vocab: int, cfg: TransformerConfig) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, cfg.dim)
        self.transformer = Transformer(cfg)
        self.head = nn.Linear(cfg.dim, vocab, bias=False)
        self.head.weight = self.embed.weight
        init_weights(self, cfg.num_layers)

    def forward(self, ids: torch.Tensor, cache=None) -> torch.Tensor:
        return self.head(self.transformer(self.embed(ids), cache=cache))


class RefBlock(nn.Module):
    """nanoGPT block: ``x + attn(ln_1(x))``, ``x + mlp(ln_2(x))``; GELU MLP of width ``hidden``."""

    def __init__(self, dim: int, heads: int, hidden: int) -> None:
        super().__init__()
        self.heads = heads
        self.ln_1 = nn.LayerNorm(dim, bias=False)
        self.c_attn = nn.Linear(dim, 3 * dim, bias=False)
        self.attn_proj = nn.Linear(dim, dim, bias=False)
        self.ln_2 = nn.LayerNorm(dim, bias=False)
        self.c_fc = nn.Linear(dim, hidden, bias=False)
        self.mlp_proj = nn.Linear(hidden, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.c_attn(self.ln_1(x)).split(x.shape[-1], dim=-1)  # [B, S, D] each
        q, k, v = (rearrange(t, "b s (h d) -> b h s d", h=self.heads) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # [B, H, S, Dh]
        x = x + self.attn_proj(rearrange(y, "b h s d -> b s (h d)"))
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x))))


class RefGPT(nn.Module):
    """``ids [B, S] -> logits [B, S, V]``: nanoGPT's GPT (learned positions, LayerNorm, GELU)."""

    def __init__(self, vocab: int, dim: int, layers: int, heads: int, seq: int, hidden: int) -> None:
        super().__init__()
        self.wte = nn.Embedding(vocab, dim)
        self.wpe = nn.Embedding(seq, dim)
        self.blocks = nn.ModuleList(RefBlock(dim, heads, hidden) for _ in range(layers))
        self.ln_f = nn.LayerNorm(dim, bias=False)
        self.lm_head = nn.Linear(dim, vocab, bias=False)
        self.lm_head.weight = self.wte.weight
        for name, p in self.named_parameters():
            if p.dim() == 2:
                std = 0.02 / math.sqrt(2 * layers) if name.endswith("proj.weight") else 0.02
                nn.init.normal_(p, mean=0.0, std=std)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        pos = torch.arange(ids.shape[1], device=ids.device)
        x = self.wte(ids) + self.wpe(pos)  # [B, S, D]
        for block in self.blocks:
            x = block(x)
        return self.lm_head(self.ln_f(x))


def transformer_config(p: Preset) -> TransformerConfig:
    return TransformerConfig(dim=p.dim, num_layers=p.layers, num_heads=p.heads, max_seq_len=p.seq)


def reference_hidden(p: Preset) -> int:
    """GELU width (a multiple of 8) that brings the reference's parameter count nearest ours:
    ``2 * D * H_gelu * L + S * D = 3 * D * H_swiglu * L`` (everything else is equal)."""
    swiglu = transformer_config(p).mlp_hidden_dim
    exact = 1.5 * swiglu - p.seq / (2 * p.layers)
    return max(8, 8 * round(exact / 8))


def build_models(p: Preset) -> tuple[OurGPT, RefGPT]:
    torch.manual_seed(0)
    ours = OurGPT(VOCAB, transformer_config(p))
    torch.manual_seed(0)
    ref = RefGPT(VOCAB, p.dim, p.layers, p.heads, p.seq, reference_hidden(p))
    return ours, ref


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())  # tied weights counted once


def matmul_params(module: nn.Module) -> int:
    """Parameters that take part in a matmul: all but the learned position table."""
    return count(module) - (module.wpe.weight.numel() if isinstance(module, RefGPT) else 0)


def flops_per_token(module: nn.Module, p: Preset) -> float:
    return 6.0 * matmul_params(module) + 12.0 * p.layers * p.dim * p.seq


# ------------------------------------------------------------------------------ the train step


class TrainStep:
    """Forward, cross-entropy, backward and an AdamW step of ``model`` on a fixed batch."""

    def __init__(self, model: nn.Module, ids: torch.Tensor, precision: str, compile: bool) -> None:
        self.model = model
        self.forward = torch.compile(model) if compile else model
        fused = ids.device.type == "cuda"
        self.opt = torch.optim.AdamW(model.parameters(), lr=3e-4, betas=(0.9, 0.95), weight_decay=0.1, fused=fused)
        self.inputs, self.targets = ids[:, :-1], ids[:, 1:]
        self.precision = precision

    def __call__(self) -> torch.Tensor:
        device = self.inputs.device
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"):
            logits = self.forward(self.inputs)  # [B, S, V]
            loss = F.cross_entropy(rearrange(logits, "b s v -> (b s) v"), rearrange(self.targets, "b s -> (b s)"))
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return loss.detach()


# --------------------------------------------------------------------------------------- main


def run(device: torch.device, preset_name: str, compile: bool = False, peak: float | None = None,
        log=sys.stderr) -> list[dict]:
    p = PRESETS[preset_name]
    ours, ref = build_models(p)
    ours, ref = ours.to(device).train(), ref.to(device).train()
    params_ours, params_ref = count(ours), count(ref)
    hidden = reference_hidden(p)
    print(f"parameters: ours {params_ours:,}, reference {params_ref:,} (GELU width {hidden} beside SwiGLU "
          f"{transformer_config(p).mlp_hidden_dim})", file=log)
    dev = describe_device(device)
    common = {"preset": preset_name, **asdict(p), "vocab": VOCAB, "compile": compile, "torch": torch.__version__,
              "threads": torch.get_num_threads(), "reference_mlp_hidden": hidden,
              "ours_mlp_hidden": transformer_config(p).mlp_hidden_dim}
    rows = [{"bench": BENCH, "figure": "params", "ours": float(params_ours), "reference": float(params_ref),
             "ratio": params_ours / params_ref, "unit": "parameters", "device": dev, "config": common}]

    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, VOCAB, (p.batch, p.seq + 1), generator=g).to(device)  # inputs + shifted targets
    steps = {"ours": TrainStep(ours, ids, p.precision, compile), "reference": TrainStep(ref, ids, p.precision, compile)}
    print(f"train: {p.warmup} warm-up + {p.steps} timed steps each, batch {p.batch} x {p.seq} tokens, "
          f"{p.precision}{', compiled' if compile else ''}", file=log)
    t = alternate(steps, p.warmup, p.steps, device)
    for name, step in steps.items():
        if not torch.isfinite(step()).item():
            raise RuntimeError(f"the {name} train step produced a non-finite loss")
    tokens = p.batch * p.seq
    tps = {k: tokens / v["best"] for k, v in t.items()}
    rows.append({"bench": BENCH, "figure": "train_step", "ours": tps["ours"], "reference": tps["reference"],
                 "ratio": tps["ours"] / tps["reference"], "unit": "tokens/s", "device": dev,
                 "config": {**common, "step_s": t}})

    fpt = {"ours": flops_per_token(ours, p), "reference": flops_per_token(ref, p)}
    tflops = {k: fpt[k] * tps[k] / 1e12 for k in tps}
    flops_cfg = {**common, "flops_per_token": fpt, "formula": "6 * matmul params + 12 * layers * dim * seq"}
    rows.append({"bench": BENCH, "figure": "train_tflops", "ours": tflops["ours"], "reference": tflops["reference"],
                 "ratio": tflops["ours"] / tflops["reference"], "unit": "model TFLOP/s", "device": dev,
                 "config": flops_cfg})
    peak = peak_tflops(device, p.precision, peak)
    if peak is None:
        print("MFU: n/a (no known peak for this device and precision; pass --peak-tflops)", file=log)
    else:
        mfu = {k: v / peak for k, v in tflops.items()}
        rows.append({"bench": BENCH, "figure": "mfu", "ours": mfu["ours"], "reference": mfu["reference"],
                     "ratio": mfu["ours"] / mfu["reference"], "unit": "fraction of peak", "device": dev,
                     "config": {**flops_cfg, "peak_tflops": peak}})
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default=None, help="cpu or cuda[:N] (default: cuda when available, else cpu)")
    ap.add_argument("--preset", choices=sorted(PRESETS), default=None,
                    help="sizes: cpu (default on CPU), gpu (default on CUDA), smoke (tests)")
    ap.add_argument("--smoke", action="store_true", help="the smallest run (same as --preset smoke)")
    ap.add_argument("--compile", action="store_true", help="run both models under torch.compile")
    ap.add_argument("--peak-tflops", type=float, default=None,
                    help="device peak in TFLOP/s for MFU (default: a bf16 table on CUDA, n/a on the CPU)")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch CPU threads (default: 1 with the cpu and smoke presets, torch's choice with gpu)")
    ap.add_argument("--json", action="store_true", help="print JSON rows on stdout (the table goes to stderr)")
    args = ap.parse_args(argv)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda was asked for but torch sees no CUDA device")
    if args.peak_tflops is not None and not args.peak_tflops > 0:
        ap.error(f"--peak-tflops must be > 0, got {args.peak_tflops}")
    preset = "smoke" if args.smoke else (args.preset or ("gpu" if device.type == "cuda" else "cpu"))
    threads = args.threads or (None if preset == "gpu" else 1)
    if threads:
        torch.set_num_threads(threads)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    rows = run(device, preset, compile=args.compile, peak=args.peak_tflops)
    print_table(rows, sys.stderr if args.json else sys.stdout)
    if args.json:
        for r in rows:
            print(json.dumps(r), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
