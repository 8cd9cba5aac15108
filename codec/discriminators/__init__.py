"""Discriminators for adversarial codec training: audio ``[B, C, T]`` -> :class:`DiscriminatorOutput`."""

from codec.discriminators.base import DiscriminatorOutput, MultiDiscriminator
from codec.discriminators.build import DiscriminatorsConfig, build_discriminators
from codec.discriminators.mpd import MPDConfig, MultiPeriodDiscriminator, PeriodDiscriminator
from codec.discriminators.mrsd import MRSDConfig, MultiResolutionSpectrogramDiscriminator, SpectrogramDiscriminator
from codec.discriminators.msstft import MSSTFTConfig, MultiScaleSTFTDiscriminator, STFTDiscriminator

__all__ = [
    "DiscriminatorOutput",
    "DiscriminatorsConfig",
    "MPDConfig",
    "MRSDConfig",
    "MSSTFTConfig",
    "MultiDiscriminator",
    "MultiPeriodDiscriminator",
    "MultiResolutionSpectrogramDiscriminator",
    "MultiScaleSTFTDiscriminator",
    "PeriodDiscriminator",
    "STFTDiscriminator",
    "SpectrogramDiscriminator",
    "build_discriminators",
]
