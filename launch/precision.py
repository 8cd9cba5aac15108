"""bf16 where the device supports it: a config that asks for bf16 runs in the nearest precision
the chosen device has, and says so.

- CUDA without bf16 (before Ampere): ``bf16-mixed`` becomes ``16-mixed`` (fp16 autocast with
  loss scaling), ``bf16-true`` becomes ``32-true``;
- a CPU without native bf16 (no AVX512-BF16 or AMX): ``32-true``, since emulated bf16 is slower
  than float32 there;
- anything else is left as it is.
"""

from __future__ import annotations

import torch

BF16 = {"bf16", "bf16-mixed", "bf16-true"}


def _device(accelerator) -> str:
    name = str(accelerator or "auto").lower()
    if name == "cpu":
        return "cpu"
    if name in ("gpu", "cuda"):
        return "cuda"
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name  # mps, tpu, a custom accelerator: not ours to change


def cpu_has_bf16() -> bool:
    checks = [getattr(torch.cpu, n, None) for n in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return any(bool(c()) for c in checks if c is not None)


def resolve_precision(precision, accelerator) -> tuple[object, str | None]:
    """``(precision to use, note or None)`` for ``precision`` on ``accelerator``."""
    if str(precision) not in BF16:
        return precision, None
    device = _device(accelerator)
    if device == "cuda" and torch.cuda.is_available() and not torch.cuda.is_bf16_supported():
        new = "32-true" if str(precision) == "bf16-true" else "16-mixed"
        return new, f"this GPU ({torch.cuda.get_device_name()}) has no bf16: precision {precision} -> {new}"
    if device == "cpu" and not cpu_has_bf16():
        return "32-true", f"this CPU has no native bf16: precision {precision} -> 32-true"
    return precision, None
