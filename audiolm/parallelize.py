"""Sharding a language model across ranks with FSDP (``fully_shard``), applied from outside the
model: the stage models stay plain ``nn.Module``s.

``LMModule.configure_model`` calls :func:`shard_model` when the Trainer's strategy is Lightning's
``ModelParallelStrategy``: every transformer block becomes one FSDP unit (its parameters are
gathered for its forward and backward only), and the rest of the model (embeddings, heads, the
text encoder's non-block parts) one more unit at the root, so tied weights stay together. Every
rank is a data-parallel rank over one flat mesh of all ranks, so the same config runs on any
number of devices and nodes.
"""

from __future__ import annotations

import torch
from torch import nn


def _blocks(model: nn.Module) -> list[nn.Module]:
    from audiolm.nn.transformer import Block

    return [m for m in model.modules() if isinstance(m, Block)]


def flat_mesh(device_type: str):
    """A one-dimensional device mesh over every rank of the default process group."""
    from torch.distributed.device_mesh import init_device_mesh

    return init_device_mesh(device_type, (torch.distributed.get_world_size(),), mesh_dim_names=("fsdp",))


def shard_model(model: nn.Module, mesh, mixed_precision: torch.dtype | None = None) -> nn.Module:
    """``fully_shard`` each transformer block of ``model``, then ``model`` itself; returns ``model``.

    ``mixed_precision``: parameter dtype for compute (e.g. ``torch.bfloat16``); gradients are
    reduced in float32.
    """
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    kwargs = {"mesh": mesh}
    if mixed_precision is not None:
        kwargs["mp_policy"] = MixedPrecisionPolicy(param_dtype=mixed_precision, reduce_dtype=torch.float32)
    blocks = _blocks(model)
    if not blocks:
        raise ValueError(f"{type(model).__name__} has no transformer blocks to shard")
    for block in blocks:
        fully_shard(block, **kwargs)
    fully_shard(model, **kwargs)
    return model
