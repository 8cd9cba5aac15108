"""Semantic units: k-means over frame features, the first iteration of HuBERT's recipe.

Frame features ``[B, T_f, D]`` come from mono audio ``[B, T]``: MFCC with deltas (39 dims),
log-mel, or one transformer layer of torchaudio's HuBERT-base loaded from a local checkpoint.
Every extractor gives ``T_f = ceil(T / hop)`` frames, ``hop = sample_rate / frame_rate``; frame
``i`` sits at about sample ``i * hop``. Features are standardized with a mean and std learned at
fit time, then each frame takes the id of its nearest centroid.

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
import torch.nn.functional as F
import torchaudio
import torchaudio.functional as AF
import torchaudio.transforms as AT
from einops import rearrange
from torch import nn
from tqdm import tqdm

from codec.quantize.kmeans import kmeans, nearest
from data.audio import resample
from data.datamodule import AudioLoaderConfig, audio_dataset
from data.skips import SkipCounter
from data.webdataset import ShardLoader

SEMANTIC_FORMAT = "codeclm.semantic/1"
WEIGHTS, CONFIG = "semantic.safetensors", "config.json"
FEATURES = ("mfcc", "logmel", "hubert")
_FIT_HINT = "fit one with `codeclm semantic fit --shards DIR --out DIR`"
_HUBERT_HINT = ("give a local state dict of torchaudio.models.hubert_base() as .pt, .pth or .safetensors, e.g. "
                "torch.save(torchaudio.pipelines.HUBERT_BASE.get_model().state_dict(), 'hubert_base.pt'); "
                "nothing is downloaded")


def frame_hop(sample_rate: int, frame_rate: float) -> int:
    """Samples per frame; ``frame_rate`` must divide ``sample_rate`` into whole samples."""
    hop = sample_rate / frame_rate if frame_rate > 0 else 0.0
    if hop < 1 or abs(hop - round(hop)) > 1e-6:
        raise ValueError(f"frame_rate {frame_rate} does not give a whole number of samples per frame at "
                         f"{sample_rate} Hz: choose one that divides the sample rate (e.g. 50 at 16000 Hz)")
    return int(round(hop))


class FrameFeatures(nn.Module):
    """Base of the extractors: ``forward(wav [B, T]) -> [B, ceil(T / hop), dim]``."""

    sample_rate: int
    hop: int
    dim: int

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop

    def frames(self, num_samples: int) -> int:
        return -(-int(num_samples) // self.hop)


class LogMelFeatures(FrameFeatures):
    """Natural-log mel power spectrum: 25 ms windows (at least one hop), ``n_mels`` bands."""

    def __init__(self, sample_rate: int = 16000, n_mels: int = 80, frame_rate: float = 50.0) -> None:
        super().__init__()
        self.sample_rate, self.hop, self.dim = int(sample_rate), frame_hop(sample_rate, frame_rate), int(n_mels)
        win = max(round(0.025 * sample_rate), self.hop)
        # Zero padding (not reflection) keeps every frame a function of its own window, whatever the clip length.
        self.mel = AT.MelSpectrogram(sample_rate, n_fft=1 << (win - 1).bit_length(), win_length=win,
                                     hop_length=self.hop, n_mels=n_mels, pad_mode="constant")

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        spec = self.mel(wav)[..., : self.frames(wav.shape[-1])]  # [B, M, T_f]
        return rearrange(spec.clamp_min(1e-10).log(), "b m t -> b t m")


class MFCCFeatures(FrameFeatures):
    """MFCC (DCT-II of 40 log-mel bands) plus deltas and delta-deltas: ``3 * n_mfcc`` dims."""

    def __init__(self, sample_rate: int = 16000, n_mfcc: int = 13, deltas: bool = True, frame_rate: float = 50.0,
                 n_mels: int = 40) -> None:
        super().__init__()
        self.logmel = LogMelFeatures(sample_rate, n_mels, frame_rate)
        self.sample_rate, self.hop, self.deltas = self.logmel.sample_rate, self.logmel.hop, deltas
        self.dim = n_mfcc * (3 if deltas else 1)
        self.register_buffer("dct", AF.create_dct(n_mfcc, n_mels, "ortho"), persistent=False)  # [M, n_mfcc]

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        c = rearrange(self.logmel(wav) @ self.dct, "b t c -> b c t")
        if self.deltas and c.shape[-1] > 0:
            d = AF.compute_deltas(c)
            c = torch.cat([c, d, AF.compute_deltas(d)], dim=1)
        return rearrange(c, "b c t -> b t c")


def load_hubert(path: str | Path) -> nn.Module:
    """torchaudio's ``hubert_base()`` with weights from a local state dict (weights only, no pickle)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no HuBERT checkpoint at {path}: {_HUBERT_HINT}")
    if path.suffix not in (".pt", ".pth", ".safetensors"):
        raise ValueError(f"{path}: unknown checkpoint type {path.suffix!r}: {_HUBERT_HINT}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # unreadable, or pickled objects beyond plain tensors
        raise ValueError(f"{path}: not a readable weights-only state dict ({str(e).splitlines()[0]}): "
                         f"{_HUBERT_HINT}") from None
    for wrapper in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path}: holds no state dict of tensors: {_HUBERT_HINT}")
    if any(k.startswith("wav2vec2.") for k in state):  # torchaudio's hubert_pretrain_base(): keep the encoder
        state = {k[len("wav2vec2."):]: v for k, v in state.items() if k.startswith("wav2vec2.")}
    model = torchaudio.models.hubert_base()
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as e:  # shape mismatch: another architecture
        raise ValueError(f"{path}: weights do not fit hubert_base ({str(e).splitlines()[-1].strip()}): "
                         f"{_HUBERT_HINT}") from None
    if missing or unexpected:
        raise ValueError(f"{path} is not a hubert_base state dict ({len(missing)} missing keys, e.g. {missing[:2]}; "
                         f"{len(unexpected)} unexpected, e.g. {unexpected[:2]}): {_HUBERT_HINT}")
    return model.eval()


class HubertFeatures(FrameFeatures):
    """Output of transformer layer ``layer`` (1..12) of HuBERT-base: 768 dims at 50 Hz from 16 kHz audio."""

    CHUNK_FRAMES = 1500  # 30 s a forward pass: attention memory grows with the square of the length

    def __init__(self, path: str | Path, layer: int = 6) -> None:
        super().__init__()
        if not 1 <= int(layer) <= 12:
            raise ValueError(f"HuBERT layer must be 1..12 (hubert_base has 12 transformer layers), got {layer}")
        self.sample_rate, self.hop, self.dim = 16000, 320, 768
        self.path, self.layer = Path(path), int(layer)
        self.model = load_hubert(self.path)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        n, pad = self.frames(wav.shape[-1]), 40  # receptive field 400 = hop + 2 * 40: exactly n frames
        x = F.pad(wav, (pad, n * self.hop - wav.shape[-1] + pad))
        outs = []
        for s in range(0, n, self.CHUNK_FRAMES):
            e = min(n, s + self.CHUNK_FRAMES)
            layers, _ = self.model.extract_features(x[:, s * self.hop : e * self.hop + 2 * pad], num_layers=self.layer)
            outs.append(layers[-1])  # [B, e - s, 768]
        return torch.cat(outs, dim=1) if outs else wav.new_zeros(wav.shape[0], 0, self.dim)


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
