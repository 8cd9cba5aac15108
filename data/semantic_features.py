"""Frame feature extractors for semantic units: mono audio ``[B, T]`` to frames ``[B, T_f, D]``.

MFCC with deltas (39 dims), log-mel, or one transformer layer of torchaudio's HuBERT-base loaded
from a local checkpoint. Every extractor gives ``T_f = ceil(T / hop)`` frames,
``hop = sample_rate / frame_rate``; frame ``i`` sits at about sample ``i * hop``.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
import torchaudio
import torchaudio.functional as AF
import torchaudio.transforms as AT
from einops import rearrange
from torch import nn

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
