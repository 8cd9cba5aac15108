"""Audio batches from shards: the decoding step and the LightningDataModule."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import lightning as L
import torch

from data.audio import AudioError, decode_audio, loudness_normalize, random_crop, resample, to_channels
from data.batch import AudioBatch, collate_audio
from data.skips import SkipCounter
from data.webdataset import ShardDataset, ShardLoader

AUDIO_EXTS = ("flac", "wav", "ogg", "mp3")


@dataclass
class AudioLoaderConfig:
    """How clips become batches.

    crop_seconds: random crop length in training (a fixed crop from the start in evaluation);
    None keeps whole clips (up to max_seconds) padded to the longest in the batch.
    normalize_db: RMS loudness target in dBFS, or None to keep levels.
    epoch_samples: samples per epoch over all ranks (default: the manifest's total).
    """

    sample_rate: int = 16000
    channels: int = 1
    crop_seconds: float | None = 2.0
    max_seconds: float = 30.0
    min_seconds: float = 0.0
    batch_size: int = 8
    shuffle_buffer: int = 500
    normalize_db: float | None = None
    seed: int = 0
    epoch_samples: int | None = None


class AudioDecoder:
    """Raw webdataset sample -> ``{"audio": [C, t], "length", "key", "text", "speaker"}``."""

    def __init__(self, cfg: AudioLoaderConfig, skips: SkipCounter, train: bool) -> None:
        self.cfg, self.skips, self.train = cfg, skips, train
        self.crop = None if cfg.crop_seconds is None else int(round(cfg.crop_seconds * cfg.sample_rate))

    def __call__(self, sample: dict, gen: torch.Generator) -> dict | None:
        key, url = sample.get("__key__"), sample.get("__url__", "?")
        ext = next((e for e in AUDIO_EXTS if e in sample), None)
        if ext is None:
            self.skips.add("missing_audio", url, key, f"members {sorted(k for k in sample if not k.startswith('__'))}")
            return None
        meta: dict[str, Any] = {}
        if "json" in sample:
            try:
                meta = json.loads(sample["json"])
                if not isinstance(meta, dict):
                    raise ValueError("not an object")
            except (ValueError, UnicodeDecodeError) as e:
                self.skips.add("bad_json", url, key, str(e))
                return None
        try:
            wav, sr = decode_audio(sample[ext], where=f"{url}:{key}")
        except AudioError as e:
            self.skips.add(e.reason, url, key, str(e))
            return None
        cfg = self.cfg
        if wav.shape[-1] < cfg.min_seconds * sr:
            self.skips.add("too_short", url, key, f"{wav.shape[-1] / sr:.2f}s")
            return None
        audio = to_channels(resample(torch.from_numpy(wav), sr, cfg.sample_rate), cfg.channels)
        if cfg.normalize_db is not None:
            audio = loudness_normalize(audio, cfg.normalize_db)
        if self.crop is not None:
            if self.train:
                audio, length = random_crop(audio, self.crop, gen)
            else:
                audio, length = random_crop(audio[:, : self.crop], self.crop)
        else:
            audio = audio[:, : int(cfg.max_seconds * cfg.sample_rate)]
            length = audio.shape[-1]
        return {"audio": audio, "length": length, "key": key, "text": meta.get("text"), "speaker": meta.get("speaker")}

    def collate(self, items: list[dict]) -> AudioBatch:
        return collate_audio(items, self.cfg.sample_rate, self.crop)


def audio_dataset(shards: str, cfg: AudioLoaderConfig, train: bool = True, skips: SkipCounter | None = None,
                  world: tuple[int, int] | None = None) -> ShardDataset:
    skips = skips or SkipCounter()
    dec = AudioDecoder(cfg, skips, train)
    return ShardDataset(
        shards, dec, dec.collate, cfg.batch_size, train=train, shuffle_buffer=cfg.shuffle_buffer if train else 0,
        seed=cfg.seed, epoch_samples=cfg.epoch_samples if train else None, skips=skips, world=world,
    )


class AudioDataModule(L.LightningDataModule):
    """Training (and optional validation) batches of audio from webdataset shards.

    Args:
        shards: training shard spec (a shard directory, ``shards.json``, brace pattern or ``pipe:``).
        val_shards: validation shard spec, or None for no validation.
        loader: clip and batch settings (:class:`AudioLoaderConfig`).
        num_workers: DataLoader worker processes per rank.
    """

    def __init__(self, shards: str, val_shards: str | None = None, loader: AudioLoaderConfig | None = None,
                 num_workers: int = 2) -> None:
        super().__init__()
        self.shards, self.val_shards = shards, val_shards
        self.cfg = loader or AudioLoaderConfig()
        self.num_workers = num_workers
        self.skips = SkipCounter()
        self._train: ShardLoader | None = None

    def train_dataloader(self) -> ShardLoader:
        if self._train is None:
            ds = audio_dataset(self.shards, self.cfg, True, self.skips)
            self._train = ShardLoader(ds, num_workers=self.num_workers)
        if self.trainer is not None:
            self._train.set_epoch(self.trainer.current_epoch)
        return self._train

    def val_dataloader(self) -> ShardLoader | list:
        if not self.val_shards:
            return []
        return ShardLoader(audio_dataset(self.val_shards, self.cfg, False, self.skips), num_workers=self.num_workers)

    def state_dict(self) -> dict[str, Any]:
        return {"skips": self.skips.as_dict()}
