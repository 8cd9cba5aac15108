"""Codec exports (safetensors + config.json) and training checkpoints: round trips, identity, refusals."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from codec.codec import Codec, CodecConfig, build_codec
from codec.export import (
    CONFIG, EXPORT_FORMAT, WEIGHTS, export_codec, export_from_checkpoint, load_checkpoint, load_export,
)
from codec.load import load_tokenizer
from codec.model import SEANetConfig
from codec.quantize import RVQConfig


def tiny_codec(seed: int = 0, sample_rate: int = 16000) -> Codec:
    """A few-thousand-parameter codec whose codebooks are filled by one training-mode forward
    (k-means init on its own latents), then put in eval mode."""
    torch.manual_seed(seed)
    cfg = CodecConfig(sample_rate, SEANetConfig(n_filters=4, dimension=16, ratios=(4, 4), bottleneck="none"),
                      RVQConfig(dimension=16, n_q=4, bins=32, seed=seed))
    codec = build_codec(cfg).train()
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(4000) / sample_rate
    wav = torch.stack([0.4 * torch.sin(2 * math.pi * (150 + 120 * i) * t) + 0.05 * torch.randn(4000, generator=g)
                       for i in range(4)])[:, None]  # [4, 1, T]
    with torch.no_grad():
        codec(wav, n_q=cfg.quantizer.n_q)  # every level (no quantizer dropout), so every codebook is filled
    codec.refresh_codec_id()
    return codec.eval()


def clip_audio(seconds: float = 0.3, sample_rate: int = 16000, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(int(seconds * sample_rate)) / sample_rate
    return (0.3 * torch.sin(2 * math.pi * 330 * t) + 0.05 * torch.randn(t.shape, generator=g))[None, None]


@pytest.fixture(scope="module")
def codec() -> Codec:
    return tiny_codec()


@pytest.fixture
def exported(codec, tmp_path) -> Path:
    return export_codec(codec, tmp_path / "export")


def test_export_round_trip_is_bit_exact(codec, exported):
    assert sorted(p.name for p in exported.iterdir()) == [CONFIG, WEIGHTS]  # no temporary files left
    record = json.loads((exported / CONFIG).read_text())
    assert record["format"] == EXPORT_FORMAT and record["codec_id"] == codec.codec_id
    fields = ("sample_rate", "channels", "num_codebooks", "cardinality")
    assert [record[k] for k in fields] == [16000, 1, 4, 32]
    assert record["frame_rate"] == 1000.0 and CodecConfig.from_dict(record["config"]) == codec.cfg

    loaded = load_export(exported)
    assert not loaded.training and loaded.codec_id == codec.codec_id
    wav = clip_audio()
    codes = codec.encode(wav)
    assert codes.shape == (1, 4, 300)
    assert all(len(codes[0, k].unique()) > 4 for k in range(4)), [len(c.unique()) for c in codes[0]]  # every level in use
    assert torch.equal(loaded.encode(wav), codes)
    assert torch.equal(loaded.decode(codes), codec.decode(codes))


def test_export_replaces_an_earlier_export(codec, exported):
    other = tiny_codec(seed=1)
    export_codec(other, exported)
    assert load_export(exported).codec_id == other.codec_id != codec.codec_id


def test_shared_tensors_are_exported_as_copies(tmp_path):
    codec = tiny_codec()
    level = codec.quantizer.levels[0]
    level.embed_avg = level.embed  # two state-dict entries, one storage
    codec.refresh_codec_id()
    loaded = load_export(export_codec(codec, tmp_path / "tied"))
    assert loaded.codec_id == codec.codec_id
    assert torch.equal(loaded.encode(clip_audio()), codec.encode(clip_audio()))


def test_a_changed_weight_is_refused(exported):
    state = load_file(str(exported / WEIGHTS))
    name = next(k for k in state if k.startswith("decoder.") and state[k].is_floating_point())
    state[name] = state[name] + 1e-3
    meta = json.loads((exported / CONFIG).read_text())
    save_file(state, str(exported / WEIGHTS), metadata={"format": EXPORT_FORMAT, "codec_id": meta["codec_id"]})
    with pytest.raises(ValueError, match="was modified"):
        load_export(exported)


def test_weights_of_another_export_are_refused(exported, tmp_path):
    other = export_codec(tiny_codec(seed=1), tmp_path / "other")
    (exported / WEIGHTS).write_bytes((other / WEIGHTS).read_bytes())
    with pytest.raises(ValueError, match="different exports"):
        load_export(exported)


def test_missing_and_foreign_files_give_clear_errors(exported, tmp_path):
    with pytest.raises(FileNotFoundError, match="no codec export at .*codeclm codec export"):
        load_export(tmp_path / "nowhere")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match=f"holds no {CONFIG}"):
        load_export(empty)
    (empty / CONFIG).write_text(json.dumps({"format": "something/1"}))
    with pytest.raises(ValueError, match="not a codeclm codec export"):
        load_export(empty)
    (empty / CONFIG).write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_export(empty)

    weights = (exported / WEIGHTS).read_bytes()
    (exported / WEIGHTS).unlink()
    with pytest.raises(FileNotFoundError, match=f"holds no {WEIGHTS}"):
        load_export(exported)
    (exported / WEIGHTS).write_bytes(weights[:100])
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        load_export(exported)

    # weights that do not fit the recorded config
    record = json.loads((exported / CONFIG).read_text())
    record["config"]["quantizer"]["bins"] = 64
    (exported / WEIGHTS).write_bytes(weights)
    (exported / CONFIG).write_text(json.dumps(record))
    with pytest.raises(ValueError, match=r"quantizer\.levels\.0\..* has shape .* but the config needs"):
        load_export(exported)


def fake_checkpoint(codec: Codec, path: Path) -> Path:
    """The layout of a Lightning checkpoint of the codec's training module."""
    state = {f"codec.{k}": v for k, v in codec.state_dict().items()}
    state["discriminator.discriminators.0.convs.0.weight"] = torch.randn(4, 1, 3, 3)
    state["batches_trained"] = torch.tensor(12)
    torch.save({"epoch": 1, "global_step": 24, "pytorch-lightning_version": "2.5.0", "state_dict": state,
                "optimizer_states": [{"state": {}, "param_groups": [{"lr": 1e-3, "params": [0]}]}],
                "codec_config": codec.cfg.to_dict()}, path)
    return path


def test_training_checkpoints_load_and_export(codec, tmp_path):
    ckpt = fake_checkpoint(codec, tmp_path / "last.ckpt")
    from_ckpt = load_checkpoint(ckpt)
    assert not from_ckpt.training and from_ckpt.codec_id == codec.codec_id

    out = export_from_checkpoint(ckpt, tmp_path / "export")
    wav = clip_audio()
    assert torch.equal(load_export(out).encode(wav), codec.encode(wav))
    for spec in (str(ckpt), str(out), str(out / WEIGHTS)):
        tok = load_tokenizer(spec)
        assert tok.codec_id == codec.codec_id and torch.equal(tok.encode(wav), codec.encode(wav))
    limited = load_tokenizer(str(out), bandwidth=10.0)  # 5 bits x 1000 frames/s per codebook: K = 2
    assert limited.num_codebooks == 2 and torch.equal(limited.encode(wav), codec.encode(wav, 2))
    assert limited.codec_id == codec.codec_id and limited.decode(codec.encode(wav, 2)).shape == (1, 1, 4800)
    with pytest.raises(ValueError, match="outside this codec's range"):
        load_tokenizer(str(out), bandwidth=100.0)


class _Payload:
    """Pickles to a call that writes the file ``marker``: what a hostile checkpoint would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').write('ran')",)


def test_a_malicious_checkpoint_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "payload-ran"
    ckpt = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "codec_config": {}, "hook": _Payload(marker)}, ckpt)
    for load in (load_checkpoint, load_tokenizer, lambda p: export_from_checkpoint(p, tmp_path / "out")):
        with pytest.raises(ValueError, match="refused: it holds the Python object .*exec"):
            load(str(ckpt))
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_files_that_are_not_codec_checkpoints(codec, tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_checkpoint(tmp_path / "missing.ckpt")
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"not a checkpoint at all")
    with pytest.raises(ValueError, match="junk.ckpt is not a"):
        load_checkpoint(junk)
    other = tmp_path / "lm.ckpt"
    torch.save({"state_dict": {"model.w": torch.zeros(2)}}, other)
    with pytest.raises(ValueError, match="no 'codec_config'"):
        load_checkpoint(other)
    torch.save({"state_dict": {"model.w": torch.zeros(2)}, "codec_config": codec.cfg.to_dict()}, other)
    with pytest.raises(ValueError, match="no weights under 'codec.'"):
        load_checkpoint(other)


def test_unknown_specs_name_the_three_forms(tmp_path):
    with pytest.raises(ValueError, match=r"unknown codec spec 'nope'.*export directory.*\.ckpt.*encodec24k"):
        load_tokenizer("nope")
    text = tmp_path / "notes.txt"
    text.write_text("hi")
    with pytest.raises(ValueError, match="not a training checkpoint"):
        load_tokenizer(str(text))
    with pytest.raises(FileNotFoundError, match="EnCodec weights file not found"):
        load_tokenizer(f"encodec24k:{tmp_path / 'missing.th'}")
