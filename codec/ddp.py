"""Data-parallel GAN training: the generator (codec) and the discriminators are wrapped in
DistributedDataParallel separately, not as one LightningModule.

Each optimizer step then back-propagates through exactly one forward of each wrapper whose
parameters all receive gradients, so DDP needs no ``find_unused_parameters``: the
discriminator step runs one discriminator forward over real and fake audio together, and the
generator step one codec forward and one discriminator forward. The quantizer synchronizes its
own codebook statistics across ranks, so buffers are not broadcast.

Use it as the trainer's strategy (``trainer.strategy: {class_path: codec.ddp.GANDDPStrategy}``);
checkpoints keep the plain module's keys (``codec.*``, ``discriminator.*``).
"""

from __future__ import annotations

from typing import Any

from lightning.pytorch.strategies import DDPStrategy
from torch import nn
from torch.nn.parallel import DistributedDataParallel


class GANDDPStrategy(DDPStrategy):
    strategy_name = "gan_ddp"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if kwargs.get("find_unused_parameters"):
            raise ValueError("GANDDPStrategy wraps each network so that every parameter gets a gradient: "
                             "find_unused_parameters is not needed")
        kwargs.setdefault("broadcast_buffers", False)
        super().__init__(*args, **kwargs)

    def configure_ddp(self) -> None:
        module = self.model
        device_ids = self.determine_ddp_device_ids()
        wrappers = {}
        for name in ("codec", "discriminator"):
            net = getattr(module, name)
            if not any(p.requires_grad for p in net.parameters()):
                continue
            wrappers[name] = DistributedDataParallel(net, device_ids=device_ids, **self._ddp_kwargs)
        set_parallel_wrappers(module, wrappers)


def set_parallel_wrappers(module: nn.Module, wrappers: dict[str, nn.Module]) -> None:
    """Attach wrappers without registering them as submodules (state dict keys stay plain)."""
    object.__setattr__(module, "_parallel", wrappers)


def parallel(module: nn.Module, name: str) -> nn.Module:
    """The DDP wrapper of ``module.<name>`` when one is set, else the network itself."""
    return getattr(module, "_parallel", {}).get(name) or getattr(module, name)
