"""Codec speed beside the ``encodec`` package's own 24 kHz model, in one run on one device.

(a) GAN train step throughput (audio seconds per second). Both generators are trained by the same
    step, which follows ``CodecModule.training_step`` line for line: a discriminator update
    (hinge) on detached reconstructions, then a generator update from L1 + multi-scale mel +
    hinge adversarial + feature matching through the gradient balancer, plus the quantizer's
    commitment loss; gradient clipping by norm; AdamW with the LambdaLR schedules of
    ``codec.training.make_optimizer``. The step is driven by a plain PyTorch loop (no Trainer,
    no logging) so the two models see exactly the same code. Loss weights, balancer, optimizer
    and discriminator sizes come from the ``model`` section of ``configs/codec/encodec24k.yaml``
    through ``CodecModule`` itself; each generator gets its own copy of the same MS-STFT
    discriminator (same initial weights) and its own balancer state.
(b) encode and decode speed at 6 kbps (8 codebooks), as times real time, in float32 eval mode.

Overrides of the YAML, so that both sides do the same work (listed in every JSON row):
- ``seanet.true_skip: false`` and ``seanet.causal: true``: EnCodec's 24 kHz model uses 1x1-conv
  shortcuts and causal padding; with these the two generators have the same parameter count.
- ``quantizer.quantizer_dropout: false``: every training step uses all 32 codebooks, as the
  package's model does when no bandwidth is set.
- ``quantizer.kmeans_init: false`` on both sides (the package's quantizer is rebuilt with
  ``kmeans_init=False``): k-means runs once at the first step of a real run and is no part of the
  throughput.

On the CPU presets torch runs on one thread (``--threads`` to change): on a machine shared with
other jobs a multi-threaded op waits for its slowest thread, which makes timings erratic.
Timed calls alternate between the two models (ours, reference, ours, ...), so load from other
processes hits both sides alike, and each figure comes from the best (shortest) of its timed
repetitions; the JSON ``config`` also carries the medians. Warm-up steps (the first of which
replaces the initial codebooks) are not timed.

    python bench/codec.py                               # CPU preset, < 90 s on 2 cores
    python bench/codec.py --device cuda --preset gpu    # batch 64 x 1 s, bf16 autocast
    python bench/codec.py --json                        # JSON rows on stdout, table on stderr
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import platform
import statistics
import sys
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import yaml  # noqa: E402

BENCH = "codec"
CONFIG = ROOT / "configs" / "codec" / "encodec24k.yaml"
BANDWIDTH_KBPS = 6.0
OVERRIDES = {
    "seanet": {"true_skip": False, "causal": True},
    "quantizer": {"quantizer_dropout": False, "kmeans_init": False},
}


@dataclass
class Preset:
    batch: int  # clips per train step
    seconds: float  # clip length in train steps
    warmup: int  # untimed train steps per model
    steps: int  # timed train steps per model
    infer_batch: int
    infer_seconds: float
    infer_warmup: int
    infer_repeats: int
    precision: str  # "fp32" or "bf16" (autocast in the train step)


PRESETS = {
    "cpu": Preset(batch=2, seconds=1.0, warmup=1, steps=5, infer_batch=2, infer_seconds=4.0, infer_warmup=1,
                  infer_repeats=5, precision="fp32"),
    "gpu": Preset(batch=64, seconds=1.0, warmup=5, steps=20, infer_batch=32, infer_seconds=10.0, infer_warmup=3,
                  infer_repeats=10, precision="bf16"),
    # the smallest run that goes through every code path (for the test suite)
    "smoke": Preset(batch=1, seconds=0.25, warmup=0, steps=1, infer_batch=1, infer_seconds=0.25, infer_warmup=0,
                    infer_repeats=1, precision="fp32"),
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


# ------------------------------------------------------------------------------------- models


def build_module():
    """``CodecModule`` from the YAML's ``model`` section with :data:`OVERRIDES` applied."""
    from jsonargparse import ArgumentParser

    from codec.lightning_module import CodecModule

    model = yaml.safe_load(CONFIG.read_text())["model"]
    for part, values in OVERRIDES.items():
        model["codec"][part].update(values)
    parser = ArgumentParser(exit_on_error=False)
    parser.add_class_arguments(CodecModule, "model")
    return parser.instantiate(parser.parse_object({"model": model})).model


def build_reference():
    """The package's 24 kHz model (random init) with a quantizer that skips k-means init."""
    from encodec import EncodecModel
    from encodec import quantization as qt

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the package uses the deprecated torch weight_norm
        model = EncodecModel.encodec_model_24khz(pretrained=False)
    q = model.quantizer
    model.quantizer = qt.ResidualVectorQuantizer(dimension=q.dimension, n_q=q.n_q, bins=q.bins, decay=q.decay,
                                                 kmeans_init=False,
                                                 threshold_ema_dead_code=q.threshold_ema_dead_code)
    return model


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# ------------------------------------------------------------------------------- the GAN step

Generator = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]  # wav -> (reconstruction, commitment)


class GanStep:
    """One training step of ``CodecModule`` (adversarial phase) for any generator."""

    def __init__(self, module, generator: torch.nn.Module, forward: Generator, discriminator: torch.nn.Module,
                 sample_rate: int, precision: str) -> None:
        from codec.losses import Balancer
        from codec.training import make_optimizer

        self.cfg, self.optim_cfg, self.mel_cfg = module.loss_cfg, module.optim_cfg, module.mel_cfg
        self.generator, self.forward, self.discriminator = generator, forward, discriminator
        self.sample_rate = sample_rate
        self.balancer = Balancer(copy.deepcopy(module.balancer.cfg)) if module.balancer is not None else None
        self.opt_g, self.sch_g = make_optimizer(generator.parameters(), self.optim_cfg.lr, self.optim_cfg)
        self.opt_d, self.sch_d = make_optimizer(discriminator.parameters(), self.optim_cfg.lr_discriminator,
                                                self.optim_cfg)
        self.precision = precision

    def __call__(self, real: torch.Tensor) -> dict[str, torch.Tensor]:
        """One step on ``real [B, C, T]``; returns the (detached) losses."""
        from codec.losses import (discriminator_loss, feature_matching_loss, generator_loss, l1_waveform_loss,
                                  multiscale_mel_loss)

        cfg = self.cfg
        with torch.autocast(real.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"):
            fake, commitment = self.forward(real)
            d_real = self.discriminator(real)
            d_fake = self.discriminator(fake.detach())
            loss_d = discriminator_loss(cfg.adversarial_kind, d_real.logits, d_fake.logits)
            self.opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            torch.nn.utils.clip_grad_norm_(self.discriminator.parameters(), self.optim_cfg.grad_clip_discriminator)
            self.opt_d.step()

            losses = {"l1": l1_waveform_loss(fake, real), "mel": multiscale_mel_loss(fake, real, self.sample_rate, self.mel_cfg)}
            d_fake = self.discriminator(fake)
            losses["adversarial"] = generator_loss(cfg.adversarial_kind, d_fake.logits)
            losses["feature"] = feature_matching_loss(d_real.features, d_fake.features)
            if self.balancer is not None:
                res = self.balancer.combine(losses, fake)
                total = (fake * res.grad.detach()).sum() + cfg.commitment * commitment
            else:
                weights = {"l1": cfg.l1, "mel": cfg.mel, "adversarial": cfg.adversarial, "feature": cfg.feature}
                total = sum(weights[k] * v for k, v in losses.items()) + cfg.commitment * commitment
            self.opt_g.zero_grad(set_to_none=True)
            total.backward()
            torch.nn.utils.clip_grad_norm_(self.generator.parameters(), self.optim_cfg.grad_clip)
            self.opt_g.step()
            self.discriminator.zero_grad(set_to_none=True)
            self.sch_g.step()
            self.sch_d.step()
        return {"d_loss": loss_d.detach(), **{k: v.detach() for k, v in losses.items()}, "total": total.detach()}


def test_signal(batch: int, seconds: float, sample_rate: int, device: torch.device, seed: int = 0) -> torch.Tensor:
    """Deterministic speech-like audio ``[B, 1, T]``: gliding harmonics under an envelope, plus noise."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(int(round(seconds * sample_rate))) / sample_rate
    f0 = 100 + 150 * torch.rand(batch, 1, generator=g)
    phase = 2 * math.pi * torch.cumsum(f0 * (1 + 0.2 * torch.sin(2 * math.pi * 1.5 * t)), dim=-1) / sample_rate
    wav = sum(torch.sin(k * phase) / k for k in range(1, 6))
    env = 0.5 + 0.5 * torch.sin(2 * math.pi * 3 * t + 6 * torch.rand(batch, 1, generator=g)).clamp_min(0)
    wav = 0.3 * wav * env + 0.01 * torch.randn(batch, t.numel(), generator=g)
    return wav.clamp(-1, 1).unsqueeze(1).to(device)


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


# --------------------------------------------------------------------------------------- main


def run(device: torch.device, preset_name: str, log=sys.stderr) -> list[dict]:
    preset = PRESETS[preset_name]
    torch.manual_seed(0)
    module = build_module()
    ours = module.codec.to(device)
    ref = build_reference().to(device)
    sr = ours.sample_rate
    if ref.sample_rate != sr:
        raise RuntimeError(f"{CONFIG} is a {sr} Hz codec; the reference is {ref.sample_rate} Hz")
    disc_ours = module.discriminator.to(device)
    disc_ref = copy.deepcopy(disc_ours)
    params_ours, params_ref, params_disc = count(ours), count(ref), count(disc_ours)
    print(f"parameters: ours {params_ours:,}, reference {params_ref:,}, discriminator {params_disc:,} (each side)",
          file=log)

    def forward_ours(wav: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = ours(wav)
        return out.audio, out.quantizer.loss

    def forward_ref(wav: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        emb = ref.encoder(wav)
        q = ref.quantizer(emb, ref.frame_rate, None)  # every codebook
        return ref.decoder(q.quantized)[..., : wav.shape[-1]], q.penalty

    dev = describe_device(device)
    common = {"preset": preset_name, "yaml": str(CONFIG.relative_to(ROOT)), "overrides": OVERRIDES,
              "torch": torch.__version__, "threads": torch.get_num_threads()}
    rows = [{"bench": BENCH, "figure": "params", "ours": float(params_ours), "reference": float(params_ref),
             "ratio": params_ours / params_ref, "unit": "parameters", "device": dev,
             "config": {**common, "discriminator_params": params_disc}}]

    # (a) train step
    ours.train(), ref.train(), disc_ours.train(), disc_ref.train()
    real = test_signal(preset.batch, preset.seconds, sr, device)
    steps = {"ours": GanStep(module, ours, forward_ours, disc_ours, sr, preset.precision),
             "reference": GanStep(module, ref, forward_ref, disc_ref, sr, preset.precision)}
    print(f"train: {preset.warmup} warm-up + {preset.steps} timed steps each, batch {preset.batch} x "
          f"{preset.seconds:g} s, {preset.precision}", file=log)
    t = alternate({k: (lambda s=s: s(real)) for k, s in steps.items()}, preset.warmup, preset.steps, device)
    for name, step in steps.items():
        if not all(torch.isfinite(v).item() for v in step(real).values()):
            raise RuntimeError(f"the {name} train step produced a non-finite loss")
    audio_s = preset.batch * preset.seconds
    rows.append({"bench": BENCH, "figure": "train_step", "ours": audio_s / t["ours"]["best"],
                 "reference": audio_s / t["reference"]["best"], "ratio": t["reference"]["best"] / t["ours"]["best"],
                 "unit": "audio s/s",
                 "device": dev, "config": {**common, **{k: v for k, v in asdict(preset).items() if not k.startswith("infer")},
                                           "losses": "l1+mel+hinge adv+feature (balancer)+commitment",
                                           "discriminator": "msstft", "step_s": t}})
    del steps
    if device.type == "cuda":
        torch.cuda.empty_cache()

    # (b) encode / decode at the same bandwidth, float32, eval mode
    ours.eval(), ref.eval()
    k = ours.codebooks_for_bandwidth(BANDWIDTH_KBPS)
    ref.set_target_bandwidth(BANDWIDTH_KBPS)
    wav = test_signal(preset.infer_batch, preset.infer_seconds, sr, device, seed=1)
    with torch.inference_mode():
        codes_ours = ours.encode(wav, k)
        frames_ref = ref.encode(wav)
        if codes_ours.shape[1] != frames_ref[0][0].shape[1]:
            raise RuntimeError(f"codebook counts differ at {BANDWIDTH_KBPS} kbps: {codes_ours.shape[1]} vs "
                               f"{frames_ref[0][0].shape[1]}")
        print(f"encode/decode: {preset.infer_batch} x {preset.infer_seconds:g} s at {BANDWIDTH_KBPS:g} kbps "
              f"({k} codebooks), float32", file=log)
        enc = alternate({"ours": lambda: ours.encode(wav, k), "reference": lambda: ref.encode(wav)},
                        preset.infer_warmup, preset.infer_repeats, device)
        dec = alternate({"ours": lambda: ours.decode(codes_ours), "reference": lambda: ref.decode(frames_ref)},
                        preset.infer_warmup, preset.infer_repeats, device)
    audio_s = preset.infer_batch * preset.infer_seconds
    infer_cfg = {**common, "batch": preset.infer_batch, "seconds": preset.infer_seconds, "kbps": BANDWIDTH_KBPS,
                 "codebooks": k, "precision": "fp32", "warmup": preset.infer_warmup, "repeats": preset.infer_repeats}
    for name, tm in (("encode_6kbps", enc), ("decode_6kbps", dec)):
        rows.append({"bench": BENCH, "figure": name, "ours": audio_s / tm["ours"]["best"],
                     "reference": audio_s / tm["reference"]["best"], "ratio": tm["reference"]["best"] / tm["ours"]["best"],
                     "unit": "x real time", "device": dev, "config": {**infer_cfg, "call_s": tm}})
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default=None, help="cpu or cuda[:N] (default: cuda when available, else cpu)")
    ap.add_argument("--preset", choices=sorted(PRESETS), default=None,
                    help="sizes: cpu (default on CPU), gpu (default on CUDA), smoke (tests)")
    ap.add_argument("--smoke", action="store_true", help="the smallest run (same as --preset smoke)")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch CPU threads (default: 1 with the cpu and smoke presets, torch's choice with gpu)")
    ap.add_argument("--json", action="store_true", help="print JSON rows on stdout (the table goes to stderr)")
    args = ap.parse_args(argv)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda was asked for but torch sees no CUDA device")
    preset = "smoke" if args.smoke else (args.preset or ("gpu" if device.type == "cuda" else "cpu"))
    threads = args.threads or (None if preset == "gpu" else 1)
    if threads:
        torch.set_num_threads(threads)
    warnings.filterwarnings("ignore", category=FutureWarning)
    rows = run(device, preset)
    print_table(rows, sys.stderr if args.json else sys.stdout)
    if args.json:
        for r in rows:
            print(json.dumps(r), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
