"""Builds the discriminator ensemble of a codec from kind names and one small config."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

from torch import nn

from codec.discriminators.base import MultiDiscriminator
from codec.discriminators.mpd import MPDConfig, MultiPeriodDiscriminator
from codec.discriminators.msstft import MSSTFTConfig, MultiScaleSTFTDiscriminator
from codec.discriminators.mrsd import MRSDConfig, MultiResolutionSpectrogramDiscriminator


@dataclass
class DiscriminatorsConfig:
    """Audio channels and the sizes of each kind; only the kinds named at build time are used."""

    channels: int = 1
    msstft: MSSTFTConfig = field(default_factory=MSSTFTConfig)
    mpd: MPDConfig = field(default_factory=MPDConfig)
    mrsd: MRSDConfig = field(default_factory=MRSDConfig)

    @classmethod
    def tiny(cls, channels: int = 1) -> DiscriminatorsConfig:
        """A few thousand parameters a kind, for tests and CPU smoke runs (needs T >= 128)."""
        return cls(
            channels=channels,
            msstft=MSSTFTConfig(
                filters=4,
                max_filters=8,
                dilations=(1, 2),
                n_ffts=(64, 128, 32),
                hop_lengths=(16, 32, 8),
                win_lengths=(64, 128, 32),
            ),
            mpd=MPDConfig(periods=(2, 3), filters=(4, 8, 8)),
            mrsd=MRSDConfig(n_ffts=(64, 128), hop_lengths=(16, 32), win_lengths=(48, 96), filters=4, strided_layers=2),
        )


def _msstft(cfg: DiscriminatorsConfig) -> nn.Module:
    return MultiScaleSTFTDiscriminator(cfg.msstft, channels=cfg.channels)


def _mpd(cfg: DiscriminatorsConfig) -> nn.Module:
    return MultiPeriodDiscriminator(cfg.mpd, channels=cfg.channels)


def _mrsd(cfg: DiscriminatorsConfig) -> nn.Module:
    return MultiResolutionSpectrogramDiscriminator(cfg.mrsd, channels=cfg.channels)


KINDS: dict[str, Callable[[DiscriminatorsConfig], nn.Module]] = {"msstft": _msstft, "mpd": _mpd, "mrsd": _mrsd}


def build_discriminators(names: Sequence[str], cfg: DiscriminatorsConfig | None = None) -> MultiDiscriminator:
    """One :class:`MultiDiscriminator` over the named kinds (``"msstft"``, ``"mpd"``, ``"mrsd"``), in order.

    Output names read ``"<kind>/<member>"``, e.g. ``"mpd/p2"`` or ``"msstft/0"``.
    """
    cfg = cfg or DiscriminatorsConfig()
    if isinstance(names, str):
        names = [names]
    if not names:
        raise ValueError(f"build_discriminators needs at least one kind: choose from {sorted(KINDS)}")
    unknown = [n for n in names if n not in KINDS]
    if unknown:
        raise ValueError(f"unknown discriminator kind(s) {unknown}: choose from {sorted(KINDS)}")
    if len(set(names)) != len(names):
        raise ValueError(f"discriminator kinds repeat in {list(names)}: name each kind once")
    return MultiDiscriminator({n: KINDS[n](cfg) for n in names})
