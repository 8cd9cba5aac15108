"""Token shards: codec codes (and optional semantic units) with the text and speaker they carry.

Format ``codeclm.tokens/1``; each sample in a ``.tar`` has

- ``KEY.codes.npy``: int16 ``[K, T]`` codec codes (no pickle: read with ``allow_pickle=False``),
- ``KEY.semantic.npy`` (optional): int16 ``[S]`` semantic unit ids,
- ``KEY.json``: ``{"key", "text", "phonemes", "speaker", "sample_rate", "frame_rate", "codec_id",
  "num_codebooks", "frames", "duration"}``.

The manifest (``shards.json``) records the ``codec_id`` (a hash of the codec's weights and
config), ``frame_rate``, ``num_codebooks`` and ``cardinality``. Readers refuse to mix shards of
different codecs, and skip (counted) any sample whose own ``codec_id`` disagrees.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from data.batch import TokenBatch, lengths_to_mask
from data.shards import ShardWriter, read_manifest
from data.skips import SkipCounter
from data.urls import ShardSet, expand_urls
from data.webdataset import ShardDataset

TOKEN_FORMAT = "codeclm.tokens/1"


def npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def load_npy(data: bytes) -> np.ndarray:
    return np.load(io.BytesIO(data), allow_pickle=False)


class TokenShardWriter(ShardWriter):
    """A :class:`ShardWriter` for token samples of one codec."""

    def __init__(self, out_dir: str | Path, codec_id: str, frame_rate: float, num_codebooks: int, cardinality: int,
                 sample_rate: int, name: str = "tokens", max_count: int = 2000, extra: dict | None = None) -> None:
        if cardinality > 32767:
            raise ValueError(f"cardinality {cardinality} does not fit int16 token shards")
        super().__init__(out_dir, name, max_count, 256.0, format=TOKEN_FORMAT, manifest_extra={
            "codec_id": codec_id, "frame_rate": frame_rate, "num_codebooks": num_codebooks,
            "cardinality": cardinality, "sample_rate": sample_rate, **(extra or {}),
        })
        self.codec = dict(codec_id=codec_id, frame_rate=frame_rate, num_codebooks=num_codebooks, sample_rate=sample_rate)

    def write_tokens(self, key: str, codes: np.ndarray | torch.Tensor, meta: dict[str, Any],
                     semantic: np.ndarray | torch.Tensor | None = None) -> None:
        codes = np.asarray(codes.cpu() if isinstance(codes, torch.Tensor) else codes)
        if codes.ndim != 2:
            raise ValueError(f"codes for {key} must be [K, T], got shape {codes.shape}")
        record = {k: meta.get(k) for k in ("text", "phonemes", "speaker") if meta.get(k) is not None}
        record.update(self.codec, key=key, frames=int(codes.shape[1]),
                      duration=round(codes.shape[1] / self.codec["frame_rate"], 4), num_codebooks=int(codes.shape[0]))
        members: dict[str, Any] = {"codes.npy": npy_bytes(codes.astype(np.int16)), "json": record}
        if semantic is not None:
            sem = np.asarray(semantic.cpu() if isinstance(semantic, torch.Tensor) else semantic)
            members["semantic.npy"] = npy_bytes(sem.astype(np.int16).reshape(-1))
        self.write(key, members)


def token_manifest_info(shards: ShardSet | str) -> dict[str, Any]:
    """The codec fields shared by every manifest behind ``shards``; error if they disagree."""
    shards = shards if isinstance(shards, ShardSet) else expand_urls(shards)
    seen: dict[str, dict] = {}
    for folder in sorted({str(Path(u).parent) for u in shards.urls if "://" not in u and not u.startswith("pipe:")}):
        try:
            m = read_manifest(folder)
        except FileNotFoundError:
            continue
        if m.get("format") != TOKEN_FORMAT:
            raise ValueError(f"{folder} holds {m.get('format')!r} shards, not token shards: run `codeclm codec tokenize` first")
        seen[folder] = {k: m.get(k) for k in ("codec_id", "frame_rate", "num_codebooks", "cardinality", "sample_rate")}
    ids = {v["codec_id"] for v in seen.values()}
    if len(ids) > 1:
        detail = ", ".join(f"{f}: {v['codec_id']}" for f, v in seen.items())
        raise ValueError(f"token shards from different codecs cannot be mixed ({detail})")
    return next(iter(seen.values()), {})


@dataclass
class TokenLoaderConfig:
    """max_frames: crop (training: random offset; evaluation: from the start); longer: what happens
    to an utterance over ``max_frames``: ``crop`` it, or ``skip`` it (counted as ``too_long``), which a
    model conditioned on the transcript needs (a crop no longer says its text); num_codebooks: keep the
    first K levels (None: all). text: "none", "text" or "phonemes" (encoded by ``text_encoder``).
    bucket_batches: training batches of similar lengths (less padding): each worker decodes this
    many batches of samples at a time, sorts them by frames and batches neighbours (0: off)."""

    batch_size: int = 16
    max_frames: int | None = 750
    num_codebooks: int | None = None
    shuffle_buffer: int = 500
    seed: int = 0
    epoch_samples: int | None = None
    text: str = "none"
    bucket_batches: int = 0
    longer: str = "crop"

    def __post_init__(self) -> None:
        if self.longer not in ("crop", "skip"):
            raise ValueError(f"TokenLoaderConfig.longer must be crop or skip, got {self.longer!r}")


class TokenDecoder:
    def __init__(self, cfg: TokenLoaderConfig, skips: SkipCounter, train: bool, codec_id: str | None,
                 cardinality: int | None, text_encoder: Callable[[str], list[int]] | None = None,
                 frame_rate: float = 0.0) -> None:
        self.cfg, self.skips, self.train = cfg, skips, train
        self.codec_id, self.cardinality, self.text_encoder, self.frame_rate = codec_id, cardinality, text_encoder, frame_rate
        if cfg.text != "none" and text_encoder is None:
            raise ValueError(f"text={cfg.text!r} needs a text encoder (a sentencepiece model or phoneme vocabulary)")

    def __call__(self, sample: dict, gen: torch.Generator) -> dict | None:
        key, url = sample.get("__key__"), sample.get("__url__", "?")
        try:
            meta = json.loads(sample["json"]) if "json" in sample else {}
            codes = load_npy(sample["codes.npy"])
        except KeyError:
            self.skips.add("missing_audio", url, key, "no codes.npy member")
            return None
        except (ValueError, OSError, UnicodeDecodeError) as e:
            self.skips.add("bad_tokens", url, key, str(e))
            return None
        if self.codec_id and meta.get("codec_id") not in (None, self.codec_id):
            self.skips.add("codec_mismatch", url, key, f"{meta.get('codec_id')} != {self.codec_id}")
            return None
        if codes.ndim != 2 or codes.dtype != np.int16 or codes.shape[1] == 0 or codes.min() < 0 or (
            self.cardinality and codes.max() >= self.cardinality
        ):
            self.skips.add("bad_tokens", url, key, f"codes {codes.dtype} {codes.shape}")
            return None
        codes_t = torch.from_numpy(codes.astype(np.int64))
        if self.cfg.num_codebooks:
            if codes_t.shape[0] < self.cfg.num_codebooks:
                self.skips.add("bad_tokens", url, key, f"{codes_t.shape[0]} codebooks < {self.cfg.num_codebooks}")
                return None
            codes_t = codes_t[: self.cfg.num_codebooks]
        t, start, stop = codes_t.shape[1], 0, codes_t.shape[1]
        if self.cfg.max_frames and t > self.cfg.max_frames and self.cfg.longer == "skip":
            # a crop of the audio no longer says its whole text: a transcript-conditioned model would
            # learn to drop words, so such an utterance is skipped (counted) rather than cropped
            self.skips.add("too_long", url, key, f"{t} frames > max_frames {self.cfg.max_frames} with its text")
            return None
        if self.cfg.max_frames and t > self.cfg.max_frames:
            if self.train:
                start = int(torch.randint(0, t - self.cfg.max_frames + 1, (1,), generator=gen))
            stop = start + self.cfg.max_frames
            codes_t = codes_t[:, start:stop]
        item = {"codes": codes_t, "key": key, "text": meta.get("text") or "", "speaker": meta.get("speaker") or "",
                "cropped": stop - start < t}
        if "semantic.npy" in sample:
            sem = torch.from_numpy(load_npy(sample["semantic.npy"]).astype(np.int64))
            per_frame = sem.shape[0] / t  # semantic units and codec frames may run at different rates
            item["semantic"] = sem[round(start * per_frame) : round(stop * per_frame)]
        if self.cfg.text != "none":
            item["text_tokens"] = torch.tensor(self.text_encoder(meta.get(self.cfg.text) or ""), dtype=torch.long)
        return item

    def collate(self, items: list[dict]) -> TokenBatch:
        return collate_tokens(items, self.frame_rate)


def _pad(seqs: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([s.shape[-1] for s in seqs], dtype=torch.long)
    out = torch.zeros(len(seqs), *seqs[0].shape[:-1], int(lengths.max()), dtype=seqs[0].dtype)
    for i, s in enumerate(seqs):
        out[i, ..., : s.shape[-1]] = s
    return out, lengths


def collate_tokens(items: list[dict], frame_rate: float) -> TokenBatch:
    codes, lengths = _pad([it["codes"] for it in items])
    batch = TokenBatch(codes=codes, lengths=lengths, mask=lengths_to_mask(lengths, codes.shape[-1]),
                       frame_rate=frame_rate, keys=[it["key"] for it in items],
                       texts=[it["text"] for it in items], speakers=[it["speaker"] for it in items],
                       cropped=torch.tensor([bool(it.get("cropped", False)) for it in items]))
    if all("text_tokens" in it for it in items):
        batch.text_tokens, batch.text_lengths = _pad([it["text_tokens"] for it in items])
    if all("semantic" in it for it in items):
        batch.semantic, batch.semantic_lengths = _pad([it["semantic"] for it in items])
    return batch


def token_dataset(shards: str, cfg: TokenLoaderConfig, train: bool = True, text_encoder=None,
                  skips: SkipCounter | None = None, world: tuple[int, int] | None = None) -> ShardDataset:
    shard_set = expand_urls(shards)
    info = token_manifest_info(shard_set)
    skips = skips or SkipCounter()
    dec = TokenDecoder(cfg, skips, train, info.get("codec_id"), info.get("cardinality"), text_encoder,
                       float(info.get("frame_rate") or 0.0))
    return ShardDataset(shard_set, dec, dec.collate, cfg.batch_size, train=train,
                        shuffle_buffer=cfg.shuffle_buffer if train else 0, seed=cfg.seed,
                        epoch_samples=cfg.epoch_samples if train else None, skips=skips, world=world,
                        bucket_batches=cfg.bucket_batches if train else 0, length_of=_frames)


def _frames(item: dict) -> int:
    return int(item["codes"].shape[-1])
