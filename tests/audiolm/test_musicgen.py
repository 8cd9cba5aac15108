"""MusicGen: delay-pattern loss, condition dropout, cached + guided generation, CLI round trip."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from audiolm.conditioning import ConditionDropout, TextCondition, drop_conditions, drop_mask
from audiolm.models.musicgen import MusicGen, MusicGenConfig
from audiolm.models.musicgen_generate import generate_music, step_columns
from audiolm.sampling import SamplingConfig
from data.batch import TokenBatch, lengths_to_mask

CARD, K, TEXT_VOCAB = 16, 4, 24


def tiny(**kw) -> MusicGen:
    torch.manual_seed(0)
    cfg = MusicGenConfig(cardinality=CARD, num_codebooks=K, dim=32, layers=2, heads=2, text_vocab=TEXT_VOCAB,
                         text_dim=16, text_layers=1, text_heads=2, max_frames=24, max_text_len=16,
                         cond_dropout=0.0, dropout=0.0)
    return MusicGen(dataclasses.replace(cfg, **kw))


def fixed_batch(b: int = 4, t: int = 10, seed: int = 0) -> TokenBatch:
    g = torch.Generator().manual_seed(seed)
    codes = torch.randint(0, CARD, (b, K, t), generator=g)
    lengths = torch.tensor([t, t - 3, t, t - 5][:b])
    text = torch.randint(4, TEXT_VOCAB, (b, 5), generator=g)
    text_lengths = torch.tensor([5, 3, 4, 5][:b])
    text = text * lengths_to_mask(text_lengths, 5)
    return TokenBatch(codes=codes, lengths=lengths, mask=lengths_to_mask(lengths, t), frame_rate=50.0,
                      text_tokens=text, text_lengths=text_lengths)


def test_overfits_a_fixed_token_set():
    model = tiny(dim=64, heads=4)
    batch = fixed_batch()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = None
    for _ in range(150):
        out = model.loss(batch)
        first = first if first is not None else out.loss.item()
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    out = model.loss(batch)
    assert first > 2.0 and out.loss.item() < 0.05, (first, out.loss.item())
    assert out.codebook_loss.shape == (K,) and out.tokens == int(batch.lengths.sum()) * K
    assert torch.all(out.codebook_accuracy == 1.0)


def test_loss_ignores_padded_frames():
    model = tiny()
    batch = fixed_batch()
    other = dataclasses.replace(batch, codes=batch.codes.clone())
    other.codes[~batch.mask[:, None, :].expand_as(batch.codes)] = 7  # change only padded frames
    torch.testing.assert_close(model.loss(batch).loss, model.loss(other).loss)
    with pytest.raises(ValueError, match="codebooks"):
        model.loss(dataclasses.replace(batch, codes=batch.codes[:, :2]))


def test_loss_without_text_is_unconditional():
    model = tiny()
    batch = fixed_batch()
    no_text = dataclasses.replace(batch, text_tokens=None, text_lengths=None)
    empty = dataclasses.replace(batch, text_lengths=torch.zeros(4, dtype=torch.long))
    torch.testing.assert_close(model.loss(no_text).loss, model.loss(empty).loss)


def test_condition_dropout_rate_and_determinism():
    n = 20000
    drops = drop_mask(n, 0.3, torch.Generator().manual_seed(1))
    assert abs(drops.float().mean().item() - 0.3) < 0.02
    assert torch.equal(drops, drop_mask(n, 0.3, torch.Generator().manual_seed(1)))
    assert not torch.equal(drops, drop_mask(n, 0.3, torch.Generator().manual_seed(2)))
    assert not drop_mask(8, 0.0).any() and drop_mask(8, 1.0).all()

    cond = TextCondition(hidden=torch.randn(64, 3, 8), mask=torch.ones(64, 3, dtype=torch.bool))
    dropped = drop_conditions(cond, 0.5, torch.Generator().manual_seed(0))
    rows = dropped.mask.any(dim=1)
    assert 0 < int((~rows).sum()) < 64 and dropped.mask[rows].all()  # whole rows only
    module = ConditionDropout(0.5)
    assert module.eval()(cond) is cond  # inactive in eval mode
    train = module.train()(cond, torch.Generator().manual_seed(0))
    assert torch.equal(train.mask, dropped.mask)
    with pytest.raises(ValueError):
        ConditionDropout(1.5)


def test_condition_dropout_one_equals_no_text():
    batch = fixed_batch()
    model = tiny(cond_dropout=1.0).train()
    uncond = model.loss(dataclasses.replace(batch, text_tokens=None, text_lengths=None)).loss
    torch.testing.assert_close(model.loss(batch).loss, uncond)


def test_causal_in_pattern_time():
    model = tiny().eval()
    batch = fixed_batch(b=1, t=8)
    seq = model.pattern.build(batch.codes, fill=model.special).tokens  # [1, K, S]
    cond = model.encode_text(batch.text_tokens, batch.text_lengths)
    base = model(model.shifted_inputs(seq), cond)  # [1, K, S, V]
    for k, t in [(0, 3), (2, 1), (3, 4)]:
        changed = batch.codes.clone()
        changed[0, k, t] = (changed[0, k, t] + 1) % CARD
        col = t + k  # the code's pattern column; logits up to it must not see it
        seq2 = model.pattern.build(changed, fill=model.special).tokens
        out = model(model.shifted_inputs(seq2), cond)
        torch.testing.assert_close(out[:, :, :col + 1], base[:, :, :col + 1])
        assert not torch.allclose(out[:, :, col + 1:], base[:, :, col + 1:])


def naive_greedy(model: MusicGen, text: torch.Tensor, frames: int) -> torch.Tensor:
    """Full recompute each step, no cache."""
    cond = model.encode_text(text[None])
    steps = model.pattern.length(frames)
    seq = torch.full((1, K, steps), model.special, dtype=torch.long)
    for s in range(steps):
        logits = model(model.shifted_inputs(seq[:, :, :s + 1]), cond)[:, :, s]  # [1, K, V]
        seq[:, :, s] = torch.where(step_columns(model, s, frames, seq.device)[None], logits.argmax(-1),
                                   model.special)
    return model.pattern.revert(seq)


@torch.no_grad()
def test_cached_generation_equals_full_recompute():
    model = tiny().eval()
    text = torch.tensor([5, 9, 11, 4])
    codes = generate_music(model, text, 12, SamplingConfig(temperature=0))
    assert torch.equal(codes, naive_greedy(model, text, 12))


def test_cfg_scale_one_equals_conditional_sampling():
    model = tiny()
    text = torch.tensor([[5, 9, 11, 4], [7, 3, 0, 0]])
    cfg = SamplingConfig(temperature=1.0, top_k=8, cfg_scale=1.0, seed=3)
    plain = generate_music(model, text, 10, cfg)
    guided = generate_music(model, text, 10, cfg, guidance=True)
    assert torch.equal(plain, guided)
    strong = generate_music(model, text, 10, dataclasses.replace(cfg, cfg_scale=3.0))
    assert strong.shape == plain.shape


def test_generated_codes_are_valid_and_repeatable():
    model = tiny()
    cfg = SamplingConfig(temperature=1.0, top_p=0.9, cfg_scale=3.0, seed=0)
    text = torch.tensor([5, 9, 11])
    codes = generate_music(model, text, 15, cfg)
    assert codes.shape == (1, K, 15) and codes.dtype == torch.long
    assert int(codes.min()) >= 0 and int(codes.max()) < CARD
    seq = model.pattern.build(codes, fill=model.special)
    assert torch.equal(model.pattern.revert(seq.tokens), codes)
    assert torch.equal(codes, generate_music(model, text, 15, cfg))
    assert not torch.equal(codes, generate_music(model, text, 15, dataclasses.replace(cfg, seed=1)))
    with pytest.raises(ValueError, match="keep must be"):
        generate_music(model, text, 100, cfg, keep=100)


@torch.no_grad()
def test_long_generation_slides_its_window_and_the_cache_agrees():
    """Past max_frames (24 frames: 27 pattern columns) the window slides; the cached decode gives
    the tokens of running every step over the whole window, and the first window is the plain one."""
    model = tiny().eval()
    text = torch.tensor([5, 9, 11, 4])
    greedy = SamplingConfig(temperature=0)
    long = generate_music(model, text, 70, greedy)
    assert long.shape == (1, K, 70) and int(long.max()) < CARD
    assert torch.equal(long, generate_music(model, text, 70, greedy, use_cache=False))
    assert torch.equal(generate_music(model, text, 20, greedy), naive_greedy(model, text, 20))
    # until the first slide (column 27) the long run is the short one; after it, it goes on its own
    short = generate_music(model, text, 24, greedy)
    assert torch.equal(long[0, 0, :24], short[0, 0, :24])
    sampled = SamplingConfig(temperature=1.0, top_k=8, cfg_scale=2.0, seed=4)
    assert torch.equal(generate_music(model, text, 60, sampled, keep=5),
                       generate_music(model, text, 60, sampled, keep=5, use_cache=False))


def test_fit_and_generate_through_the_cli(speech_token_shards, tmp_path):
    import soundfile as sf

    from launch.cli import main

    fx = speech_token_shards
    cfg = "--model.model.init_args.cfg."
    main(["lm", "fit", "--config", "configs/lm/musicgen-tiny.yaml", "--data.shards", str(fx["tokens"]),
          "--data.text_model", str(fx["spm"]), f"{cfg}cardinality", "32", f"{cfg}text_vocab", "64",
          f"{cfg}dim", "32", f"{cfg}layers", "1", f"{cfg}heads", "2", f"{cfg}text_dim", "16",
          f"{cfg}text_layers", "1", f"{cfg}text_heads", "2", f"{cfg}max_frames", "100",
          "--data.loader.max_frames", "100", "--data.loader.batch_size", "4", "--data.num_workers", "0",
          "--trainer.max_steps", "3", "--trainer.default_root_dir", str(tmp_path),
          "--trainer.logger.init_args.save_dir", str(tmp_path), "--trainer.log_every_n_steps", "1"])
    ckpts = sorted(tmp_path.rglob("*.ckpt"))
    assert ckpts, "fit wrote no checkpoint"
    out = tmp_path / "m.wav"
    rc = main(["generate", "music", "--codec", str(fx["export"]), "--lm", str(ckpts[-1]), "--text", "hello there",
               "--seconds", "0.04", "--out", str(out), "--seed", "0", "--cfg-scale", "3", "--top-k", "8"]) \
        if _has_generate_group() else _run_generate(fx, ckpts[-1], out)
    assert rc == 0
    wav, sr = sf.read(out)
    assert sr == fx["codec"].sample_rate and wav.shape[0] > 0
    # --stream: the same codes, decoded chunk by chunk as the frames complete: the same wav
    streamed = tmp_path / "streamed.wav"
    assert main(["generate", "music", "--codec", str(fx["export"]), "--lm", str(ckpts[-1]), "--text", "hello there",
                 "--seconds", "0.04", "--out", str(streamed), "--seed", "0", "--cfg-scale", "3", "--top-k", "8",
                 "--stream", "--chunk-frames", "7"]) == 0
    a, _ = sf.read(out, dtype="int16")
    b, _ = sf.read(streamed, dtype="int16")
    assert a.shape == b.shape and abs(a.astype(int) - b.astype(int)).max() <= 1 and abs(a).max() > 0


def _has_generate_group() -> bool:
    from launch.cli import GROUPS

    return "generate" in GROUPS


def _run_generate(fx, ckpt, out) -> int:
    """The command on its own parser (until the console script has a generate group)."""
    import argparse

    from launch.commands import generate_music

    parser = argparse.ArgumentParser()
    generate_music.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["music", "--codec", str(fx["export"]), "--lm", str(ckpt), "--text", "hello there",
                              "--seconds", "0.04", "--out", str(out), "--seed", "0", "--cfg-scale", "3",
                              "--top-k", "8"])
    return int(args.func(args) or 0)


def test_generate_command_errors_are_clear(tmp_path):
    from launch.commands.generate_music import build_model, find_run_config

    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    ckpt.parent.mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="--lm-config"):
        find_run_config(ckpt)
    (tmp_path / "run" / "config.yaml").write_text("model: {}\n")
    assert find_run_config(ckpt) == tmp_path / "run" / "config.yaml"
    with pytest.raises(ValueError, match="not a MusicGen"):
        build_model({"model": {"model": {"class_path": "audiolm.models.valle.Valle"}}}, ckpt)
    with pytest.raises(ValueError, match="MusicGenConfig"):
        build_model({"model": {"model": {"class_path": "audiolm.models.musicgen.MusicGen",
                                         "init_args": {"cfg": {"cardinalty": 8}}}}}, ckpt)


@pytest.mark.parametrize("chunk", [1, 4, 100])
def test_music_stream_yields_generate_musics_codes_as_frames_complete(chunk):
    """Each chunk comes out once its frames' every codebook is sampled (K - 1 pattern columns after
    the frame's first), and the chunks are generate_music's codes, through a window slide too."""
    from audiolm.models.musicgen_generate import music_stream

    model = tiny().eval()
    text = torch.tensor([[5, 9, 11, 4], [7, 3, 0, 0]])
    for sampling, frames in ((SamplingConfig(temperature=0), 30), (SamplingConfig(temperature=1.0, top_k=8, cfg_scale=2.0, seed=4), 50)):
        whole = generate_music(model, text, frames, sampling)
        chunks = list(music_stream(model, text, frames, sampling, chunk_frames=chunk))
        assert [c.shape[-1] for c in chunks[:-1]] == [min(chunk, frames)] * (len(chunks) - 1)
        assert torch.equal(torch.cat(chunks, dim=-1), whole)
    # laziness: the first chunk of 4 frames needs the pattern's first 4 + K - 1 steps, no more
    calls = []
    forward = model.forward
    model.forward = lambda *a, **k: calls.append(1) or forward(*a, **k)
    try:
        next(music_stream(model, text, 30, SamplingConfig(temperature=0), chunk_frames=4))
    finally:
        del model.forward
    assert len(calls) == model.pattern.length(4)
