"""Tiny random-init models for the demo, saved as the files a user passes to ``codeclm demo``:
a codec export (16 kHz, 100 frames/s), VALL-E AR/NAR Lightning-style checkpoints, a phoneme
vocabulary, AudioLM semantic/coarse/fine checkpoints with their run ``config.yaml`` and a semantic
unit model. Random weights speak noise, which is all these tests need."""

from __future__ import annotations

import argparse
import math
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

SR = 16000
CARD, K = 32, 4


def tiny_codec_100hz():
    """A small codec (hop 160: 100 frames/s) whose codebooks are filled by one training-mode
    forward (k-means init on its own latents)."""
    from codec.codec import CodecConfig, build_codec
    from codec.model import SEANetConfig
    from codec.quantize import RVQConfig

    torch.manual_seed(0)
    cfg = CodecConfig(SR, SEANetConfig(n_filters=4, dimension=16, ratios=(8, 5, 4), bottleneck="none"),
                      RVQConfig(dimension=16, n_q=K, bins=CARD, seed=0))
    codec = build_codec(cfg).train()
    g = torch.Generator().manual_seed(0)
    t = torch.arange(8000) / SR
    wav = torch.stack([0.4 * torch.sin(2 * math.pi * (150 + 120 * i) * t) + 0.05 * torch.randn(8000, generator=g)
                       for i in range(4)])[:, None]  # [4, 1, T]
    with torch.no_grad():
        codec(wav, n_q=K)  # every level (no quantizer dropout), so every codebook is filled
    codec.refresh_codec_id()
    return codec.eval()


def save_lm_checkpoint(model: torch.nn.Module, path: Path) -> Path:
    """The layout ``codeclm lm fit`` writes: the LMModule's state dict (``model.`` prefix)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": {f"model.{k}": v for k, v in model.state_dict().items()}, "global_step": 0}, path)
    return path


def save_run(model: torch.nn.Module, root: Path) -> Path:
    """An AudioLM stage as a run folder: ``config.yaml`` (LightningCLI's) and ``checkpoints/last.ckpt``."""
    root.mkdir(parents=True, exist_ok=True)
    cls = type(model)
    section = {"model": {"class_path": f"{cls.__module__}.{cls.__name__}", "init_args": {"cfg": asdict(model.cfg)}}}
    (root / "config.yaml").write_text(yaml.safe_dump({"model": section}))
    return save_lm_checkpoint(model, root / "checkpoints" / "last.ckpt")


def speech_like(seconds: float, sr: int = SR, seed: int = 0) -> np.ndarray:
    """A ``[T]`` float32 signal with a wandering pitch and syllable-like envelope."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    f0 = 140 + 30 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    voiced = sum(np.sin(h * phase) / h for h in range(1, 6))
    envelope = 0.5 * (1 + np.sin(2 * np.pi * 3.0 * t)) ** 2 / 4
    return (0.3 * envelope * voiced + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


@pytest.fixture(scope="session")
def demo_models(tmp_path_factory) -> dict:
    from audiolm.models.coarse import CoarseLM, CoarseLMConfig
    from audiolm.models.fine import FineLM, FineLMConfig
    from audiolm.models.semantic import SemanticLM, SemanticLMConfig
    from audiolm.models.valle import ValleAR, ValleConfig
    from audiolm.models.valle_nar import ValleNAR
    from codec.export import export_codec
    from data.corpus.espeak import VoiceParams, get_espeak
    from data.semantic import SemanticConfig, SemanticModel, build_features
    from data.text import PhonemeVocab

    root = tmp_path_factory.mktemp("demo_models")
    files = {"codec": export_codec(tiny_codec_100hz(), root / "codec")}
    sentences = ["Hello there, how are you today?", "The quick brown fox jumps over the lazy dog.",
                 "Say this in my voice, please."]
    espeak = get_espeak()
    vocab = PhonemeVocab.fit(espeak.phonemes(s, VoiceParams(voice="en-us")) for s in sentences)
    files["phonemes"] = root / "phonemes.json"
    vocab.save(files["phonemes"])

    torch.manual_seed(0)
    vcfg = ValleConfig(text_vocab=64, cardinality=CARD, num_codebooks=K, dim=32, layers=1, heads=2,
                       max_text=128, max_frames=800)
    ar = ValleAR(vcfg)
    with torch.no_grad():  # an AR that speaks until its frame budget: EOS logit 0, the others spread wide
        ar.head.weight.mul_(100.0)
        ar.head.weight[ar.eos] = 0.0
    files["ar"] = save_lm_checkpoint(ar, root / "valle-ar" / "last.ckpt")
    files["nar"] = save_lm_checkpoint(ValleNAR(vcfg), root / "valle-nar" / "last.ckpt")

    size = dict(dim=16, layers=1, heads=2)
    files["semantic"] = save_run(SemanticLM(SemanticLMConfig(n_units=16, max_units=64, **size)), root / "semantic-run")
    files["coarse"] = save_run(CoarseLM(CoarseLMConfig(cardinality=CARD, coarse_codebooks=2, n_units=16, max_frames=64,
                                                       max_semantic=32, units_per_frame=0.5, **size)),
                               root / "coarse-run")
    files["fine"] = save_run(FineLM(FineLMConfig(cardinality=CARD, num_codebooks=K, coarse_codebooks=2, max_frames=64,
                                                 **size)), root / "fine-run")
    scfg = SemanticConfig(features="mfcc", n_units=16, frame_rate=50.0, sample_rate=SR, max_frames=16)
    features = build_features(scfg)
    g = torch.Generator().manual_seed(0)
    units = SemanticModel(scfg, features, torch.randn(16, features.dim, generator=g), torch.zeros(features.dim),
                          torch.ones(features.dim))
    files["semantic_model"] = units.save(root / "units")
    files["prompt"] = root / "prompt.wav"
    sf.write(files["prompt"], speech_like(3.0), SR, subtype="PCM_16")
    return {k: Path(v) for k, v in files.items()}


def demo_args(models: dict, *extra: str, clone: bool = True, cont: bool = True) -> argparse.Namespace:
    """Parsed ``codeclm demo`` arguments for ``models``."""
    from launch.demo import command

    empty = Path(models["codec"]).parent / "empty-run"  # no models to take from a runs/quickstart of the cwd
    empty.mkdir(exist_ok=True)
    argv = ["demo", "--codec", str(models["codec"]), "--models", str(empty)]
    if clone:
        argv += ["--ar", str(models["ar"]), "--nar", str(models["nar"]), "--text-model", str(models["phonemes"])]
    if cont:
        argv += ["--coarse", str(models["coarse"]), "--fine", str(models["fine"]), "--semantic", str(models["semantic"]),
                 "--semantic-model", str(models["semantic_model"])]
    parser = argparse.ArgumentParser()
    command.register(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv + ["--device", "cpu", *extra])
