"""Codec training losses and validation metrics; they live outside the models."""

from codec.losses.adversarial import (
    discriminator_loss,
    feature_matching_loss,
    generator_loss,
    hinge_discriminator_loss,
    hinge_generator_loss,
    ls_discriminator_loss,
    ls_generator_loss,
)
from codec.losses.balancer import Balancer, BalancerConfig, BalancerResult
from codec.losses.spectral import (
    MelLossConfig,
    STFTLossConfig,
    l1_waveform_loss,
    log_mel,
    mel_distance,
    mel_filterbank,
    multiresolution_stft_loss,
    multiscale_mel_loss,
    si_sdr,
    stft_distance,
    stft_magnitude,
)

__all__ = [
    "Balancer",
    "BalancerConfig",
    "BalancerResult",
    "MelLossConfig",
    "STFTLossConfig",
    "discriminator_loss",
    "feature_matching_loss",
    "generator_loss",
    "hinge_discriminator_loss",
    "hinge_generator_loss",
    "l1_waveform_loss",
    "log_mel",
    "ls_discriminator_loss",
    "ls_generator_loss",
    "mel_distance",
    "mel_filterbank",
    "multiresolution_stft_loss",
    "multiscale_mel_loss",
    "si_sdr",
    "stft_distance",
    "stft_magnitude",
]
