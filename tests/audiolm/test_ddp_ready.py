"""Every language-model stage, as its shipped configs build it, gives every parameter a gradient in
every training step, whatever the step draws (VALL-E NAR's stage, MusicGen's condition dropout,
prompt lengths). That is what DDP without ``find_unused_parameters`` needs, so the same config
runs unchanged on one device and on many."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from data.batch import TokenBatch, lengths_to_mask

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted(ROOT.glob("configs/lm/*.yaml"))


def build(path: Path, tmp_path: Path):
    from lightning.pytorch.cli import LightningCLI

    from audiolm.lightning_module import LMModule
    from data.token_datamodule import TokenDataModule

    shrink = ["--model.model.init_args.cfg.dim", "32", "--model.model.init_args.cfg.layers", "1",
              "--model.model.init_args.cfg.heads", "2"]
    cli = LightningCLI(LMModule, TokenDataModule, run=False, args=[
        "--config", str(path), "--trainer.accelerator", "cpu", "--trainer.default_root_dir", str(tmp_path),
        "--data.shards", str(tmp_path), *shrink], save_config_kwargs={"overwrite": True})
    return cli.model.model


def batch_for(cfg, seed: int) -> TokenBatch:
    g = torch.Generator().manual_seed(seed)
    b, t = 3, 12
    k = getattr(cfg, "num_codebooks", None) or getattr(cfg, "coarse_codebooks", 2)
    lengths = torch.tensor([t, 9, 6])
    text_vocab = max(2, getattr(cfg, "text_vocab", 0) or 2)
    sem_len = torch.tensor([8, 6, 5])
    return TokenBatch(codes=torch.randint(0, cfg.cardinality if hasattr(cfg, "cardinality") else 16, (b, k, t), generator=g),
                      lengths=lengths, mask=lengths_to_mask(lengths, t), frame_rate=50.0,
                      text_tokens=torch.randint(1, text_vocab, (b, 5), generator=g),
                      text_lengths=torch.tensor([5, 3, 2]),
                      semantic=torch.randint(0, getattr(cfg, "n_units", 16), (b, 8), generator=g),
                      semantic_lengths=sem_len)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_every_parameter_gets_a_gradient_every_step(path, tmp_path):
    model = build(path, tmp_path).train()
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    assert names
    for seed in range(8):  # several draws of the step's random choices
        torch.manual_seed(seed)
        model.zero_grad(set_to_none=True)
        out = model.loss(batch_for(model.cfg, seed))
        assert torch.isfinite(out.loss)
        out.loss.backward()
        missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
        assert not missing, f"seed {seed}: no gradient for {missing[:5]}"
