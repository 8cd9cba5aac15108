"""Quality metrics of a processed signal against its reference, one clip at a time.

Always available (the project's own functions in ``codec.losses``): ``mel`` (mean absolute log-mel
distance over EnCodec's scales), ``stft`` (multi-resolution log-magnitude distance), ``si_sdr`` (dB).
Optional, each from its package (the ``eval`` extra): ``pesq`` (ITU-T P.862.2 wide band at 16 kHz,
narrow band when the signals are below 16 kHz), ``stoi`` (``pystoi``), ``visqol`` (``visqol-python``,
speech mode at 16 kHz). A package that does not import makes its metric n/a with the reason; a
metric that fails on one clip (PESQ finds no speech in silence, ...) gives ``None`` for that clip
and the failure is counted.

Signals are aligned (:func:`codec.evaluation.align.align`) before any metric, so a codec's delay
does not count as distortion.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from codec.evaluation.align import align
from data.audio import resample

ALWAYS = ("mel", "stft", "si_sdr")
OPTIONAL = ("pesq", "stoi", "visqol")
ALL_METRICS = ALWAYS + OPTIONAL
HIGHER_IS_BETTER = {"mel": False, "stft": False, "si_sdr": True, "pesq": True, "stoi": True, "visqol": True}
MAX_LAG_SECONDS = 0.1
VISQOL_MIN_SECONDS = 0.75


def _resample_np(wav: np.ndarray, sr: int, new_sr: int) -> np.ndarray:
    if sr == new_sr:
        return np.asarray(wav, dtype=np.float32)
    return resample(torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32)), sr, new_sr).numpy()


def mel_metric(ref: np.ndarray, deg: np.ndarray, sr: int) -> float:
    from codec.losses import mel_distance

    x, y = torch.from_numpy(deg)[None, None], torch.from_numpy(ref)[None, None]
    return float(mel_distance(x, y, sr)[0])


def stft_metric(ref: np.ndarray, deg: np.ndarray, sr: int) -> float:
    from codec.losses import stft_distance

    return float(stft_distance(torch.from_numpy(deg)[None, None], torch.from_numpy(ref)[None, None])[0])


def si_sdr_metric(ref: np.ndarray, deg: np.ndarray, sr: int) -> float:
    from codec.losses import si_sdr

    return float(si_sdr(torch.from_numpy(deg)[None, None], torch.from_numpy(ref)[None, None])[0])


def _pesq_fn() -> Callable[[np.ndarray, np.ndarray, int], float]:
    from pesq import pesq

    def run(ref: np.ndarray, deg: np.ndarray, sr: int) -> float:
        rate, mode = (16000, "wb") if sr >= 16000 else (8000, "nb")
        r, d = _resample_np(ref, sr, rate), _resample_np(deg, sr, rate)
        return float(pesq(rate, r.astype(np.float64), d.astype(np.float64), mode))

    return run


def _stoi_fn() -> Callable[[np.ndarray, np.ndarray, int], float]:
    from pystoi import stoi

    return lambda ref, deg, sr: float(stoi(ref.astype(np.float64), deg.astype(np.float64), sr, extended=False))


def _visqol_fn() -> Callable[[np.ndarray, np.ndarray, int], float]:
    import logging

    from visqol import VisqolApi

    logging.getLogger("visqol").setLevel(logging.ERROR)
    api = VisqolApi()
    api.create(mode="speech", use_lattice_model=False)

    def run(ref: np.ndarray, deg: np.ndarray, sr: int) -> float:
        r, d = _resample_np(ref, sr, 16000), _resample_np(deg, sr, 16000)
        if min(r.size, d.size) < VISQOL_MIN_SECONDS * 16000:  # visqol-python fails inside (IndexError)
            raise ValueError(f"ViSQOL needs at least {VISQOL_MIN_SECONDS} s of audio, the clip has "
                             f"{min(r.size, d.size) / 16000:.2f} s")
        return float(api.measure_from_arrays(r.astype(np.float64), d.astype(np.float64), 16000).moslqo)

    return run


FACTORIES: dict[str, Callable[[], Callable[[np.ndarray, np.ndarray, int], float]]] = {
    "mel": lambda: mel_metric, "stft": lambda: stft_metric, "si_sdr": lambda: si_sdr_metric,
    "pesq": _pesq_fn, "stoi": _stoi_fn, "visqol": _visqol_fn,
}
PACKAGES = {"pesq": "pesq", "stoi": "pystoi", "visqol": "visqol-python"}


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"


@dataclass
class MetricSet:
    """The metrics this run computes; ``unavailable`` maps each missing one to why."""

    skip: tuple[str, ...] = ()
    functions: dict[str, Callable[[np.ndarray, np.ndarray, int], float]] = field(default_factory=dict, init=False)
    unavailable: dict[str, str] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        unknown = [s for s in self.skip if s not in ALL_METRICS]
        if unknown:
            raise ValueError(f"unknown metric {unknown[0]!r} to skip: choose from {', '.join(ALL_METRICS)}")
        for name in ALL_METRICS:
            if name in self.skip:
                self.unavailable[name] = "skipped on request"
                continue
            try:
                self.functions[name] = FACTORIES[name]()
            except Exception as e:  # noqa: BLE001 - an optional package that fails in any way is n/a
                self.unavailable[name] = f"{PACKAGES.get(name, name)} unavailable ({_first_line(e)})"

    @property
    def names(self) -> tuple[str, ...]:
        return ALL_METRICS

    def measure(self, reference: np.ndarray, processed: np.ndarray, sr: int) -> tuple[dict[str, float | None], dict[str, str], int]:
        """``(values, errors, delay)`` for 1-D signals at ``sr``: the signals are aligned first;
        ``values[name]`` is None where the metric is unavailable or failed (``errors[name]`` says why)."""
        ref, deg, delay = align(reference, processed, int(MAX_LAG_SECONDS * sr))
        values: dict[str, float | None] = {name: None for name in ALL_METRICS}
        errors: dict[str, str] = {}
        if ref.size < sr // 10:
            return values, {name: "shorter than 0.1 s after alignment" for name in self.functions}, delay
        for name, fn in self.functions.items():
            try:
                v = fn(ref, deg, sr)
                values[name] = v if np.isfinite(v) else None
                if values[name] is None:
                    errors[name] = "not finite"
            except Exception as e:  # noqa: BLE001 - one clip's failure is counted, not fatal
                errors[name] = _first_line(e)
        return values, errors, delay
