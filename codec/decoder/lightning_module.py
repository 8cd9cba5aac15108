"""GAN training of a second decoder on a frozen codec's tokens.

The codec (``codec``: an export directory, a ``.ckpt`` or ``encodec24k[:weights]``, as
:func:`codec.load.load_tokenizer` reads it) encodes each batch with all its codebooks; a ``k`` is
drawn uniformly from ``1..K`` for the batch, and the :class:`~codec.decoder.model.TokenDecoder`
learns to turn the latent of the first ``k`` codebooks back into the audio, with the codec's own
GAN step (:class:`codec.lightning_module.GANModule`: discriminators, mel and feature losses,
balancer, non-finite guard, GAN health). The codec never changes: it is not part of the module's
parameters or checkpoints, which record its ``codec_id`` instead; resuming with a codec whose
weights differ is refused. Validation logs, beside the decoder's distances at 1, K/2 and K
codebooks, the codec's own decoder's mel distance on the same tokens
(``val/codec_mel_distance@...``).
"""

from __future__ import annotations

from typing import Any

import torch

from codec.decoder.model import CodecShape, DecoderConfig, TokenDecoder
from codec.ddp import parallel
from codec.discriminators import DiscriminatorsConfig
from codec.health import HealthConfig
from codec.lightning_module import GANModule, Generated
from codec.losses import mel_distance
from codec.training import CodecLossConfig, OptimConfig, ValidationConfig
from data.batch import AudioBatch


class DecoderModule(GANModule):
    """Args:
        codec: the frozen codec whose tokens the decoder reads (a spec, see the module doc).
        decoder: the decoder's architecture (:class:`DecoderConfig`).
        init_from_codec: start from the codec's own decoder (a ``fourier`` decoder of the same shape:
            :meth:`TokenDecoder.init_from`), so that training begins where the codec's decoder is.
        flow_weight: weight of the flow-matching loss (``flow`` head).
        gan_steps: Euler steps of the ``flow`` head's sampler, unrolled, that the discriminators
            judge once they start (``losses.discriminator_warmup``): GAN fine-tuning of the few-step
            sampler. Before, a ``flow`` decoder learns by flow matching alone (plus the mel and L1
            losses of its clean-signal prediction, at ``losses.mel`` and ``losses.l1``).
        The rest as :class:`codec.lightning_module.CodecModule` takes them.
    """

    generator_name = "decoder"

    def __init__(self, codec: str, decoder: DecoderConfig | None = None, discriminators: list[str] | None = None,
                 discriminator_sizes: DiscriminatorsConfig | None = None, tiny_discriminators: bool = False,
                 losses: CodecLossConfig | None = None, optim: OptimConfig | None = None,
                 validation: ValidationConfig | None = None, max_nonfinite_steps: int = 5,
                 health: HealthConfig | None = None, init_from_codec: bool = False, flow_weight: float = 1.0,
                 gan_steps: int = 2) -> None:
        super().__init__()
        from codec.load import load_tokenizer

        tokens = load_tokenizer(codec)
        self.codec_spec = codec
        self.shape = CodecShape.of(tokens)
        object.__setattr__(self, "tokens", tokens)  # frozen, outside the module's parameters and state
        self.codec_id = tokens.codec_id
        self.decoder = TokenDecoder(decoder or DecoderConfig(), self.shape)
        self.flow_weight, self.gan_steps = flow_weight, gan_steps
        if init_from_codec:
            own = getattr(getattr(tokens, "codec", tokens), "decoder", None)
            self.decoder.init_from(own)
        self._setup_gan(self.shape.channels, self.shape.sample_rate, discriminators, discriminator_sizes,
                        tiny_discriminators, losses, optim, validation, max_nonfinite_steps, health)

    def _place_tokens(self) -> None:
        self.tokens.to(self.device)

    def on_fit_start(self) -> None:
        self._place_tokens()

    def on_validation_start(self) -> None:
        self._place_tokens()

    @torch.no_grad()
    def _codes(self, real: torch.Tensor) -> torch.Tensor:
        return self.tokens.encode(real, self.shape.num_codebooks).to(real.device)

    def _latent(self, codes: torch.Tensor, k: int) -> torch.Tensor:
        with torch.no_grad():
            return self.tokens.dequantize(codes[:, :k]).to(codes.device, torch.float32)

    def generate(self, real: torch.Tensor) -> Generated:
        codes = self._codes(real)
        k = int(torch.randint(1, self.shape.num_codebooks + 1, ()).item())
        logs = {"train/k": torch.tensor(float(k))}
        latent = self._latent(codes, k)
        if self.decoder.cfg.head != "flow":
            fake = parallel(self, "decoder")(latent, k)[..., : real.shape[-1]]
            return Generated(fake, logs=logs)
        flow = self.decoder.net
        flow.observe(real)  # the per-band scale follows the training audio
        steps = self.gan_steps if self.adversarial_active else 0
        noise = torch.randn(latent.shape[0], flow.channels * 2 * flow.bins, latent.shape[-1], device=latent.device)
        loss, clean, fake = parallel(self, "decoder")(latent, k, wav=real, sample_steps=steps, noise=noise)
        out = clean if fake is None else fake  # the sampler's audio once the discriminators judge it
        return Generated(out[..., : real.shape[-1]], losses={"flow": self.flow_weight * loss}, logs=logs)

    def reconstruct(self, real: torch.Tensor, k: int) -> torch.Tensor:
        return self.decoder(self._latent(self._codes(real), k), k)[..., : real.shape[-1]]

    def num_codebooks(self) -> int:
        return self.shape.num_codebooks

    def bandwidth(self, k: int) -> float:
        import math

        return k * math.log2(self.shape.cardinality) * self.shape.sample_rate / self.shape.hop_length / 1000

    def validation_step(self, batch: AudioBatch, batch_idx: int) -> None:
        super().validation_step(batch, batch_idx)
        real = batch.audio
        codes = self._codes(real)
        for k in self._val_levels():  # the codec's own decoder on the same tokens: the line to beat
            with torch.no_grad():
                ref = self.tokens.decode(codes[:, :k]).to(real.device)[..., : real.shape[-1]]
            self.log(f"val/codec_mel_distance@{self.bandwidth(k):g}kbps",
                     mel_distance(ref, real, self.sample_rate, self.mel_cfg).mean(), sync_dist=True,
                     batch_size=len(batch))

    # -- checkpoints -----------------------------------------------------------------------------
    def decoder_record(self) -> dict[str, Any]:
        """What an export of this decoder records beside its weights."""
        return {"config": self.decoder.cfg.to_dict(), "codec": vars(self.shape), "codec_id": self.codec_id,
                "codec_spec": self.codec_spec}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["decoder_record"] = self.decoder_record()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        record = checkpoint.get("decoder_record") or {}
        if record.get("codec_id") not in (None, self.codec_id):
            raise ValueError(f"this checkpoint trained a decoder for codec {record['codec_id']}, but --model.codec "
                             f"{self.codec_spec} is codec {self.codec_id}: resume with the codec it was trained on")
        super().on_load_checkpoint(checkpoint)
