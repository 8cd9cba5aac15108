"""Semantic units: frame features, a deterministic fit, save/load, HuBERT from a local file, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from data.audio import encode_flac
from data.semantic import (HubertFeatures, LogMelFeatures, MFCCFeatures, SemanticConfig, SemanticModel, fit_semantic,
                           load_hubert)
from data.shards import ShardWriter
from launch.cli import main

SR = 16000


def sine(seconds: float, freq: float, sr: int = SR) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.4 * np.sin(2 * np.pi * freq * t)).astype(np.float32)[None]


def noise(seconds: float, seed: int, sr: int = SR) -> np.ndarray:
    return (0.2 * np.random.default_rng(seed).standard_normal((1, int(seconds * sr)))).astype(np.float32)


def write_clips(out, clips: dict[str, np.ndarray], sr: int = SR, max_count: int = 4) -> str:
    with ShardWriter(out, "clips", max_count=max_count, manifest_extra={"sample_rate": sr}) as w:
        for key, wav in clips.items():
            w.write(key, {"flac": encode_flac(wav, sr), "json": {"duration": wav.shape[-1] / sr, "sample_rate": sr}})
    return str(out)


@pytest.fixture(scope="module")
def sine_noise_shards(tmp_path_factory):
    clips = {f"sine{i}": sine(0.6, 200 + 150 * i) for i in range(4)}
    clips.update({f"noise{i}": noise(0.6, i) for i in range(4)})
    return write_clips(tmp_path_factory.mktemp("sn") / "shards", clips)


@pytest.fixture(scope="module")
def fitted(sine_noise_shards):
    cfg = SemanticConfig(n_units=12, kmeans_iters=15, max_frames=200, seed=3)
    return fit_semantic(sine_noise_shards, cfg, progress=False)


def test_feature_shapes_and_frame_rate():
    mfcc, logmel = MFCCFeatures(), LogMelFeatures(SR, n_mels=80, frame_rate=50)
    x = torch.randn(2, SR)  # 1 s
    assert mfcc(x).shape == (2, 50, 39) and logmel(x).shape == (2, 50, 80)
    assert mfcc.frame_rate == logmel.frame_rate == 50.0 and mfcc.hop == 320
    assert mfcc(torch.randn(1, SR + 1)).shape == (1, 51, 39)  # a partial last frame counts
    assert mfcc(torch.randn(1, 100)).shape == (1, 1, 39)
    assert MFCCFeatures(n_mfcc=13, deltas=False)(x).shape == (2, 50, 13)
    assert LogMelFeatures(24000, n_mels=64, frame_rate=75)(torch.randn(1, 24000)).shape == (1, 75, 64)
    with pytest.raises(ValueError, match="whole number of samples per frame"):
        MFCCFeatures(SR, frame_rate=33)


def test_frames_depend_only_on_their_window():
    mfcc = MFCCFeatures()
    x = torch.randn(1, SR)
    full, head = mfcc(x), mfcc(x[:, : SR // 2])
    # Away from the cut (window + delta context), the frames of a prefix equal the whole clip's.
    assert torch.allclose(full[:, :20], head[:, :20], atol=1e-4)


def test_config_errors():
    with pytest.raises(ValueError, match="features must be one of"):
        SemanticConfig(features="wav2vec")
    with pytest.raises(ValueError, match="--hubert PATH"):
        SemanticConfig(features="hubert")
    with pytest.raises(ValueError, match="max_frames"):
        SemanticConfig(n_units=100, max_frames=50)


def test_fit_is_deterministic_and_independent_of_shard_order(sine_noise_shards, fitted, tmp_path):
    again = fit_semantic(sine_noise_shards, fitted.cfg, progress=False)
    assert torch.equal(again.centroids, fitted.centroids) and again.semantic_id == fitted.semantic_id
    reversed_spec = f"{sine_noise_shards}/clips-000001.tar::{sine_noise_shards}/clips-000000.tar"
    assert torch.equal(fit_semantic(reversed_spec, fitted.cfg, progress=False).centroids, fitted.centroids)
    s = fitted.fit_summary
    assert s.clips == 8 and s.frames_seen == 8 * 30 and s.frames_used == 200 and s.skipped == 0
    assert fitted.centroids.shape == (12, 39) and fitted.n_units == 12 and fitted.frame_rate == 50.0


def test_save_load_round_trip(fitted, tmp_path):
    out = fitted.save(tmp_path / "units")
    loaded = SemanticModel.load(out)
    wav = torch.from_numpy(np.concatenate([sine(0.3, 440), noise(0.3, 9)], axis=-1))
    assert torch.equal(loaded.units(wav, SR), fitted.units(wav, SR))
    assert loaded.semantic_id == fitted.semantic_id and loaded.fit_summary == fitted.fit_summary
    record = json.loads((out / "config.json").read_text())
    assert record["format"] == "codeclm.semantic/1" and record["n_units"] == 12 and record["dim"] == 39
    record["config"]["n_units"] = 13
    (out / "config.json").write_text(json.dumps(record))
    with pytest.raises(ValueError, match="units: centroids .* do not fit 13 units"):
        SemanticModel.load(out)
    with pytest.raises(FileNotFoundError, match="codeclm semantic fit"):
        SemanticModel.load(tmp_path / "nowhere")


def test_units_stable_and_discriminative(fitted):
    period = sine(0.2, 300)  # 0.2 s = 10 frames, repeated exactly
    wav = torch.from_numpy(np.tile(period, (1, 6)))
    u = fitted.units(wav, SR)
    assert u.dtype == torch.int64 and u.shape == (60,) and fitted.frames(wav.shape[-1], SR) == 60
    assert torch.equal(u, fitted.units(wav, SR))
    assert (u[10:20] == u[20:30]).all() and (u[20:30] == u[40:50]).all()
    stereo = torch.cat([wav, wav])  # [2, T]: channels are averaged
    batch = torch.stack([stereo, stereo])  # [2, 2, T]
    assert torch.equal(fitted.units(batch, SR), torch.stack([u, u]))
    # 8 kHz input is resampled; the frame count follows the model's rate
    assert fitted.units(torch.from_numpy(sine(1.0, 300, 8000)), 8000).shape == (50,)

    tone, hiss = fitted.units(torch.from_numpy(sine(1.0, 350)), SR), fitted.units(torch.from_numpy(noise(1.0, 77)), SR)
    shared = torch.isin(hiss, tone).float().mean()
    assert shared < 0.2, f"{shared:.2f} of the noise frames share a unit with the sine"


def test_too_many_units_is_a_clear_error(sine_noise_shards):
    cfg = SemanticConfig(n_units=400, max_frames=1000)
    with pytest.raises(ValueError, match="cannot make 400 units: lower n_units"):
        fit_semantic(sine_noise_shards, cfg, progress=False)


def test_missing_or_wrong_hubert_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match="no HuBERT checkpoint .*nothing is downloaded"):
        HubertFeatures(tmp_path / "absent.pt", layer=6)
    with pytest.raises(ValueError, match="layer must be 1..12"):
        HubertFeatures(tmp_path / "absent.pt", layer=13)
    bad = tmp_path / "other.pt"
    torch.save({"encoder.weight": torch.zeros(2)}, bad)
    with pytest.raises(ValueError, match="other.pt is not a hubert_base state dict"):
        load_hubert(bad)
    pickled = tmp_path / "pickled.pt"
    torch.save({"model": {"x": torch.zeros(1)}, "optimizer": object()}, pickled)
    with pytest.raises(ValueError, match="not a readable weights-only state dict"):
        load_hubert(pickled)


@pytest.fixture(scope="module")
def hubert_file(tmp_path_factory):
    import torchaudio
    from safetensors.torch import save_file

    torch.manual_seed(0)
    state = torchaudio.models.hubert_base().state_dict()
    path = tmp_path_factory.mktemp("hubert") / "hubert_base.safetensors"
    save_file({k: v.half().contiguous() for k, v in state.items()}, str(path))  # half the bytes; loads as float32
    return path


def test_hubert_features_from_a_local_random_init_checkpoint(hubert_file, tmp_path):
    shards = write_clips(tmp_path / "shards", {f"c{i}": noise(0.5, i) for i in range(3)})
    cfg = SemanticConfig(features="hubert", hubert_path=str(hubert_file), hubert_layer=1, n_units=4, max_frames=60)
    model = fit_semantic(shards, cfg, tmp_path / "units", progress=False)
    feats = model.extractor
    assert isinstance(feats, HubertFeatures) and feats.frame_rate == 50.0 and feats.dim == 768
    with torch.inference_mode():
        y = feats(torch.randn(2, SR // 2))  # 0.5 s
    assert y.shape == (2, 25, 768) and torch.isfinite(y).all()
    assert feats(torch.randn(1, SR // 2 + 1)).shape == (1, 26, 768)
    assert model.centroids.shape == (4, 768) and model.fit_summary.frames_seen == 75

    wav = torch.from_numpy(noise(0.5, 5))
    assert torch.equal(SemanticModel.load(tmp_path / "units").units(wav, SR), model.units(wav, SR))
    with pytest.raises(FileNotFoundError, match="pass its new location"):
        SemanticModel.load(tmp_path / "units", hubert_path=tmp_path / "moved.safetensors")
    other = tmp_path / "other.safetensors"
    data = bytearray(hubert_file.read_bytes())
    data[-1] ^= 1  # another checkpoint: one weight differs
    other.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="not the HuBERT checkpoint"):
        SemanticModel.load(tmp_path / "units", hubert_path=other)


def test_cli_fit(shard_factory, tmp_path, capsys):
    shards = shard_factory([3, 2])  # 8 kHz tones, resampled to 16 kHz
    out = tmp_path / "units"
    assert main(["semantic", "fit", "--shards", str(shards), "--out", str(out), "--units", "6",
                 "--max-frames", "120", "--iters", "5", "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "6 units over mfcc features at 50 Hz" in printed and "5 clips" in printed
    assert SemanticModel.load(out).n_units == 6
    assert main(["semantic", "fit", "--shards", str(shards), "--out", str(tmp_path / "x"), "--units", "900",
                 "--max-frames", "1000", "--device", "cpu"]) == 2
    assert "lower n_units (--units)" in capsys.readouterr().err
