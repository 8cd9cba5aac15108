"""Neural codecs under evaluation: any :class:`~codec.tokenizer.AudioTokenizer` at several bitrates,
and the codebook statistics of its codes.

A :class:`TokenizerFamily` encodes a clip once with the most codebooks it needs and decodes every
prefix of codebooks (fewer codebooks are a prefix of more, for the project's RVQ codec and for
EnCodec alike), so one clip costs one encode and one decode per bitrate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from codec.evaluation.metrics import _resample_np
from codec.tokenizer import AudioTokenizer
from data.audio import to_channels


def bitrates(tokenizer: AudioTokenizer) -> dict[int, float]:
    """kbps of each number of codebooks the tokenizer can encode."""
    per_bandwidth = getattr(tokenizer, "codebooks_per_bandwidth", None)
    if isinstance(per_bandwidth, dict):
        return {int(k): float(b) for b, k in sorted(per_bandwidth.items())}
    per = math.log2(tokenizer.cardinality) * float(tokenizer.frame_rate) / 1000
    return {k: k * per for k in range(1, tokenizer.num_codebooks + 1)}


def codebooks_for(tokenizer: AudioTokenizer, kbps: float) -> int:
    """The most codebooks whose bitrate is at most ``kbps`` (the fewest when none is that low)."""
    rates = bitrates(tokenizer)
    fitting = [k for k, b in rates.items() if b <= kbps * (1 + 1e-6)]
    return max(fitting) if fitting else min(rates)


def _device(tokenizer: object) -> torch.device:
    dev = getattr(tokenizer, "device", None)
    if isinstance(dev, torch.device):
        return dev
    if isinstance(tokenizer, torch.nn.Module):
        p = next(tokenizer.parameters(), None)
        return p.device if p is not None else torch.device("cpu")
    inner = getattr(tokenizer, "codec", None)
    return _device(inner) if inner is not None else torch.device("cpu")


class TokenizerFamily:
    """``tokenizer`` at the codebook counts ``ks``; ``name`` labels its rows in the report."""

    def __init__(self, name: str, tokenizer: AudioTokenizer, ks: list[int]) -> None:
        if not ks:
            raise ValueError("no codebook counts to evaluate")
        self.name, self.tokenizer, self.ks = name, tokenizer, sorted(set(ks))
        self.kbps = {k: bitrates(tokenizer)[k] for k in self.ks}

    @torch.no_grad()
    def process(self, wav: np.ndarray, sr: int) -> tuple[np.ndarray, dict[int, np.ndarray]]:
        """``(codes [K, T'], {k: decoded [T] at sr})`` for a mono clip ``wav [T]`` at ``sr``."""
        tok = self.tokenizer
        x = torch.from_numpy(_resample_np(wav, sr, tok.sample_rate))[None]  # [1, T]
        n = x.shape[-1]
        x = to_channels(x, tok.channels)[None].to(_device(tok))  # [1, C, T]
        codes = tok.encode(x, max(self.ks))[0].cpu().numpy()  # [K, T']
        return codes, self.decode(codes, n, sr)

    @torch.no_grad()
    def decode(self, codes: np.ndarray, n: int, sr: int) -> dict[int, np.ndarray]:
        """``{k: decoded [T] at sr}`` of codes ``[K, T']`` (``n`` samples at the tokenizer's rate): a
        second decoder's rows read the very tokens of the codec's own rows."""
        tok = self.tokenizer
        c = torch.from_numpy(np.asarray(codes, dtype=np.int64))[None].to(_device(tok))
        outputs = {}
        for k in self.ks:
            out = tok.decode(c[:, :k])[0].float().mean(dim=0)[:n].cpu().numpy()  # [T]
            outputs[k] = _resample_np(out, tok.sample_rate, sr)
        return outputs


def find_encodec_weights() -> Path | None:
    """The 24 kHz EnCodec weights in torch's hub cache, where the ``encodec`` package keeps them."""
    from codec.encodec_weights import VARIANTS

    path = Path(torch.hub.get_dir()) / "checkpoints" / VARIANTS["encodec24k"].checkpoint
    return path if path.is_file() else None


@dataclass
class LevelUsage:
    level: int
    used: int  # distinct codes seen
    cardinality: int
    entropy_bits: float  # of the code histogram
    perplexity: float  # 2 ** entropy: the number of equally used codes with that entropy

    @property
    def usage(self) -> float:
        return self.used / self.cardinality

    def as_dict(self) -> dict:
        return {"level": self.level, "used": self.used, "cardinality": self.cardinality, "usage": self.usage,
                "entropy_bits": self.entropy_bits, "perplexity": self.perplexity,
                "max_entropy_bits": math.log2(self.cardinality)}


def codebook_usage(codes: list[np.ndarray], cardinality: int) -> list[LevelUsage]:
    """Per-level usage and entropy of the codes ``[K, T]`` of several clips (all of one K)."""
    if not codes:
        return []
    levels = min(c.shape[0] for c in codes)
    out = []
    for level in range(levels):
        counts = np.bincount(np.concatenate([c[level].ravel() for c in codes]).astype(np.int64),
                             minlength=cardinality).astype(np.float64)
        p = counts[counts > 0] / counts.sum()
        entropy = float(-(p * np.log2(p)).sum())
        out.append(LevelUsage(level, int((counts > 0).sum()), cardinality, entropy, float(2**entropy)))
    return out
