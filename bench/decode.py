"""Autoregressive decoding speed of our Transformer: KV-cached steps beside re-running the whole
sequence at every step, in one run, at batch 1, 16 and 64.

The model is bench/lm.py's ``OurGPT`` (embedding -> ``audiolm.nn.transformer.Transformer`` -> tied
head, vocab 1024), the same weights for every variant. A generation starts from a prompt of ``P``
random tokens and produces ``N`` new tokens, one per step; every step samples from the last
position's logits with ``audiolm.sampling.sample`` (temperature 0.9, top-k 64).

- ours: the prompt goes through the Transformer once into a preallocated ``KVCache`` (the prefill,
  which yields the first token), then ``N - 1`` decode steps, each: embed the last token, run the
  Transformer on it with the cache, head, sample.
- reference: no cache; each of the ``N`` steps runs the Transformer over the whole sequence so far
  (prompt and the tokens generated), then head and sampling on the last position. Computing the
  head on the last position only keeps the reference from paying for logits it never uses.
- CUDA only: the cached decode step captured in CUDA graphs (``bench/_static_decode.py``: the cache
  slot lives in a device tensor, attention reads windows of ``--bucket`` slots with a mask, one
  graph per window), against the eager cached loop above.

Figures (``B``: the batch): ``decode_bB``, steps per second (one new token per sequence a step),
ours = cached, reference = uncached; on CUDA also ``graph_bB``, ours = CUDA graphs, reference =
eager cached. A generation is timed whole (prefill included), steps/s = ``N`` / its time; the JSON
``config`` also carries tokens/s (``B`` x steps/s) and the medians.

Correctness first: before any timing, for every batch, each variant decodes 8 tokens beside the
uncached forward, in float32: greedily (the cached loop, the graph-ready step run eagerly over
windows of 4 slots so that it crosses windows, and on CUDA its CUDA graphs; the very same tokens
are required) and fed the same random tokens (the eager variants); every step's logits must match
the uncached forward's within 1e-3. Otherwise the script stops with an error. The logits matter:
an untrained model with a tied head greedily repeats its input token, whatever its cache holds.
The ``gpu`` preset then times the model in bfloat16 (weights and cache).

On the CPU presets torch runs on one thread (``--threads`` to change). Timed generations alternate
between the variants, so outside load hits them alike; each figure comes from the best of its
timed generations.

    python bench/decode.py                              # CPU preset: dim 256, 4 layers, 8 + 24 tokens
    python bench/decode.py --device cuda --preset gpu   # ~300M params, bf16, 32 + 256 tokens
    python bench/decode.py --json                       # JSON rows on stdout, table on stderr
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from torch import nn  # noqa: E402

from audiolm.nn.kv_cache import KVCache  # noqa: E402
from audiolm.nn.transformer import TransformerConfig  # noqa: E402
from audiolm.sampling import sample  # noqa: E402
from bench._static_decode import Sampler, StaticDecoder  # noqa: E402
from bench.lm import VOCAB, OurGPT, alternate, count, describe_device, print_table  # noqa: E402

BENCH = "decode"
TEMPERATURE, TOP_K = 0.9, 64
CHECK_STEPS, CHECK_BUCKET, LOGIT_TOL = 8, 4, 1e-3


@dataclass
class Preset:
    dim: int
    layers: int
    heads: int
    prompt: int  # prompt tokens P
    steps: int  # new tokens N per generation (the first comes from the prefill)
    batches: tuple[int, ...]
    warmup: int  # untimed generations per variant and batch
    repeats: int  # timed generations per variant and batch
    precision: str  # "fp32", or "bf16": weights and cache in bfloat16 (checks run in float32 first)
    bucket: int  # CUDA graph window in slots (0: one window over the whole cache)


PRESETS = {
    "cpu": Preset(dim=256, layers=4, heads=4, prompt=8, steps=24, batches=(1, 16, 64), warmup=1, repeats=3,
                  precision="fp32", bucket=16),
    "gpu": Preset(dim=1024, layers=24, heads=16, prompt=32, steps=256, batches=(1, 16, 64), warmup=1, repeats=5,
                  precision="bf16", bucket=64),
    # the smallest run that goes through every code path (for the test suite)
    "smoke": Preset(dim=32, layers=1, heads=2, prompt=4, steps=6, batches=(1, 16, 64), warmup=1, repeats=1,
                    precision="fp32", bucket=4),
}


# ---------------------------------------------------------------------------------- decoding


def last_logits(model: OurGPT, ids: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
    """``ids [B, S]`` -> logits of the last position ``[B, V]`` (with a cache: ``S`` slots appended)."""
    h = model.transformer(model.embed(ids), cache=cache)  # [B, S, D]
    return model.head(h[:, -1])


@torch.no_grad()
def generate_cached(model: OurGPT, prompt: torch.Tensor, steps: int, cache: KVCache, sampler: Sampler) -> torch.Tensor:
    """``prompt [B, P]`` -> ``steps`` new ids ``[B, steps]``: prefill, then one cached step per token."""
    cache.reset()
    token = sampler(last_logits(model, prompt, cache))  # [B]
    out = [token]
    for _ in range(steps - 1):
        token = sampler(last_logits(model, token[:, None], cache))
        out.append(token)
    return torch.stack(out, dim=1)


@torch.no_grad()
def generate_uncached(model: OurGPT, prompt: torch.Tensor, steps: int, sampler: Sampler) -> torch.Tensor:
    """``prompt [B, P]`` -> ``steps`` new ids ``[B, steps]``, re-running the whole sequence each step."""
    ids = prompt
    for _ in range(steps):
        token = sampler(last_logits(model, ids))
        ids = torch.cat([ids, token[:, None]], dim=1)  # [B, S + 1]
    return ids[:, prompt.shape[1]:]


class Recorder:
    """Sampler for the checks: greedy, or the given tokens ``forced [B, steps]`` one column a call
    (teacher forcing); keeps every call's logits (float32 copies)."""

    def __init__(self, forced: torch.Tensor | None = None) -> None:
        self.forced = forced
        self.logits: list[torch.Tensor] = []

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        self.logits.append(logits.float().clone())
        if self.forced is None:
            return sample(logits, temperature=0)
        return self.forced[:, len(self.logits) - 1]


def check_decoding(model: OurGPT, prompt: torch.Tensor, steps: int) -> dict:
    """Compare every decode variant with the uncached forward before any timing, in two runs of
    ``steps`` tokens: greedy (the cached loop, the graph-ready step run eagerly and, on CUDA, its
    CUDA graphs: the same tokens, logits within ``LOGIT_TOL``), then fed random tokens (the eager
    variants: logits within ``LOGIT_TOL``). Greedy alone is a weak test on an untrained model with
    a tied head, which tends to repeat its input token. Raises RuntimeError on any difference."""
    b, p = prompt.shape
    fail = f"decode check failed at batch {b}"
    diffs: dict[str, float] = {}

    def compare(name: str, logits: list[torch.Tensor], ref: list[torch.Tensor]) -> None:
        if len(logits) != len(ref):
            raise RuntimeError(f"{fail}: the {name} decode made {len(logits)} steps, the uncached forward {len(ref)}")
        diffs[name] = max(float((a - r).abs().max()) for a, r in zip(logits, ref))
        if not diffs[name] <= LOGIT_TOL:
            raise RuntimeError(f"{fail}: the {name} decode's logits differ from the uncached forward's by "
                               f"{diffs[name]:.3g} (> {LOGIT_TOL})")

    forced = torch.randint(0, VOCAB, (b, steps), generator=torch.Generator().manual_seed(1)).to(prompt.device)
    for run, tokens_of in (("greedy", None), ("forced", forced)):
        ref_rec = Recorder(tokens_of)
        ref = generate_uncached(model, prompt, steps, ref_rec)
        recs = {"cached": Recorder(tokens_of), "static step": Recorder(tokens_of)}
        got = {"cached": generate_cached(model, prompt, steps, model.transformer.make_cache(b, p + steps),
                                         recs["cached"]),
               "static step": StaticDecoder(model, b, p + steps, recs["static step"], CHECK_BUCKET,
                                            graphs=False).generate(prompt, steps)}
        logits = {k: r.logits for k, r in recs.items()}
        if run == "greedy" and prompt.device.type == "cuda":  # a captured sampler records nothing: a buffer does
            decoder = StaticDecoder(model, b, p + steps, partial(sample, temperature=0), CHECK_BUCKET,
                                    keep_logits=True)
            decoder.capture(p, steps)
            got["CUDA graph"] = decoder.generate(prompt, steps)
            logits["CUDA graph"] = decoder.history
        for name, tokens in got.items():
            if not torch.equal(tokens, ref):
                row, step = (int(i) for i in (tokens != ref).nonzero()[0])
                raise RuntimeError(f"{fail}: the {name} decode's {run} tokens differ from the uncached forward's "
                                   f"at step {step} of row {row}: {tokens[row].tolist()} vs {ref[row].tolist()}")
            compare(name if run == "greedy" else f"{name} ({run})", logits[name], ref_rec.logits)
    return {"check_steps": steps, "check_variants": sorted(diffs), "check_max_logit_diff": max(diffs.values())}


# --------------------------------------------------------------------------------------- main


def build_model(p: Preset) -> OurGPT:
    window = p.bucket or 1
    max_len = max(window * -(-(p.prompt + p.steps) // window), p.prompt + CHECK_STEPS + CHECK_BUCKET)
    torch.manual_seed(0)
    cfg = TransformerConfig(dim=p.dim, num_layers=p.layers, num_heads=p.heads, max_seq_len=max_len)
    return OurGPT(VOCAB, cfg)


def run(device: torch.device, preset_name: str, bucket: int | None = None, log=sys.stderr) -> list[dict]:
    p = PRESETS[preset_name]
    if bucket is not None:
        p = replace(p, bucket=bucket)
    model: nn.Module = build_model(p).to(device).eval()
    dev = describe_device(device)
    graphs = device.type == "cuda"
    common = {"preset": preset_name, **asdict(p), "vocab": VOCAB, "params": count(model), "torch": torch.__version__,
              "threads": torch.get_num_threads(), "temperature": TEMPERATURE, "top_k": TOP_K,
              "cuda_graph": "timed" if graphs else f"skipped ({device.type})"}
    print(f"model: {count(model):,} parameters (dim {p.dim}, {p.layers} layers); prompt {p.prompt} + {p.steps} "
          f"new tokens a generation", file=log)

    g = torch.Generator().manual_seed(0)
    prompts = {b: torch.randint(0, VOCAB, (b, p.prompt), generator=g).to(device) for b in p.batches}
    checks = {}
    for b, prompt in prompts.items():
        checks[b] = check_decoding(model, prompt, CHECK_STEPS)
        print(f"check b{b}: {', '.join(checks[b]['check_variants'])} agree with the uncached forward over "
              f"{CHECK_STEPS} steps (max logit diff {checks[b]['check_max_logit_diff']:.2g})", file=log)
    if not graphs:
        print(f"CUDA graph: skipped on {device.type} (capture needs a CUDA device; graph_bB rows come from a CUDA run)",
              file=log)
    if p.precision == "bf16":
        model = model.to(torch.bfloat16)

    sampler = partial(sample, temperature=TEMPERATURE, top_k=TOP_K)
    rows = []
    for b, prompt in prompts.items():
        cache = model.transformer.make_cache(b, p.prompt + p.steps)
        fns = {"cached": partial(generate_cached, model, prompt, p.steps, cache, sampler),
               "uncached": partial(generate_uncached, model, prompt, p.steps, sampler)}
        cfg = {**common, "batch": b, **checks[b]}
        decoder = None
        if graphs:
            decoder = StaticDecoder(model, b, p.prompt + p.steps, sampler, p.bucket)
            cfg["graphs_captured"] = decoder.capture(p.prompt, p.steps)
            fns["graph"] = partial(decoder.generate, prompt, p.steps)
        t = alternate(fns, p.warmup, p.repeats, device)
        rate = {k: p.steps / v["best"] for k, v in t.items()}
        cfg.update(generation_s=t, tokens_per_s={k: b * v for k, v in rate.items()})
        print(f"b{b}: " + ", ".join(f"{k} {v:,.1f} steps/s" for k, v in rate.items()), file=log)
        rows.append({"bench": BENCH, "figure": f"decode_b{b}", "ours": rate["cached"], "reference": rate["uncached"],
                     "ratio": rate["cached"] / rate["uncached"], "unit": "steps/s", "device": dev, "config": cfg})
        if graphs:
            rows.append({"bench": BENCH, "figure": f"graph_b{b}", "ours": rate["graph"], "reference": rate["cached"],
                         "ratio": rate["graph"] / rate["cached"], "unit": "steps/s", "device": dev, "config": cfg})
        del fns, cache, decoder  # free this batch's caches (and graphs) before the next
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default=None, help="cpu or cuda[:N] (default: cuda when available, else cpu)")
    ap.add_argument("--preset", choices=sorted(PRESETS), default=None,
                    help="sizes: cpu (default on CPU), gpu (default on CUDA), smoke (tests)")
    ap.add_argument("--smoke", action="store_true", help="the smallest run (same as --preset smoke)")
    ap.add_argument("--bucket", type=int, default=None,
                    help="CUDA graph attention window in cache slots (default: the preset's; 0: the whole cache)")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch CPU threads (default: 1 with the cpu and smoke presets, torch's choice with gpu)")
    ap.add_argument("--json", action="store_true", help="print JSON rows on stdout (the table goes to stderr)")
    args = ap.parse_args(argv)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda was asked for but torch sees no CUDA device")
    if args.bucket is not None and args.bucket < 0:
        ap.error(f"--bucket must be >= 0, got {args.bucket}")
    preset = "smoke" if args.smoke else (args.preset or ("gpu" if device.type == "cuda" else "cpu"))
    threads = args.threads or (None if preset == "gpu" else 1)
    if threads:
        torch.set_num_threads(threads)
    if device.type == "cuda" and device.index is not None:
        torch.cuda.set_device(device.index)  # streams and graph pools follow the current device
    rows = run(device, preset, bucket=args.bucket)
    print_table(rows, sys.stderr if args.json else sys.stdout)
    if args.json:
        for r in rows:
            print(json.dumps(r), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
