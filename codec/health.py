"""GAN health of codec training: is the discriminator still a useful teacher?

Two things go wrong in codec GANs and both are silent in the reconstruction losses:

* the discriminator wins: its loss falls near zero, it tells every reconstruction apart, and its
  feedback to the codec becomes a constant push rather than a signal (often after a learning
  rate that is too high for it, or a generator that lost its quantizer);
* the discriminator is at chance: its loss stays at the value of a discriminator that outputs a
  constant, it learns nothing, and the adversarial losses only add noise.

:class:`GANHealth` keeps exponential moving averages of the discriminator loss and the generator's
adversarial loss on the device (no host sync per step), and, when asked (every
``log_every_n_steps``), returns their ratio and the discriminator loss relative to chance
(``d_loss / chance``, 1.0 for a blind discriminator: 2 for hinge, 0.5 for least squares), plus a
warning for either failure once it has lasted ``patience`` batches. Warnings repeat at most once
every ``patience`` batches. Its state travels in the checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

# the discriminator loss of a discriminator that cannot tell real from fake (its best constant output)
CHANCE_LOSS = {"hinge": 2.0, "ls": 0.5}


@dataclass
class HealthConfig:
    """ema: decay of the moving averages; patience: adversarial batches a condition must last
    before it is reported (and the gap between repeats); wins_below / chance_above: the
    discriminator loss relative to chance under which it is winning and over which it is blind."""

    ema: float = 0.98
    patience: int = 200
    wins_below: float = 0.05
    chance_above: float = 0.97


class GANHealth:
    def __init__(self, kind: str, cfg: HealthConfig | None = None) -> None:
        if kind not in CHANCE_LOSS:
            raise ValueError(f"unknown adversarial loss {kind!r}: choose one of {sorted(CHANCE_LOSS)}")
        self.kind, self.cfg = kind, cfg or HealthConfig()
        self.chance = CHANCE_LOSS[kind]
        self.d_ema: torch.Tensor | None = None
        self.g_ema: torch.Tensor | None = None
        self.batches = 0  # adversarial batches seen
        self.since = {"wins": 0, "chance": 0}  # batches each condition has lasted (as of the last check)
        self.warned_at = {"wins": -(1 << 30), "chance": -(1 << 30)}
        self._checked_at = 0

    def update(self, d_loss: torch.Tensor, g_adv: torch.Tensor) -> None:
        """One adversarial batch's discriminator loss and generator adversarial loss."""
        d, g = d_loss.detach().float(), g_adv.detach().float()
        ok = torch.isfinite(d) & torch.isfinite(g)  # skipped steps are not evidence (kept on device: no sync)
        if self.d_ema is None or self.g_ema is None:
            self.d_ema = torch.where(ok, d, torch.full_like(d, self.chance))
            self.g_ema = torch.where(ok, g, torch.zeros_like(g))
        else:
            a = self.cfg.ema
            self.d_ema = torch.where(ok, self.d_ema * a + d * (1 - a), self.d_ema)
            self.g_ema = torch.where(ok, self.g_ema * a + g * (1 - a), self.g_ema)
        self.batches += 1

    def check(self) -> tuple[dict[str, float], list[str]]:
        """Metrics to log and warnings to print since the last check."""
        if self.d_ema is None or self.g_ema is None:
            return {}, []
        d, g = float(self.d_ema), float(self.g_ema)
        rel = d / self.chance
        metrics = {"gan/d_loss_ema": d, "gan/g_adv_ema": g, "gan/d_g_ratio": d / max(g, 1e-8),
                   "gan/d_vs_chance": rel}
        elapsed, self._checked_at = self.batches - self._checked_at, self.batches
        warnings = []
        for name, bad in (("wins", rel < self.cfg.wins_below), ("chance", rel > self.cfg.chance_above)):
            self.since[name] = self.since[name] + elapsed if bad else 0
            lasting = self.since[name] >= self.cfg.patience and self.batches >= self.cfg.patience
            if lasting and self.batches - self.warned_at[name] >= self.cfg.patience:
                self.warned_at[name] = self.batches
                warnings.append(self._message(name, d, g))
        return metrics, warnings

    def _message(self, name: str, d: float, g: float) -> str:
        span = f"for {self.since[name]} batches (d_loss {d:.3g}, generator adversarial loss {g:.3g}, " \
               f"ratio {d / max(g, 1e-8):.3g}; a blind {self.kind} discriminator has d_loss {self.chance:g})"
        if name == "wins":
            return (f"the discriminator is winning {span}: it tells every reconstruction apart, so its feedback "
                    "no longer guides the codec; lower optim.lr_discriminator or raise the reconstruction weights")
        return (f"the discriminator is at chance {span}: it learns nothing and the adversarial losses add only "
                "noise; check optim.lr_discriminator and the discriminator sizes")

    def state_dict(self) -> dict:
        return {"d_ema": None if self.d_ema is None else float(self.d_ema),
                "g_ema": None if self.g_ema is None else float(self.g_ema),
                "batches": self.batches, "since": dict(self.since), "warned_at": dict(self.warned_at),
                "checked_at": self._checked_at}

    def load_state_dict(self, state: dict, device: torch.device | str = "cpu") -> None:
        self.d_ema = None if state["d_ema"] is None else torch.tensor(state["d_ema"], device=device)
        self.g_ema = None if state["g_ema"] is None else torch.tensor(state["g_ema"], device=device)
        self.batches = int(state["batches"])
        self.since = {k: int(v) for k, v in state["since"].items()}
        self.warned_at = {k: int(v) for k, v in state["warned_at"].items()}
        self._checked_at = int(state["checked_at"])
