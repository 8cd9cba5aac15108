"""VALL-E stages: AR causality, overfitting tiny sets, cached generation equal to a naive loop,
seeded determinism, EOS stopping, and training / cloning through the ``codeclm`` CLI."""

from __future__ import annotations

import math

import pytest
import soundfile as sf
import torch

from audiolm.models.valle import ValleAR, ValleConfig
from audiolm.models.valle_generate import clone, fill_codebooks, generate_codebook0, load_stage
from audiolm.models.valle_length import LengthBounds
from audiolm.models.valle_nar import ValleNAR
from audiolm.sampling import SamplingConfig
from data.batch import TokenBatch, lengths_to_mask

K, V, TEXT_V = 3, 16, 20


def config(**kw) -> ValleConfig:
    base = dict(text_vocab=TEXT_V, cardinality=V, num_codebooks=K, dim=32, layers=2, heads=2,
                max_text=24, max_frames=40)
    base.update(kw)
    return ValleConfig(**base)


def token_batch(seed: int = 0) -> TokenBatch:
    """Three right-padded utterances with text of different lengths."""
    g = torch.Generator().manual_seed(seed)
    lengths, text_lengths = torch.tensor([12, 9, 7]), torch.tensor([6, 4, 5])
    codes = torch.randint(0, V, (3, K, 12), generator=g)
    text = torch.randint(1, TEXT_V, (3, 6), generator=g)
    for i in range(3):
        codes[i, :, lengths[i]:] = 0
        text[i, text_lengths[i]:] = 0
    return TokenBatch(codes=codes, lengths=lengths, mask=lengths_to_mask(lengths, 12), frame_rate=50.0,
                      text_tokens=text, text_lengths=text_lengths)


def overfit(model: torch.nn.Module, batch: TokenBatch, steps: int) -> list[float]:
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.0)
    losses = []
    for _ in range(steps):
        out = model.loss(batch)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        losses.append(out.loss.item())
    return losses


@pytest.fixture(scope="module")
def trained() -> tuple[ValleAR, ValleNAR, TokenBatch]:
    torch.manual_seed(0)
    batch = token_batch()
    ar, nar = ValleAR(config()), ValleNAR(config())
    ar_losses, nar_losses = overfit(ar, batch, 80), overfit(nar, batch, 150)
    ar.eval(), nar.eval()
    ar.losses, nar.losses = ar_losses, nar_losses  # for the tests below
    return ar, nar, batch


def test_ar_is_causal_over_audio_and_sees_all_text():
    torch.manual_seed(0)
    ar = ValleAR(config()).eval()
    text, tl = torch.randint(1, TEXT_V, (1, 5)), torch.tensor([5])
    audio, al = torch.randint(0, V, (1, 10)), torch.tensor([10])
    base = ar(text, tl, audio, al)
    changed = audio.clone()
    changed[0, 6] = (changed[0, 6] + 1) % V
    out = ar(text, tl, changed, al)
    assert torch.allclose(out[:, :6], base[:, :6], atol=1e-6)
    assert not torch.allclose(out[:, 6:], base[:, 6:])
    text2 = text.clone()
    text2[0, -1] = (text2[0, -1] % (TEXT_V - 1)) + 1
    assert not torch.allclose(ar(text2, tl, audio, al)[:, 0], base[:, 0])


def test_audio_position_scale_moves_only_the_audio_positions():
    """Audio at position t * scale: a model with scale 1 and one with 0.5 give different logits for
    the same weights, and the text block alone is untouched."""
    torch.manual_seed(0)
    one, half = ValleAR(config()).eval(), ValleAR(config(audio_position_scale=0.5)).eval()
    half.load_state_dict({k: v for k, v in one.state_dict().items() if not k.endswith("_extra_state")}, strict=False)
    text, audio = torch.randint(1, TEXT_V, (1, 6)), torch.randint(0, V, (1, 9))
    lengths = (torch.tensor([6]), torch.tensor([9]))
    a, b = one(text, lengths[0], audio, lengths[1]), half(text, lengths[0], audio, lengths[1])
    assert torch.allclose(a[:, 0], b[:, 0], atol=1e-6)  # position 0 is position 0 at any scale
    assert (a[:, 1:] - b[:, 1:]).abs().max() > 1e-4  # later audio sits elsewhere
    _, pos = half._inputs(text, audio)
    assert torch.equal(pos[6:], torch.arange(9) * 0.5) and torch.equal(pos[:6], torch.arange(6).float())
    with pytest.raises(ValueError, match="audio_position_scale"):
        config(audio_position_scale=0)


def test_ar_padding_does_not_change_real_positions():
    torch.manual_seed(0)
    ar = ValleAR(config()).eval()
    text, audio = torch.randint(1, TEXT_V, (1, 4)), torch.randint(0, V, (1, 6))
    alone = ar(text, torch.tensor([4]), audio, torch.tensor([6]))
    padded_text = torch.cat([text, torch.zeros(1, 3, dtype=torch.long)], dim=1)
    padded_audio = torch.cat([audio, torch.zeros(1, 2, dtype=torch.long)], dim=1)
    padded = ar(padded_text, torch.tensor([4]), padded_audio, torch.tensor([6]))
    assert torch.allclose(padded[:, :6], alone, atol=1e-5)


def test_ar_overfits_with_eos(trained):
    ar, _, batch = trained
    assert ar.losses[-1] < 0.1, ar.losses[::10]
    out = ar.loss(batch)
    assert out.codebook_loss.shape == (1,) and out.tokens == int((batch.lengths + 1).sum())


def test_nar_overfits_every_stage(trained):
    _, nar, batch = trained
    assert nar.losses[-1] < 0.3, nar.losses[::10]
    out = nar.loss(batch)
    assert out.codebook_loss.shape == (K,) and math.isnan(out.codebook_loss[0])
    assert sum(not math.isnan(x) for x in out.codebook_loss.tolist()) == 1
    # with a fixed prompt, every stage predicts the training codes
    one = torch.tensor([batch.lengths[0].item()])
    for k in range(1, K):
        logits = nar(batch.text_tokens[:1], batch.text_lengths[:1], batch.codes[:1], one, torch.tensor([4]), k)
        acc = (logits[0, 4:12].argmax(-1) == batch.codes[0, k, 4:12]).float().mean()
        assert acc > 0.8, (k, acc)


@pytest.mark.parametrize("scale", [1.0, 0.375])
def test_cached_generation_equals_naive_loop(scale: float):
    torch.manual_seed(1)
    ar = ValleAR(config(audio_position_scale=scale)).eval()
    text, prompt0 = torch.randint(1, TEXT_V, (7,)), torch.randint(0, V, (5,))
    greedy = SamplingConfig(temperature=0)
    cached = generate_codebook0(ar, text, prompt0, greedy, 20, use_cache=True).tokens
    naive = generate_codebook0(ar, text, prompt0, greedy, 20, use_cache=False).tokens
    assert cached.numel() > 3 and torch.equal(cached, naive)
    sampled = SamplingConfig(temperature=1.0, top_k=8)
    for low in (0, 12):  # with EOS suppressed below a minimum too
        a = generate_codebook0(ar, text, prompt0, sampled, 20, True, torch.Generator().manual_seed(3), min_frames=low)
        b = generate_codebook0(ar, text, prompt0, sampled, 20, False, torch.Generator().manual_seed(3), min_frames=low)
        assert torch.equal(a.tokens, b.tokens) and a.stop == b.stop and a.tokens.numel() >= low


def test_generation_stops_at_eos_and_is_seeded(trained):
    ar, nar, batch = trained
    text, n = batch.text_tokens[0, :6], int(batch.lengths[0])
    free = LengthBounds(min_frames=0, max_frames=30, expected_frames=8.0, frames_per_token=8 / 6, measured=True)
    out = clone(ar, nar, text, batch.codes[0, :, :4], None, SamplingConfig(temperature=0), free)
    codes = out.codes
    assert codes.shape == (K, n - 4) and out.stop == "eos"  # the training utterance, then EOS
    assert torch.equal(codes[0], batch.codes[0, 0, 4:n])
    filled = fill_codebooks(nar, text, batch.codes[0, :, :4], batch.codes[0, 0, 4:n])
    assert (filled == batch.codes[0, :, 4:n]).float().mean() > 0.8
    sampled = SamplingConfig(temperature=1.5, seed=7)
    runs = [clone(ar, nar, text, batch.codes[0, :, :2], None, sampled, free, nar_sampling=sampled).codes
            for _ in range(2)]
    assert torch.equal(runs[0], runs[1])


@pytest.fixture(scope="module")
def fitted(speech_token_shards, tmp_path_factory):
    """AR and NAR trained for a few steps through ``codeclm lm fit`` on the real token fixture."""
    from launch.cli import main

    root = tmp_path_factory.mktemp("valle_fit")
    ckpts = {}
    for stage in ("ar", "nar"):
        out = root / stage
        assert main(["lm", "fit", "--config", f"configs/lm/valle-{stage}-tiny.yaml",
                     "--data.shards", str(speech_token_shards["tokens"]),
                     "--data.text_model", str(speech_token_shards["phonemes"]),
                     "--data.loader.batch_size", "4", "--data.num_workers", "0",
                     "--data.loader.longer", "crop",  # the fixture's codec runs at 1000 Hz: every utterance is long
                     "--model.model.init_args.cfg.cardinality", "32",
                     "--model.model.init_args.cfg.dim", "32", "--model.model.init_args.cfg.layers", "1",
                     "--trainer.max_steps", "3", "--trainer.default_root_dir", str(out),
                     "--trainer.logger", "false", "--trainer.callbacks+=ModelCheckpoint",
                     "--trainer.callbacks.dirpath", str(out / "ckpt"),
                     "--trainer.callbacks.save_last", "true"]) == 0
        ckpts[stage] = sorted((out / "ckpt").glob("*.ckpt"))[-1]
    return ckpts


def test_lm_fit_trains_both_stages_from_the_cli(fitted):
    for path in fitted.values():
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        assert ckpt["global_step"] == 3 and "model._extra_state" in ckpt["state_dict"]
    ar, nar = load_stage(fitted["ar"]), load_stage(fitted["nar"])
    assert isinstance(ar, ValleAR) and isinstance(nar, ValleNAR)
    assert ar.cfg.cardinality == nar.cfg.cardinality == 32 and nar.cfg.num_codebooks == 4


def test_clone_through_the_cli(fitted, speech_token_shards, tmp_path, capsys):
    import argparse

    from launch.commands import generate_clone

    prompt = tmp_path / "prompt.wav"
    sr = speech_token_shards["codec"].sample_rate
    sf.write(prompt, 0.1 * torch.randn(sr).numpy(), sr)
    out = tmp_path / "clone.wav"
    parser = argparse.ArgumentParser()
    generate_clone.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["clone", "--codec", str(speech_token_shards["export"]), "--ar", str(fitted["ar"]),
                              "--nar", str(fitted["nar"]), "--prompt", str(prompt), "--text", "hello there",
                              "--prompt-text", "a test", "--out", str(out),
                              "--text-model", str(speech_token_shards["phonemes"]), "--seed", "1",
                              "--max-seconds", "0.5"])
    assert args.func(args) == 0
    assert "clone.wav" in capsys.readouterr().out
    wav, sr_out = sf.read(out)
    assert sr_out == sr and 0 < len(wav) <= int(0.5 * sr) + 1


@pytest.mark.parametrize("chunk", [1, 3, 100])
def test_clone_stream_yields_the_clones_tokens_chunk_by_chunk(trained, chunk):
    from audiolm.models.valle_generate import clone_stream

    ar, nar, batch = trained
    text, n = batch.text_tokens[0, :6], int(batch.lengths[0])
    free = LengthBounds(min_frames=0, max_frames=30, expected_frames=8.0, frames_per_token=8 / 6, measured=True)
    prompt = batch.codes[0, :, :4]
    for sampling in (SamplingConfig(temperature=0), SamplingConfig(temperature=1.5, seed=7)):
        whole = clone(ar, nar, text, prompt, None, sampling, free)
        steps = clone_stream(ar, nar, text, prompt, None, sampling, free, chunk_frames=chunk)
        chunks = []
        while True:
            try:
                chunks.append(next(steps))
            except StopIteration as done:
                streamed = done.value
                break
        assert [c.shape[1] for c in chunks[:-1]] == [chunk] * (len(chunks) - 1) and 0 < chunks[-1].shape[1] <= chunk
        codes = torch.cat(chunks, dim=1)
        assert torch.equal(codes, streamed.codes) and streamed.stop == whole.stop
        assert torch.equal(codes[0], whole.codes[0])  # the AR's tokens are the clone's, draw for draw
        if chunk >= whole.codes.shape[1]:  # one chunk: the NAR saw what clone's saw
            assert torch.equal(codes, whole.codes)
    greedy = clone_stream(ar, nar, text, prompt, None, SamplingConfig(temperature=0), free, chunk_frames=chunk)
    assert (torch.cat(list(greedy), 1) == batch.codes[0, :, 4:n]).float().mean() > 0.8  # the utterance it learned


def test_clone_stream_yields_before_the_ar_ends(trained, monkeypatch):
    """The first chunk comes out after chunk_frames AR steps, not after the whole generation."""
    from audiolm.models.valle_generate import clone_stream

    ar, nar, batch = trained
    calls = []
    real = ar.step
    monkeypatch.setattr(ar, "step", lambda *a, **k: calls.append(1) or real(*a, **k))
    free = LengthBounds(min_frames=0, max_frames=30, expected_frames=8.0, frames_per_token=8 / 6, measured=True)
    steps = clone_stream(ar, nar, batch.text_tokens[0, :6], batch.codes[0, :, :4], None, SamplingConfig(temperature=0),
                         free, chunk_frames=2)
    first = next(steps)
    assert first.shape == (K, 2) and len(calls) == 1  # two tokens: the prefill's and one step's
    rest = list(steps)
    assert len(calls) == 2 + sum(c.shape[1] for c in rest)  # a step after every token; the last one chose EOS
