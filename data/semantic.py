"""Semantic units: k-means over frame features, the first iteration of HuBERT's recipe.

Frame features ``[B, T_f, D]`` come from mono audio ``[B, T]``: MFCC with deltas (39 dims),
log-mel, or one transformer layer of torchaudio's HuBERT-base loaded from a local checkpoint; the
extractors live in ``data.semantic_features`` and are re-exported here. Every extractor gives
``T_f = ceil(T / hop)`` frames, ``hop = sample_rate / frame_rate``; frame ``i`` sits at about
sample ``i * hop``. Features are standardized with a mean and std learned at fit time, then each
frame takes the id of its nearest centroid.

A fitted model is a directory: ``semantic.safetensors`` (``centroids [K, D]``, ``mean [D]``,
``std [D]``) and ``config.json`` (``format``, ``config``, ``semantic_id``, fit summary, and the
sha256 of the HuBERT checkpoint when one is used).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from data.kmeans import kmeans, nearest
from data.audio import resample
from data.datamodule import AudioLoaderConfig, audio_dataset
from data.semantic_features import FrameFeatures, HubertFeatures, LogMelFeatures, MFCCFeatures, frame_hop, load_hubert
from data.skips import SkipCounter
from data.webdataset import ShardLoader

__all__ = [
    "SEMANTIC_FORMAT", "WEIGHTS", "CONFIG", "FEATURES", "frame_hop", "FrameFeatures", "LogMelFeatures",
    "MFCCFeatures", "load_hubert", "HubertFeatures", "SemanticConfig", "build_features", "FitSummary",
    "SemanticModel", "fit_semantic",
]

SEMANTIC_FORMAT = "codeclm.semantic/1"
WEIGHTS, CONFIG = "semantic.safetensors", "config.json"
FEATURES = ("mfcc", "logmel", "hubert")
_FIT_HINT = "fit one with `codeclm semantic fit --shards DIR --out DIR`"


@dataclass
class SemanticConfig:
    """How units are learned.

    features: ``mfcc`` (39 dims), ``logmel`` (``n_mels`` dims) or ``hubert`` (layer ``hubert_layer``
    of the checkpoint at ``hubert_path``; 16 kHz and 50 Hz only). n_units: k-means clusters, 100 to
    500 typical. max_frames: frames sampled uniformly from the whole pass (deterministic under
    ``seed``) to learn the statistics and centroids; fitting needs at least ``n_units`` of them.
    """

    features: str = "mfcc"
    n_units: int = 100
    frame_rate: float = 50.0
    sample_rate: int = 16000
    n_mels: int = 80
    hubert_path: str | None = None
    hubert_layer: int = 6
    kmeans_iters: int = 20
    max_frames: int = 200_000
    seed: int = 0

    def __post_init__(self) -> None:
        if self.features not in FEATURES:
            raise ValueError(f"features must be one of {FEATURES}, got {self.features!r}")
        if not 2 <= self.n_units <= 32767:
            raise ValueError(f"n_units must be 2..32767 (int16 token shards), got {self.n_units}")
        if self.max_frames < self.n_units:
            raise ValueError(f"max_frames ({self.max_frames}) must be at least n_units ({self.n_units})")
        if self.kmeans_iters < 0:
            raise ValueError(f"kmeans_iters must be >= 0, got {self.kmeans_iters}")
        frame_hop(self.sample_rate, self.frame_rate)
        if self.features == "hubert":
            if not self.hubert_path:
                raise ValueError("hubert features need a local checkpoint: set hubert_path (--hubert PATH)")
            if self.sample_rate != 16000 or self.frame_rate != 50:
                raise ValueError("HuBERT features come at 50 Hz from 16 kHz audio: "
                                 "use sample_rate 16000 and frame_rate 50")


def build_features(cfg: SemanticConfig) -> FrameFeatures:
    if cfg.features == "hubert":
        return HubertFeatures(cfg.hubert_path, cfg.hubert_layer)
    if cfg.features == "logmel":
        return LogMelFeatures(cfg.sample_rate, cfg.n_mels, cfg.frame_rate)
    return MFCCFeatures(cfg.sample_rate, frame_rate=cfg.frame_rate)


@dataclass
class FitSummary:
    clips: int
    seconds: float  # audio read
    frames_seen: int
    frames_used: int  # sampled for statistics and k-means
    units_used: int  # clusters with at least one sampled frame
    inertia: float  # mean squared distance of the sampled (standardized) frames to their centroid
    skipped: int


def _sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


class SemanticModel(nn.Module):
    """Frame features -> standardized -> nearest centroid. ``units(wav, sample_rate)``: ``[C, T]`` to
    int64 ``[T_f]``, or ``[B, C, T]`` to ``[B, T_f]`` (channels averaged, audio resampled to
    ``sample_rate``); ``T_f = frames(T, sample_rate)``. Frames past a clip's end in a padded batch
    belong to the padding."""

    def __init__(self, cfg: SemanticConfig, extractor: FrameFeatures, centroids: torch.Tensor, mean: torch.Tensor,
                 std: torch.Tensor, fit: FitSummary | None = None) -> None:
        super().__init__()
        k, d = centroids.shape
        if k != cfg.n_units or d != extractor.dim or mean.shape != (d,) or std.shape != (d,):
            raise ValueError(f"centroids {tuple(centroids.shape)}, mean {tuple(mean.shape)}, std {tuple(std.shape)} "
                             f"do not fit {cfg.n_units} units of {cfg.features} features ({extractor.dim} dims)")
        self.cfg, self.extractor, self.fit_summary = cfg, extractor.eval(), fit
        self.n_units, self.frame_rate, self.sample_rate = cfg.n_units, extractor.frame_rate, extractor.sample_rate
        self.register_buffer("centroids", centroids.float())
        self.register_buffer("mean", mean.float())
        self.register_buffer("std", std.float())

    @property
    def semantic_id(self) -> str:
        """A hash of the config and the learned tensors: equal ids give equal units."""
        config = {**asdict(self.cfg), "hubert_path": None}  # the checkpoint may move; its hash is checked on load
        h = hashlib.sha256(json.dumps(config, sort_keys=True).encode())
        for t in (self.centroids, self.mean, self.std):
            h.update(t.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()[:16]

    def frames(self, num_samples: int, sample_rate: int | None = None) -> int:
        sr = sample_rate or self.sample_rate
        return self.extractor.frames(-(-int(num_samples) * self.sample_rate // sr))  # resampling rounds up

    def features(self, wav: torch.Tensor, sample_rate: int) -> torch.Tensor:
        """Standardized features: ``[C, T] -> [T_f, D]`` or ``[B, C, T] -> [B, T_f, D]``."""
        if wav.dim() not in (2, 3):
            raise ValueError(f"audio must be [C, T] or [B, C, T], got shape {tuple(wav.shape)}")
        x = wav.to(self.centroids.device, torch.float32)
        x = resample(x.mean(dim=-2) if wav.dim() == 3 else x.mean(dim=0, keepdim=True), sample_rate, self.sample_rate)
        with torch.inference_mode():
            feats = (self.extractor(x).float() - self.mean) / self.std  # [B, T_f, D]
        return feats if wav.dim() == 3 else feats[0]

    def units(self, wav: torch.Tensor, sample_rate: int) -> torch.Tensor:
        feats = self.features(wav, sample_rate)
        with torch.inference_mode():
            ids = nearest(feats.reshape(-1, feats.shape[-1]), self.centroids)
        return ids.reshape(feats.shape[:-1]).long()

    def save(self, out_dir: str | Path) -> Path:
        from safetensors.torch import save_file

        out = Path(out_dir)
        if out.exists() and not out.is_dir():
            raise FileExistsError(f"{out} is a file, not a directory: choose another output directory")
        out.mkdir(parents=True, exist_ok=True)
        record = {"format": SEMANTIC_FORMAT, "config": asdict(self.cfg), "semantic_id": self.semantic_id,
                  "n_units": self.n_units, "dim": self.extractor.dim, "frame_rate": self.frame_rate,
                  "sample_rate": self.sample_rate, "fit": asdict(self.fit_summary) if self.fit_summary else None,
                  "hubert_sha256": _sha256(self.cfg.hubert_path) if self.cfg.features == "hubert" else None}
        tensors = {n: getattr(self, n).detach().cpu().contiguous() for n in ("centroids", "mean", "std")}
        tmp_w, tmp_c = out / f".{WEIGHTS}.tmp", out / f".{CONFIG}.tmp"
        try:
            save_file(tensors, str(tmp_w), metadata={"format": SEMANTIC_FORMAT, "semantic_id": record["semantic_id"]})
            tmp_c.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
            os.replace(tmp_w, out / WEIGHTS)
            os.replace(tmp_c, out / CONFIG)
        finally:
            tmp_w.unlink(missing_ok=True)
            tmp_c.unlink(missing_ok=True)
        return out

    @classmethod
    def load(cls, path: str | Path, hubert_path: str | Path | None = None) -> "SemanticModel":
        """Load a model directory; ``hubert_path`` overrides where the HuBERT checkpoint now lives
        (it must be the same file the units were fit with)."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        out = Path(path)
        if not (out / CONFIG).is_file() or not (out / WEIGHTS).is_file():
            raise FileNotFoundError(f"no semantic model at {out} (needs {CONFIG} and {WEIGHTS}): {_FIT_HINT}")
        try:
            record = json.loads((out / CONFIG).read_text())
            if record.get("format") != SEMANTIC_FORMAT:
                raise ValueError(f"format {record.get('format')!r} is not {SEMANTIC_FORMAT!r}")
            cfg = SemanticConfig(**record["config"])
            if hubert_path is not None:
                cfg = replace(cfg, hubert_path=str(hubert_path))
            tensors = load_file(str(out / WEIGHTS))
            args = [tensors[n] for n in ("centroids", "mean", "std")]
            fit = FitSummary(**record["fit"]) if record.get("fit") else None
        except (ValueError, TypeError, KeyError, AttributeError, OSError, SafetensorError) as e:
            raise ValueError(f"{out}: not a readable semantic model ({type(e).__name__}: {e}): {_FIT_HINT}") from None
        if cfg.features == "hubert":
            if not Path(cfg.hubert_path).is_file():
                raise FileNotFoundError(f"{out} needs the HuBERT checkpoint {cfg.hubert_path}, which is missing: "
                                        "pass its new location as hubert_path")
            if _sha256(cfg.hubert_path) != record.get("hubert_sha256"):
                raise ValueError(f"{cfg.hubert_path} is not the HuBERT checkpoint {out} was fit with (sha256 differs): "
                                 "give the original checkpoint or refit the units")
        try:
            model = cls(cfg, build_features(cfg), *args, fit=fit)
        except ValueError as e:
            raise ValueError(f"{out}: {e}") from None
        if model.semantic_id != record.get("semantic_id"):
            raise ValueError(f"{out}: {WEIGHTS} and {CONFIG} do not belong together (semantic_id differs): {_FIT_HINT}")
        return model


class _FrameSample:
    """A uniform sample of at most ``cap`` frames of a stream: every frame draws a random key and
    the ``cap`` smallest keys are kept, ordered by key, so the sample depends on the keys alone,
    not on the order in which clips arrive."""

    def __init__(self, cap: int) -> None:
        self.cap, self.rows, self.keys, self.size = cap, [], [], 0

    def add(self, rows: torch.Tensor, keys: torch.Tensor) -> None:
        self.rows.append(rows)
        self.keys.append(keys)
        self.size += len(keys)
        if self.size >= 2 * self.cap:
            self._prune()

    def _prune(self) -> None:
        keys, order = torch.cat(self.keys).sort(stable=True)
        keys, order = keys[: self.cap], order[: self.cap]
        self.rows, self.keys, self.size = [torch.cat(self.rows)[order]], [keys], len(keys)

    def result(self) -> torch.Tensor | None:
        if not self.rows:
            return None
        self._prune()
        return self.rows[0]


def _clip_generator(seed: int, key: str) -> torch.Generator:
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") >> 1)


def fit_semantic(shards: str, cfg: SemanticConfig, out_path: str | Path | None = None,
                 device: str | torch.device | None = None, workers: int = 0, progress: bool = True) -> SemanticModel:
    """Learn units from one ordered pass over the audio shards ``shards``; saved to ``out_path``.

    Frames are sampled by keys drawn from (seed, clip key), so the result does not depend on
    ``workers``. Fails with a clear error when the shards give fewer frames than ``n_units``.
    """
    device = torch.device(device or "cpu")
    if cfg.features == "hubert":
        cfg = replace(cfg, hubert_path=str(Path(cfg.hubert_path).resolve()))
    extractor = build_features(cfg).to(device).eval()
    loader_cfg = AudioLoaderConfig(sample_rate=cfg.sample_rate, channels=1, crop_seconds=None, max_seconds=1800.0,
                                   batch_size=1, shuffle_buffer=0, seed=cfg.seed)
    skips = SkipCounter()
    ds = audio_dataset(shards, loader_cfg, train=False, skips=skips)
    sample, clips, seen, seconds = _FrameSample(cfg.max_frames), 0, 0, 0.0
    with torch.inference_mode(), tqdm(total=ds.shards.total, unit="clip", desc="semantic features",
                                      disable=not progress, dynamic_ncols=True) as bar:
        for batch in ShardLoader(ds, num_workers=workers):
            feats = extractor(batch.audio[:, 0].to(device))[0].float().cpu()  # [T_f, D]
            keys = torch.rand(len(feats), generator=_clip_generator(cfg.seed, batch.keys[0]), dtype=torch.float64)
            sample.add(feats, keys)
            clips, seen, seconds = clips + 1, seen + len(feats), seconds + batch.audio.shape[-1] / cfg.sample_rate
            bar.update(1)
    x = sample.result()
    x = None if x is None else x.clone()  # a normal tensor, no longer an inference one: buffers stay writable
    if x is None or len(x) < cfg.n_units:
        raise ValueError(f"{shards}: {0 if x is None else len(x)} frames from {clips} clips cannot make {cfg.n_units} "
                         f"units: lower n_units (--units) or add audio")
    mean, std = x.mean(dim=0), x.std(dim=0, unbiased=False).clamp_min(1e-5)
    z = ((x - mean) / std).to(device)
    centroids = kmeans(z, cfg.n_units, cfg.kmeans_iters, torch.Generator().manual_seed(cfg.seed))
    assign = nearest(z, centroids)
    summary = FitSummary(clips=clips, seconds=round(seconds, 3), frames_seen=seen, frames_used=len(x),
                         units_used=int(assign.unique().numel()),
                         inertia=float((z - centroids[assign]).pow(2).sum(-1).mean()), skipped=skips.total)
    model = SemanticModel(cfg, extractor.cpu(), centroids.cpu(), mean, std, fit=summary)
    if out_path is not None:
        model.save(out_path)
    return model
