"""What every discriminator returns, and the module that runs several as one.

A discriminator maps audio ``[B, C, T]`` to a :class:`DiscriminatorOutput`: one logit map per
sub-discriminator (a scale, a period, a resolution) and, for each, the activations of its hidden
layers (the feature-matching targets). Multi-scale discriminators are :class:`MultiDiscriminator`
subclasses whose members are single-scale discriminators, so outputs nest and concatenate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import torch
from einops import rearrange
from torch import nn
from torch.nn.utils import parametrizations


@dataclass
class DiscriminatorOutput:
    """Outputs of one or several discriminators.

    logits: one tensor per sub-discriminator, ``[B, 1, H, W]`` (H, W depend on the kind and T).
    features: per sub-discriminator, the hidden activations ``[B, D_l, H_l, W_l]`` in layer order.
    names: per sub-discriminator, a label for logging (``"mpd/p2"``, ``"msstft/0"``).
    """

    logits: list[torch.Tensor]
    features: list[list[torch.Tensor]]
    names: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if len(self.logits) != len(self.features):
            raise ValueError(f"DiscriminatorOutput: {len(self.logits)} logits but {len(self.features)} feature lists")
        if self.names and len(self.names) != len(self.logits):
            raise ValueError(f"DiscriminatorOutput: {len(self.logits)} logits but {len(self.names)} names")

    def __len__(self) -> int:
        return len(self.logits)

    @staticmethod
    def concat(outputs: Sequence[DiscriminatorOutput], prefixes: Sequence[str] | None = None) -> DiscriminatorOutput:
        """Joins outputs in order; ``prefixes`` (one per output) are prepended to their names."""
        logits: list[torch.Tensor] = []
        features: list[list[torch.Tensor]] = []
        names: list[str] = []
        for i, out in enumerate(outputs):
            logits.extend(out.logits)
            features.extend(out.features)
            own = out.names or ([""] if len(out) == 1 else [str(j) for j in range(len(out))])
            prefix = prefixes[i] if prefixes is not None else ""
            names.extend("/".join(part for part in (prefix, n) if part) for n in own)
        return DiscriminatorOutput(logits=logits, features=features, names=names)


class MultiDiscriminator(nn.Module):
    """Runs several discriminators on the same audio and concatenates their outputs.

    ``discriminators`` maps a name to a module returning :class:`DiscriminatorOutput` (a list gets
    names ``"0"``, ``"1"``, ...). Names prefix the sub-discriminator names in the output.
    """

    def __init__(self, discriminators: Mapping[str, nn.Module] | Sequence[nn.Module]):
        super().__init__()
        if not isinstance(discriminators, Mapping):
            discriminators = {str(i): d for i, d in enumerate(discriminators)}
        if not discriminators:
            raise ValueError("MultiDiscriminator needs at least one discriminator")
        self.discriminators = nn.ModuleDict(dict(discriminators))

    @property
    def names(self) -> list[str]:
        return list(self.discriminators.keys())

    def forward(self, wav: torch.Tensor) -> DiscriminatorOutput:
        check_audio(wav, None, type(self).__name__)
        outs = [d(wav) for d in self.discriminators.values()]
        return DiscriminatorOutput.concat(outs, prefixes=self.names)


def check_audio(wav: torch.Tensor, channels: int | None, who: str) -> None:
    """Raises a clear error unless ``wav`` is ``[B, channels, T]``."""
    if wav.dim() != 3:
        raise ValueError(f"{who} expects audio [B, C, T], got shape {tuple(wav.shape)}")
    if channels is not None and wav.shape[1] != channels:
        raise ValueError(
            f"{who} was built for {channels} channel(s) but got audio with {wav.shape[1]}: "
            f"set the discriminator `channels` option to {wav.shape[1]}"
        )


def normed(module: nn.Module, norm: str) -> nn.Module:
    """Wraps a conv in weight norm (``"weight"``), spectral norm (``"spectral"``) or nothing (``"none"``)."""
    wrap: dict[str, Callable[[nn.Module], nn.Module]] = {
        "weight": parametrizations.weight_norm,
        "spectral": parametrizations.spectral_norm,
        "none": lambda m: m,
    }
    if norm not in wrap:
        raise ValueError(f"unknown norm {norm!r}: choose one of {sorted(wrap)}")
    return wrap[norm](module)


def same_padding(kernel_size: tuple[int, int], dilation: tuple[int, int] = (1, 1)) -> tuple[int, int]:
    """Padding that keeps a stride-1 conv's output the size of its input (odd kernels)."""
    return tuple((k - 1) * d // 2 for k, d in zip(kernel_size, dilation))  # type: ignore[return-value]


def float32_stft(wav: torch.Tensor, n_fft: int, hop_length: int, window: torch.Tensor) -> torch.Tensor:
    """Complex STFT of ``[B, C, T]`` audio as ``[B, C, F, N]``, computed in float32 outside autocast.

    No centering: frames start at sample 0 and ``T`` must be at least ``n_fft``.
    """
    b, c, t = wav.shape
    if t < n_fft:
        raise ValueError(f"audio of {t} samples is shorter than the STFT size {n_fft}: use longer segments or smaller n_ffts")
    with torch.autocast(device_type=wav.device.type, enabled=False):
        flat = rearrange(wav.float(), "b c t -> (b c) t")
        spec = torch.stft(
            flat,
            n_fft=n_fft,
            hop_length=hop_length,
            win_length=window.shape[-1],
            window=window.float(),
            center=False,
            return_complex=True,
        )
    return rearrange(spec, "(b c) f n -> b c f n", b=b, c=c)
