"""Codec GAN training on two processes (gloo) through Lightning with GANDDPStrategy: no
find_unused_parameters, and after several steps on different data every rank holds the same
codec, codebooks and discriminators. The ranks are started the way torchrun starts them (one
process each, rank and rendezvous in the environment)."""

from __future__ import annotations

import os
import socket

import lightning as L
import torch.multiprocessing as mp
import pytest
import torch

from codec.codec import CodecConfig
from codec.ddp import GANDDPStrategy
from codec.lightning_module import CodecModule
from codec.model import SEANetConfig
from codec.quantize import RVQConfig
from codec.training import CodecLossConfig
from data.datamodule import AudioDataModule, AudioLoaderConfig
from tests.conftest import make_shards


class SaveStates(L.Callback):
    def __init__(self, folder: str) -> None:
        self.folder = folder

    def on_train_end(self, trainer, module) -> None:
        torch.save({k: v.detach().cpu() for k, v in module.state_dict().items()},
                   f"{self.folder}/rank{trainer.global_rank}.pt")


def _rank(rank: int, port: int, folder: str, kind: str, balancer: bool) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE="2", NODE_RANK="0",
                      LOCAL_RANK=str(rank), RANK=str(rank))
    torch.set_num_threads(1)
    cfg = CodecConfig(8000, SEANetConfig(n_filters=4, dimension=16, ratios=(4, 4), bottleneck="none"),
                      RVQConfig(dimension=16, n_q=3, bins=16, kind=kind))
    module = CodecModule(cfg, discriminators=["msstft", "mpd"], tiny_discriminators=True,
                         losses=CodecLossConfig(discriminator_warmup=2, balancer=balancer, mel_n_ffts=(32, 64, 128)))
    dm = AudioDataModule(f"{folder}/shards", loader=AudioLoaderConfig(sample_rate=8000, crop_seconds=0.25,
                                                                             batch_size=2), num_workers=0)
    trainer = L.Trainer(accelerator="cpu", devices=2, strategy=GANDDPStrategy(), max_steps=10,
                        logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[SaveStates(folder)])
    trainer.fit(module, dm)


@pytest.mark.ddp
@pytest.mark.parametrize("kind,balancer", [("ema", False), ("factorized", True)])
def test_two_ranks_stay_identical(tmp_path, kind, balancer):
    make_shards(tmp_path / "shards", [6, 6, 6, 6], sr=8000, seconds=0.3)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_rank, args=(port, str(tmp_path), kind, balancer), nprocs=2, join=True)
    a, b = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2))
    assert a.keys() == b.keys() and any(k.startswith("codec.quantizer") for k in a)
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert int(a["batches_trained"]) == 6  # 2 warm-up batches (1 step each) + 4 batches (2 steps each)


def _decoder_rank(rank: int, port: int, folder: str) -> None:
    from codec.decoder.flow import FlowConfig
    from codec.decoder.lightning_module import DecoderModule
    from codec.decoder.model import DecoderConfig
    from codec.model.fourier import FourierConfig

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE="2", NODE_RANK="0",
                      LOCAL_RANK=str(rank), RANK=str(rank))
    torch.set_num_threads(1)
    torch.manual_seed(rank)  # each rank draws its own k
    module = DecoderModule(f"{folder}/codec", DecoderConfig(head="flow", fourier=FourierConfig(width=16, layers=2),
                                                            flow=FlowConfig(steps=2)),
                           discriminators=["msstft"], tiny_discriminators=True,
                           losses=CodecLossConfig(discriminator_warmup=2, mel_n_ffts=(32, 64, 128)))
    dm = AudioDataModule(f"{folder}/shards", loader=AudioLoaderConfig(sample_rate=8000, crop_seconds=0.25,
                                                                      batch_size=2), num_workers=0)
    trainer = L.Trainer(accelerator="cpu", devices=2, strategy=GANDDPStrategy(), max_steps=6, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        callbacks=[SaveStates(folder)])
    trainer.fit(module, dm)


@pytest.mark.ddp
def test_a_second_decoder_trains_on_two_ranks_that_stay_identical(tmp_path):
    """The flow decoder (flow matching, then the unrolled sampler against the discriminators) on
    two processes: the decoder is the wrapped generator, the frozen codec is left alone, and the
    per-band scale is averaged over the ranks."""
    from codec.export import export_codec
    from tests.codec.test_decoder import tiny_codec

    make_shards(tmp_path / "shards", [6, 6, 6, 6], sr=8000, seconds=0.3)
    export_codec(tiny_codec(), tmp_path / "codec")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_decoder_rank, args=(port, str(tmp_path)), nprocs=2, join=True)
    a, b = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2))
    assert a.keys() == b.keys() and "decoder.net.band_scale" in a and not any(k.startswith("codec.") for k in a)
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert int(a["batches_trained"]) == 4
