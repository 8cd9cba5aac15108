"""GAN training of the codec with Lightning: manual optimization of the generator (the codec)
and the discriminators, each with its own optimizer and schedule. :class:`GANModule` holds the
step; :class:`CodecModule` trains a codec with it, and :mod:`codec.decoder` a second decoder on a
frozen codec's tokens.

One step: the discriminators learn to tell real from reconstructed audio (hinge or LS loss);
then the codec learns from L1 + multi-scale mel reconstruction, the adversarial and
feature-matching losses, and the quantizer's commitment loss, either as a weighted sum or
through the gradient balancer. Validation reports mel distance, STFT distance and SI-SDR at
several bitrates, and logs audio and spectrograms. A step whose losses or gradients are not finite
on any rank is skipped on all of them (:mod:`data.numerics`): a skipped generator step also
leaves the codec's buffers (EMA codebooks) and the balancer as they were before the batch.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import lightning as L
import torch
from torch import nn

from codec.codebook_health import CodebookCollapseError, CodebookHealth, CodebookHealthConfig
from codec.codec import Codec, CodecConfig, build_codec
from codec.ddp import parallel
from codec.discriminators import DiscriminatorOutput
from codec.discriminators import DiscriminatorsConfig, build_discriminators
from codec.health import GANHealth, HealthConfig
from codec.losses import (
    Balancer, BalancerConfig, MelLossConfig, discriminator_loss, feature_matching_loss, generator_loss,
    l1_waveform_loss, mel_distance, multiscale_mel_loss, si_sdr, stft_distance,
)
from codec.media import log_audio_examples
from codec.quantize import QuantizerResult, code_stats
from codec.training import CodecLossConfig, OptimConfig, ValidationConfig, make_optimizer
from data.batch import AudioBatch
from data.numerics import NonFiniteGuard, restore_tensors, snapshot_tensors

log = logging.getLogger("codeclm.codec")


@dataclass
class Generated:
    """What a generator made of a batch: ``audio`` ``[B, C, T]`` (the input's length); the
    quantizer's result when the generator quantizes (its losses train it, its codes are watched);
    ``losses``: weighted losses of the generator's own, added to the total as they are (outside
    the balancer) and logged as ``train/NAME``; ``logs``: scalars to log with the batch."""

    audio: torch.Tensor
    quantizer: QuantizerResult | None = None
    losses: dict[str, torch.Tensor] = field(default_factory=dict)
    logs: dict[str, torch.Tensor] = field(default_factory=dict)


class GANModule(L.LightningModule):
    """The GAN step shared by everything in ``codec/`` that learns to make audio against the
    discriminators: the codec (:class:`CodecModule`) and the second decoders that read its frozen
    tokens (:class:`codec.decoder.lightning_module.DecoderModule`).

    A subclass holds its trained network under the attribute ``generator_name`` (wrapped for DDP
    by :class:`codec.ddp.GANDDPStrategy`; frozen parts, whose parameters need no gradient, are
    left alone), and says how it makes audio from a batch (:meth:`generate`) and from audio at
    ``k`` codebooks (:meth:`reconstruct`, for validation).
    """

    generator_name = "codec"

    def _setup_gan(self, channels: int, sample_rate: int, discriminators: list[str] | None,
                   discriminator_sizes: DiscriminatorsConfig | None, tiny_discriminators: bool,
                   losses: CodecLossConfig | None, optim: OptimConfig | None, validation: ValidationConfig | None,
                   max_nonfinite_steps: int, health: HealthConfig | None) -> None:
        self.automatic_optimization = False
        self.sample_rate = sample_rate
        sizes = DiscriminatorsConfig.tiny(channels) if tiny_discriminators else (discriminator_sizes or DiscriminatorsConfig(channels=channels))
        self.discriminator = build_discriminators(discriminators or ["msstft"], sizes)
        self.loss_cfg = losses or CodecLossConfig()
        self.optim_cfg = optim or OptimConfig()
        self.val_cfg = validation or ValidationConfig()
        self.mel_cfg = MelLossConfig(n_ffts=tuple(self.loss_cfg.mel_n_ffts), n_mels=self.loss_cfg.mel_bins,
                                     l2_weight=self.loss_cfg.mel_l2, eps=self.loss_cfg.mel_floor)
        weights = {"l1": self.loss_cfg.l1, "mel": self.loss_cfg.mel, "adversarial": self.loss_cfg.adversarial,
                   "feature": self.loss_cfg.feature}
        self.balancer = Balancer(BalancerConfig(weights=weights, balance=self.loss_cfg.balancer,
                                                ema_decay=self.loss_cfg.balancer_ema)) if self.loss_cfg.balancer else None
        self._val_examples: list[tuple[torch.Tensor, torch.Tensor]] = []
        # batches trained so far (Lightning's global_step counts both optimizers' steps)
        self.register_buffer("batches_trained", torch.zeros((), dtype=torch.long))
        self.nonfinite = NonFiniteGuard(max_nonfinite_steps)
        self.health = GANHealth(self.loss_cfg.adversarial_kind, health)

    @property
    def generator(self) -> nn.Module:
        return getattr(self, self.generator_name)

    def generate(self, real: torch.Tensor) -> Generated:
        raise NotImplementedError

    def reconstruct(self, real: torch.Tensor, k: int) -> torch.Tensor:
        """``real`` through ``k`` codebooks and back, the input's length (validation)."""
        raise NotImplementedError

    def num_codebooks(self) -> int:
        raise NotImplementedError

    def bandwidth(self, k: int) -> float:
        raise NotImplementedError

    def _watch_codes(self, q: QuantizerResult) -> None:
        """Called with each trained batch's quantizer result."""

    def _after_interval(self) -> None:
        """Called every ``log_every_n_steps`` batches, after the GAN health is logged."""

    # -- optimizers ------------------------------------------------------------------------------
    def configure_optimizers(self):
        trained = [p for p in self.generator.parameters() if p.requires_grad]
        opt_g, sch_g = make_optimizer(trained, self.optim_cfg.lr, self.optim_cfg)
        opt_d, sch_d = make_optimizer(self.discriminator.parameters(), self.optim_cfg.lr_discriminator, self.optim_cfg)
        return [opt_g, opt_d], [sch_g, sch_d]

    @property
    def adversarial_active(self) -> bool:
        return int(self.batches_trained) >= self.loss_cfg.discriminator_warmup

    # -- training --------------------------------------------------------------------------------
    def training_step(self, batch: AudioBatch, batch_idx: int) -> None:
        opt_g, opt_d = self.optimizers()
        sch_g, sch_d = self.lr_schedulers()
        real = batch.audio  # [B, C, T]
        buffers = [b.detach().clone() for b in self.generator.buffers()]  # restored if the step is skipped
        balancer = snapshot_tensors(self.balancer) if self.balancer is not None else None
        out = self.generate(real)
        fake, q = out.audio, out.quantizer
        commit = self.loss_cfg.commitment * q.loss if q is not None else 0.0
        commit = commit + sum(out.losses.values())
        adversarial = self.adversarial_active
        logs: dict[str, torch.Tensor] = {}
        ok_d = True

        if adversarial:  # discriminator step on detached reconstructions, one forward for both
            d_real, d_fake = self._discriminate(real, fake.detach(), detach_real=False)
            loss_d = discriminator_loss(self.loss_cfg.adversarial_kind, d_real.logits, d_fake.logits)
            opt_d.zero_grad(set_to_none=True)
            self.manual_backward(loss_d)
            ok_d = self.nonfinite.finite(self, loss_d, self.discriminator.parameters())
            if ok_d:
                self.clip_gradients(opt_d, gradient_clip_val=self.optim_cfg.grad_clip_discriminator, gradient_clip_algorithm="norm")
            else:
                opt_d.zero_grad(set_to_none=True)  # the step below changes nothing
            opt_d.step()
            logs["train/d_loss"] = loss_d.detach()

        losses = {"l1": l1_waveform_loss(fake, real), "mel": multiscale_mel_loss(fake, real, self.sample_rate, self.mel_cfg)}
        if adversarial:
            d_real, d_fake = self._discriminate(real, fake, detach_real=True)
            losses["adversarial"] = generator_loss(self.loss_cfg.adversarial_kind, d_fake.logits)
            losses["feature"] = feature_matching_loss(d_real.features, d_fake.features)
        if self.balancer is not None:
            res = self.balancer.combine(losses, fake)
            # a surrogate whose gradient on the reconstruction is the balanced gradient
            total = (fake * res.grad.detach()).sum() + commit
        else:
            weights = {"l1": self.loss_cfg.l1, "mel": self.loss_cfg.mel, "adversarial": self.loss_cfg.adversarial,
                       "feature": self.loss_cfg.feature}
            total = sum(weights[k] * v for k, v in losses.items()) + commit
        opt_g.zero_grad(set_to_none=True)
        self.manual_backward(total)
        ok_g = self.nonfinite.finite(self, torch.stack([total.detach(), *(v.detach() for v in losses.values()),
                                                        *(v.detach() for v in out.losses.values())]),
                                     self.generator.parameters())
        if ok_g:
            self.clip_gradients(opt_g, gradient_clip_val=self.optim_cfg.grad_clip, gradient_clip_algorithm="norm")
        else:
            opt_g.zero_grad(set_to_none=True)
            for b, saved in zip(self.generator.buffers(), buffers):
                b.copy_(saved)
            if balancer is not None:
                restore_tensors(self.balancer, balancer)
        opt_g.step()
        if adversarial:
            self.discriminator.zero_grad(set_to_none=True)  # the generator step left gradients there
            if ok_g and ok_d:
                self.health.update(loss_d, losses["adversarial"])
        sch_g.step()
        if adversarial:
            sch_d.step()
        self.batches_trained += 1
        self.nonfinite.record(self, ok_g and ok_d, f"{'generator' if not ok_g else 'discriminator'} loss or gradients")

        logs.update({f"train/{k}": v.detach() for k, v in losses.items() if k != "mel"})
        logs.update({f"train/{k}": v.detach() for k, v in out.losses.items()})
        logs.update(out.logs)
        if q is not None:
            logs["train/commit"] = q.commit_loss.detach()
            logs["train/n_q"] = torch.tensor(float(q.n_q))
            for i, ppl in enumerate(q.perplexity.detach()):  # this batch alone: dead-code churn cannot hide a collapse
                logs[f"codebook/batch_perplexity_{i}"] = ppl
            self._watch_codes(q)
        self.log_dict(logs, prog_bar=False, batch_size=len(batch))
        self.log("train/mel", losses["mel"].detach(), prog_bar=True, batch_size=len(batch))
        if self.trainer.log_every_n_steps and (batch_idx + 1) % self.trainer.log_every_n_steps == 0:
            self._log_interval()

    def _discriminate(self, real: torch.Tensor, fake: torch.Tensor,
                      detach_real: bool) -> tuple[DiscriminatorOutput, DiscriminatorOutput]:
        """One discriminator forward over ``[real; fake]``, split back into the two halves. In the
        generator step the real outputs are targets (``detach_real``)."""
        b = real.shape[0]
        both = parallel(self, "discriminator")(torch.cat([real, fake], dim=0))
        keep = (lambda t: t.detach()) if detach_real else (lambda t: t)  # noqa: E731
        logits = [(t[:b], t[b:]) for t in both.logits]
        feats = [[(t[:b], t[b:]) for t in layers] for layers in both.features]
        d_real = DiscriminatorOutput([keep(r) for r, _ in logits], [[keep(r) for r, _ in f] for f in feats])
        d_fake = DiscriminatorOutput([f for _, f in logits], [[f for _, f in layers] for layers in feats])
        return d_real, d_fake

    def _log_interval(self) -> None:
        metrics, warnings = self.health.check()
        for k, v in metrics.items():
            self.log(k, v, rank_zero_only=True)
        if self.global_rank == 0:
            for w in warnings:
                log.warning(w)
        self._after_interval()

    # -- validation ------------------------------------------------------------------------------
    def _val_levels(self) -> list[int]:
        k = self.num_codebooks()
        return sorted(set(self.val_cfg.bandwidth_codebooks or [1, max(1, k // 2), k]))

    def validation_step(self, batch: AudioBatch, batch_idx: int) -> None:
        real = batch.audio
        top = self.num_codebooks()
        for k in self._val_levels():
            fake = self.reconstruct(real, k)
            tag = f"{self.bandwidth(k):g}kbps"
            if k == top:
                self.log("val/mel_distance", mel_distance(fake, real, self.sample_rate, self.mel_cfg).mean(),
                         sync_dist=True, batch_size=len(batch), prog_bar=True)
            self.log_dict({
                f"val/mel_distance@{tag}": mel_distance(fake, real, self.sample_rate, self.mel_cfg).mean(),
                f"val/stft_distance@{tag}": stft_distance(fake, real).mean(),
                f"val/si_sdr@{tag}": si_sdr(fake, real).mean(),
            }, sync_dist=True, batch_size=len(batch))
            if k == top and len(self._val_examples) < self.val_cfg.examples:
                for i in range(min(len(batch), self.val_cfg.examples - len(self._val_examples))):
                    n = int(batch.lengths[i])
                    self._val_examples.append((real[i, :, :n].detach().cpu(), fake[i, :, :n].detach().cpu()))

    def on_validation_epoch_end(self) -> None:
        if self._val_examples and self.global_rank == 0 and not self.trainer.sanity_checking:
            log_audio_examples(self.loggers, "val/audio", self._val_examples, self.sample_rate, self.global_step)
        self._val_examples = []

    # -- checkpoints -----------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["nonfinite"] = self.nonfinite.state_dict()
        checkpoint["gan_health"] = self.health.state_dict()
        if self.balancer is not None:
            checkpoint["balancer"] = self.balancer.state_dict()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.balancer is not None and "balancer" in checkpoint:
            self.balancer.load_state_dict(checkpoint["balancer"])
        if "nonfinite" in checkpoint:
            self.nonfinite.load_state_dict(checkpoint["nonfinite"])
        if "gan_health" in checkpoint:
            self.health.load_state_dict(checkpoint["gan_health"], self.device)


class CodecModule(GANModule):
    """Args:
        codec: the codec's architecture (:class:`CodecConfig`).
        Lightning's ``max_steps`` counts optimizer steps: one a batch during the discriminator
        warm-up, two a batch after it.
        discriminators: kinds to train against: any of ``msstft``, ``mpd``, ``mrsd``.
        discriminator_sizes: their sizes (:class:`DiscriminatorsConfig`); ``tiny_discriminators``
            picks the few-thousand-parameter sizes for CPU runs.
        losses, optim, validation: see :mod:`codec.training`.
        max_nonfinite_steps: stop (with a debug checkpoint) after this many batches in a row
            with a skipped non-finite step.
        health: when to warn that the discriminator is winning or blind (:mod:`codec.health`);
            the d/g loss ratio is logged as ``gan/d_g_ratio`` every ``log_every_n_steps``.
        codebook_health: when a codebook level counts as collapsed, and how often it is repaired
            before the run stops (:mod:`codec.codebook_health`), checked every ``log_every_n_steps``.
    """

    def __init__(self, codec: CodecConfig, discriminators: list[str] | None = None,
                 discriminator_sizes: DiscriminatorsConfig | None = None, tiny_discriminators: bool = False,
                 losses: CodecLossConfig | None = None, optim: OptimConfig | None = None,
                 validation: ValidationConfig | None = None, max_nonfinite_steps: int = 5,
                 health: HealthConfig | None = None, codebook_health: CodebookHealthConfig | None = None) -> None:
        super().__init__()
        self.codec: Codec = build_codec(codec)
        self._setup_gan(codec.seanet.channels, self.codec.sample_rate, discriminators, discriminator_sizes,
                        tiny_discriminators, losses, optim, validation, max_nonfinite_steps, health)
        self.codebook_health = CodebookHealth(self.codec.num_codebooks, self.codec.cardinality, codebook_health)

    def generate(self, real: torch.Tensor) -> Generated:
        out = parallel(self, "codec")(real)
        return Generated(out.audio, out.quantizer)

    def reconstruct(self, real: torch.Tensor, k: int) -> torch.Tensor:
        codes = self.codec.quantizer.encode(self.codec.encoder(real), k)
        return self.codec.decoder(self.codec.quantizer.decode(codes))[..., : real.shape[-1]]

    def num_codebooks(self) -> int:
        return self.codec.num_codebooks

    def bandwidth(self, k: int) -> float:
        return self.codec.bandwidth(k)

    def _watch_codes(self, q: QuantizerResult) -> None:
        self.codebook_health.update(q.perplexity)

    def _after_interval(self) -> None:
        hist = self.codec.quantizer.code_histogram
        usage, perplexity = code_stats(hist)
        for i, (u, p) in enumerate(zip(usage.tolist(), perplexity.tolist())):
            self.log(f"codebook/usage_{i}", u, rank_zero_only=True)
            self.log(f"codebook/perplexity_{i}", p, rank_zero_only=True)
        self.codec.quantizer.reset_code_histogram()
        self._check_codebooks()

    def _check_codebooks(self) -> None:
        """Per-batch code perplexity of each level over the interval: repair or stop on a lasting collapse
        (the decision is the same on every rank: the perplexities are of codes counted over all ranks)."""
        decision = self.codebook_health.check(int(self.batches_trained))
        for k, v in decision.metrics.items():
            self.log(k, v, rank_zero_only=True)
        if self.global_rank == 0:
            for w in decision.warnings:
                log.warning(w)
        for level in decision.repair:
            self.codec.quantizer.levels[level].restart()
        if decision.stop is not None:
            trainer = self.trainer
            folder = getattr(trainer.checkpoint_callback, "dirpath", None) or f"{trainer.default_root_dir}/checkpoints"
            path = f"{folder}/collapsed-step={self.global_step}.ckpt"
            trainer.save_checkpoint(path)
            if self.global_rank == 0:
                log.error(decision.stop)
            raise CodebookCollapseError(f"{decision.stop} (the state is saved in {path})")

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["codec_config"] = self.codec.cfg.to_dict()
        checkpoint["codebook_health"] = self.codebook_health.state_dict()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        if "codebook_health" in checkpoint:
            self.codebook_health.load_state_dict(checkpoint["codebook_health"])
