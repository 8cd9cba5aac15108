"""Codebook health of codec training: do the codes of each level still carry information?

A collapsed level sends nearly every frame to the same few codes: the reconstruction losses
barely move (the decoder learns an average sound), while every model trained on the tokens
later learns that the next code is the last one. A histogram accumulated over a log interval
hides it (codes revived by dead-code replacement each win a few frames once), so this watches
the perplexity of each batch's own codes: ``exp(entropy)`` of a level's code distribution over
the batch (1 when one code takes every frame, ``bins`` when all are used evenly), summed over
ranks, so every rank takes the same decision.

:class:`CodebookHealth` accumulates those perplexities on the device (no host sync per step) and,
at each log interval, marks a level whose mean is under ``min_perplexity``. Early training
passes through such a phase (the encoder's output moves faster than the codebooks follow), so
nothing is decided before ``grace_batches``. A level marked ``patience`` intervals in a row is
repaired (its codebook re-initialised by k-means on the next batch) up to ``repairs`` times;
after that the run stops with :class:`CodebookCollapseError`, whose message says what to
change. Its state travels in the checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


class CodebookCollapseError(RuntimeError):
    """A codebook level stayed collapsed after every repair allowed."""


@dataclass
class CodebookHealthConfig:
    """min_perplexity: a level whose mean batch perplexity (codes in use, 1 to ``bins``) is below
    this is collapsed; patience: log intervals in a row before acting; grace_batches: training
    batches before any decision; repairs: k-means re-initialisations per level before the run
    stops (0: stop at once); enabled: False only watches and logs."""

    min_perplexity: float = 8.0
    patience: int = 4
    grace_batches: int = 400
    repairs: int = 2
    enabled: bool = True


@dataclass
class HealthDecision:
    """What one check found: ``repair`` lists levels to re-initialise now; ``stop`` is the
    message to stop with (or None); ``warnings`` are lines for the log; ``metrics`` go to the
    logger."""

    repair: list[int] = field(default_factory=list)
    stop: str | None = None
    warnings: list[str] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)


class CodebookHealth:
    def __init__(self, num_levels: int, bins: int, cfg: CodebookHealthConfig | None = None) -> None:
        self.cfg = cfg or CodebookHealthConfig()
        self.num_levels, self.bins = num_levels, bins
        self.sums: torch.Tensor | None = None  # [K] summed batch perplexities this interval (device)
        self.counts: torch.Tensor | None = None  # [K] batches that used each level this interval
        self.strikes = [0] * num_levels  # intervals in a row each level was collapsed
        self.repairs_done = [0] * num_levels

    def update(self, perplexity: torch.Tensor) -> None:
        """One batch's per-level perplexity ``[n_q]`` (the levels that batch used)."""
        p = perplexity.detach().float()
        if self.sums is None or self.counts is None or self.sums.device != p.device:
            self.sums = torch.zeros(self.num_levels, device=p.device)
            self.counts = torch.zeros(self.num_levels, device=p.device)
        n = p.shape[0]
        self.sums[:n] += p
        self.counts[:n] += 1

    def check(self, batches_trained: int) -> HealthDecision:
        """Close the interval: per-level means, strikes, and what to do about them."""
        out = HealthDecision()
        if self.sums is None or self.counts is None:
            return out
        sums, counts = self.sums.tolist(), self.counts.tolist()
        self.sums.zero_()
        self.counts.zero_()
        cfg = self.cfg
        for k, (s, c) in enumerate(zip(sums, counts)):
            if c == 0:  # quantizer dropout left this level out all interval: no evidence either way
                continue
            mean = s / c
            out.metrics[f"codebook/batch_perplexity_mean_{k}"] = mean
            if batches_trained < cfg.grace_batches or mean >= cfg.min_perplexity:
                self.strikes[k] = 0
                continue
            self.strikes[k] += 1
            if self.strikes[k] < cfg.patience:
                continue
            what = (f"codebook level {k} has collapsed: its codes' perplexity per batch averaged {mean:.1f} of "
                    f"{self.bins} for {self.strikes[k]} log intervals in a row (under {cfg.min_perplexity:g}), "
                    f"at batch {batches_trained}")
            if not cfg.enabled:
                out.warnings.append(what)
                self.strikes[k] = 0
            elif self.repairs_done[k] < cfg.repairs:
                self.repairs_done[k] += 1
                self.strikes[k] = 0
                out.repair.append(k)
                out.warnings.append(f"{what}: re-initialising it by k-means on the next batch "
                                    f"(repair {self.repairs_done[k]} of {cfg.repairs})")
            elif out.stop is None:
                out.stop = (f"{what}, after {cfg.repairs} repairs; training stopped, since the tokens of a collapsed "
                            "codebook carry almost nothing. Lower the learning rate (model.optim.lr), start the "
                            "discriminators later (model.losses.discriminator_warmup), or lower "
                            "model.codec.quantizer.threshold_ema_dead_code; model.codebook_health.enabled false "
                            "only warns")
        return out

    def state_dict(self) -> dict:
        return {"strikes": list(self.strikes), "repairs_done": list(self.repairs_done)}

    def load_state_dict(self, state: dict) -> None:
        self.strikes = list(state.get("strikes", self.strikes))
        self.repairs_done = list(state.get("repairs_done", self.repairs_done))
