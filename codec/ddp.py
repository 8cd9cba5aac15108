"""Data-parallel GAN training: the generator (codec) and the discriminators are wrapped in
DistributedDataParallel separately, not as one LightningModule.

Each optimizer step then back-propagates through exactly one forward of each wrapper whose
parameters all receive gradients, so DDP needs no ``find_unused_parameters``: the
discriminator step runs one discriminator forward over real and fake audio together, and the
generator step one codec forward and one discriminator forward. The quantizer synchronizes its
own codebook statistics across ranks, so buffers are not broadcast.

``codeclm codec fit`` picks it by itself on more than one process (:func:`gan_strategy`), or name it
as the trainer's strategy (``trainer.strategy: {class_path: codec.ddp.GANDDPStrategy}``);
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
        for name in (getattr(module, "generator_name", "codec"), "discriminator"):
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


# Strategy names that run one process on one device: nothing to wrap.
SINGLE_DEVICE = ("single_device", "single_xla", "single_tpu")


def process_count(accelerator: Any = "auto", devices: Any = "auto", num_nodes: int = 1) -> int:
    """How many training processes Lightning starts for these Trainer flags (as its "auto" strategy
    decides: more than one node or more than one device means DDP). 1 when the flags are invalid
    (the Trainer then reports them itself)."""
    import torch
    from lightning.pytorch.accelerators import Accelerator, AcceleratorRegistry

    try:
        nodes = int(num_nodes or 1)
        if isinstance(accelerator, Accelerator):
            cls = type(accelerator)
        else:
            name = str(accelerator or "auto").lower()
            cuda = torch.cuda.is_available()
            mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
            if name == "auto":
                name = "cuda" if cuda else "mps" if mps else "cpu"
            elif name == "gpu":
                name = "mps" if mps and not cuda else "cuda"
            cls = AcceleratorRegistry[name]["accelerator"]
        if devices is None or str(devices).lower() == "auto":
            count = cls.auto_device_count()
        else:
            count = len(cls.get_parallel_devices(cls.parse_devices(devices)))
    except Exception:  # noqa: BLE001 - invalid flags: the Trainer says what is wrong with them
        return 1
    return nodes * max(1, count)


def _ddp_settings(strategy: DDPStrategy) -> dict[str, Any]:
    """The constructor arguments a built ``DDPStrategy`` was given (those not left at None)."""
    settings = dict(strategy._ddp_kwargs)
    for arg, attr in (("accelerator", "_accelerator"), ("parallel_devices", "parallel_devices"),
                      ("cluster_environment", "cluster_environment"), ("checkpoint_io", "_checkpoint_io"),
                      ("precision_plugin", "_precision_plugin"), ("ddp_comm_state", "_ddp_comm_state"),
                      ("ddp_comm_hook", "_ddp_comm_hook"), ("ddp_comm_wrapper", "_ddp_comm_wrapper"),
                      ("model_averaging_period", "_model_averaging_period"),
                      ("process_group_backend", "_process_group_backend"), ("timeout", "_timeout"),
                      ("start_method", "_start_method")):
        value = getattr(strategy, attr, None)
        if value is not None:
            settings[arg] = value
    return settings


def gan_strategy(strategy: Any, accelerator: Any = "auto", devices: Any = "auto",
                 num_nodes: int = 1) -> tuple[Any, str | None]:
    """The strategy codec training runs with, for the Trainer flags given, and a note saying what
    was changed (None when nothing was).

    Plain DDP cannot train the codec's GAN (each optimizer step leaves the other network without
    gradients: "parameters that were not used"), so a ``ddp`` / ``ddp_spawn`` / ``ddp_fork`` name,
    a ``DDPStrategy`` object, or ``auto`` on more than one process becomes
    :class:`GANDDPStrategy` with the same settings (start method, process group backend, timeout,
    DDP keyword arguments; ``find_unused_parameters`` is dropped: nothing is unused). One process
    keeps its strategy; a strategy that cannot train a GAN with two optimizers (FSDP, DeepSpeed,
    XLA, ...) is a ``ValueError``.
    """
    from lightning.pytorch.strategies import SingleDeviceStrategy, Strategy, StrategyRegistry

    if isinstance(strategy, GANDDPStrategy) or isinstance(strategy, SingleDeviceStrategy):
        return strategy, None
    if type(strategy) is DDPStrategy:  # noqa: E721 - subclasses (DeepSpeed, ...) do other things
        name, settings = type(strategy).__name__, _ddp_settings(strategy)
    elif isinstance(strategy, Strategy):
        name, settings = type(strategy).__name__, None
    else:
        name = "auto" if strategy is None else str(strategy)
        if name in ("auto", *SINGLE_DEVICE):
            if name != "auto" or process_count(accelerator, devices, num_nodes) == 1:
                return strategy, None
            settings = {}
        elif name in StrategyRegistry and StrategyRegistry[name]["strategy"] is DDPStrategy:
            settings = dict(StrategyRegistry[name]["init_params"])
        else:
            settings = None
    if settings is None:
        raise ValueError(f"--trainer.strategy {name} cannot train the codec (a GAN with two optimizers): leave the "
                         "strategy out or give ddp on more than one device; it becomes codec.ddp.GANDDPStrategy")
    dropped = " (find_unused_parameters dropped: every parameter gets its gradient)" if settings.pop(
        "find_unused_parameters", False) else ""
    n = process_count(accelerator, devices, num_nodes)
    return GANDDPStrategy(**settings), (f"codec training on {n} process{'es' if n > 1 else ''}: strategy {name} -> "
                                        f"codec.ddp.GANDDPStrategy (generator and discriminators wrapped "
                                        f"separately){dropped}")
