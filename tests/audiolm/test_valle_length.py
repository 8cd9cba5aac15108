"""VALL-E length bounds: the frames per text token measured during ``lm fit`` (equal to what the
token shards give, kept through checkpoints and resumption, summed over DDP ranks), bounds that
scale with the target text, EOS suppressed until the minimum, a stop at the maximum or the
context, what ``generate clone`` says about them, and a briefly trained model that ends by EOS
within its bounds on texts it never saw."""

from __future__ import annotations

import json
import math
import tarfile

import numpy as np
import pytest
import soundfile as sf
import torch

from audiolm.models.valle import ValleAR, ValleConfig
from audiolm.models.valle_generate import clone, generate_codebook0, load_stage
from audiolm.models.valle_length import (DEFAULT_FRAMES_PER_TOKEN, LengthBounds, LengthConfig, LengthStats,
                                         length_bounds)
from audiolm.models.valle_nar import ValleNAR
from audiolm.sampling import SamplingConfig
from data.batch import TokenBatch, lengths_to_mask

GREEDY = SamplingConfig(temperature=0)


def small_config(**kw) -> ValleConfig:
    base = dict(text_vocab=20, cardinality=16, num_codebooks=2, dim=16, layers=1, heads=2, max_text=24, max_frames=60)
    base.update(kw)
    return ValleConfig(**base)


def rigged_ar(cfg: ValleConfig, eos_logit: float, favored: int = 3) -> ValleAR:
    """An AR whose every prediction is the same: the blocks output nothing and every audio input
    embeds to one direction, so the logits are ``head[:, 0]`` (EOS ``eos_logit``, ``favored`` 1)."""
    ar = ValleAR(cfg)
    with torch.no_grad():
        for p in ar.transformer.parameters():
            p.zero_()
        ar.transformer.norm.weight.fill_(1.0)
        ar.audio_emb.weight.zero_()
        ar.audio_emb.weight[:, 0] = 1.0
        ar.head.weight.zero_()
        ar.head.weight[ar.eos, 0] = eos_logit
        ar.head.weight[favored, 0] = 1.0
    return ar.eval()


def stats_with_mean(mean: float, frame_rate: float = 50.0) -> LengthStats:
    stats = LengthStats()
    lengths, text_lengths = torch.tensor([10, 30]), torch.tensor([10 / mean, 30 / mean]).round().long()
    stats.observe(TokenBatch(codes=torch.zeros(2, 1, 30, dtype=torch.long), lengths=lengths,
                             mask=lengths_to_mask(lengths, 30), frame_rate=frame_rate,
                             text_tokens=torch.ones(2, int(text_lengths.max()), dtype=torch.long),
                             text_lengths=text_lengths))
    assert stats.mean == pytest.approx(mean)
    return stats


def test_bounds_scale_with_the_text_and_fall_back_to_the_default():
    stats = stats_with_mean(2.5)
    cfg = LengthConfig(min_ratio=0.5, max_ratio=2.0)
    bounds = [length_bounds(stats, n, cfg) for n in (8, 16, 40)]
    assert [(b.min_frames, b.max_frames) for b in bounds] == [(10, 40), (20, 80), (50, 200)]
    assert all(b.measured and b.expected_frames == 2.5 * n for b, n in zip(bounds, (8, 16, 40)))
    wide = length_bounds(stats, 16, LengthConfig(min_ratio=0.25, max_ratio=3.0))
    assert (wide.min_frames, wide.max_frames) == (10, 120)
    capped = length_bounds(stats, 40, cfg, cap=30)  # --max-seconds lowers both
    assert (capped.min_frames, capped.max_frames) == (30, 30)
    # no statistics (a checkpoint trained before they were stored): the espeak default, at the codec's rate
    old = length_bounds(LengthStats(), 10, cfg, frame_rate=75.0)
    assert not old.measured and old.frames_per_token == pytest.approx(DEFAULT_FRAMES_PER_TOKEN * 1.5)
    assert old.min_frames == math.floor(0.5 * 10 * DEFAULT_FRAMES_PER_TOKEN * 1.5)
    assert length_bounds(None, 10, cfg).frames_per_token == DEFAULT_FRAMES_PER_TOKEN
    with pytest.raises(ValueError, match="length ratios"):
        LengthConfig(min_ratio=2.0, max_ratio=1.0)


def test_a_model_that_ends_at_once_still_makes_the_minimum():
    ar = rigged_ar(small_config(), eos_logit=2.0)
    text, prompt0 = torch.randint(1, 20, (6,)), torch.randint(0, 16, (4,))
    free = generate_codebook0(ar, text, prompt0, GREEDY, 20)
    assert free.tokens.numel() == 0 and free.stop == "eos"  # what it does unbounded
    for use_cache in (True, False):
        out = generate_codebook0(ar, text, prompt0, GREEDY, 20, use_cache=use_cache, min_frames=7)
        assert out.tokens.tolist() == [3] * 7 and out.stop == "eos"
        assert (out.min_frames, out.max_frames, out.eos_suppressed) == (7, 20, 7)
    # clone: the bounds come from the model's statistics and the target text only (not the prompt's)
    ar.length_stats = stats_with_mean(2.0)
    nar = ValleNAR(small_config())
    target, prompt_text = torch.randint(1, 20, (6,)), torch.randint(1, 20, (5,))
    res = clone(ar, nar, target, torch.randint(0, 16, (2, 4)), prompt_text, GREEDY)
    assert res.bounds == LengthBounds(6, 24, 12.0, 2.0, True)
    assert res.codes.shape == (2, 6) and res.stop == "eos" and res.eos_suppressed == 6


def test_a_model_that_never_ends_stops_at_the_maximum_or_the_context():
    ar = rigged_ar(small_config(max_frames=60), eos_logit=-1.0)
    text = torch.randint(1, 20, (6,))
    out = generate_codebook0(ar, text, torch.randint(0, 16, (4,)), GREEDY, 20, min_frames=5)
    assert out.tokens.numel() == 20 and out.stop == "max_frames" and out.eos_suppressed == 0
    near_end = generate_codebook0(ar, text, torch.randint(0, 16, (50,)), GREEDY, 20, min_frames=15)
    assert near_end.tokens.numel() == 10 and near_end.stop == "context"
    assert (near_end.min_frames, near_end.max_frames) == (10, 10)


def save_ckpt(model: torch.nn.Module, path):
    """The layout ``codeclm lm fit`` writes (the LMModule's state dict, ``model.`` prefix)."""
    torch.save({"state_dict": {f"model.{k}": v for k, v in model.state_dict().items()}, "global_step": 0}, path)
    return path


def test_generate_clone_says_which_bound_it_hit(speech_token_shards, tmp_path, capsys):
    from launch.cli import main
    from launch.commands.speak import text_encoder

    codec = speech_token_shards["codec"]
    sr, hop = codec.sample_rate, round(codec.sample_rate / codec.frame_rate)
    cfg = small_config(text_vocab=256, cardinality=32, num_codebooks=4, max_text=128, max_frames=300)
    prompt = tmp_path / "prompt.wav"
    sf.write(prompt, 0.1 * np.random.default_rng(0).standard_normal(sr // 20), sr)  # 50 frames
    nar = save_ckpt(ValleNAR(cfg), tmp_path / "nar.ckpt")
    text = "hello there"
    n_text = len(text_encoder(str(speech_token_shards["phonemes"]), "en-us")(text))  # what the command reads

    def run(ar: ValleAR, *extra: str) -> tuple[str, int]:
        path = save_ckpt(ar, tmp_path / "ar.ckpt")
        out = tmp_path / "clone.wav"
        assert main(["generate", "clone", "--codec", str(speech_token_shards["export"]), "--ar", str(path),
                     "--nar", str(nar), "--prompt", str(prompt), "--text", text, "--out", str(out),
                     "--text-model", str(speech_token_shards["phonemes"]), "--device", "cpu", "--temperature", "0",
                     *extra]) == 0
        return capsys.readouterr().out, sf.info(str(out)).frames

    ender = rigged_ar(cfg, eos_logit=2.0)
    ender.length_stats = stats_with_mean(2.0, frame_rate=codec.frame_rate)
    printed, samples = run(ender)
    low = math.floor(0.5 * 2.0 * n_text)
    assert samples == low * hop, printed  # not empty: exactly the minimum
    assert f"EOS suppressed until the minimum length {low / codec.frame_rate:.2f} s" in printed
    printed, samples = run(ender, "--min-length-ratio", "1.0")
    assert samples == 2 * n_text * hop

    talker = rigged_ar(cfg, eos_logit=-1.0)
    talker.length_stats = stats_with_mean(2.0, frame_rate=codec.frame_rate)
    printed, samples = run(talker, "--max-length-ratio", "1.5")
    high = math.ceil(1.5 * 2.0 * n_text)
    assert samples == high * hop
    assert f"stopped at the maximum length {high / codec.frame_rate:.2f} s: the model never chose EOS" in printed
    assert "EOS suppressed" not in printed and "no frames-per-token statistics" not in printed

    old = rigged_ar(cfg, eos_logit=-1.0)  # a checkpoint from before the statistics: the default, said so
    old.length_stats = None
    printed, samples = run(old, "--min-length-ratio", "0", "--max-length-ratio", "0.1")
    assert samples == math.ceil(0.1 * n_text * DEFAULT_FRAMES_PER_TOKEN * codec.frame_rate / 50.0) * hop
    assert "holds no frames-per-token statistics" in printed and "stopped at the maximum length" in printed
    printed, samples = run(old)  # 2x the default (1000 Hz here) is past the model's context (300 - 50 frames)
    assert samples == 250 * hop and "stopped at the end of the model's context (0.25 s after this prompt)" in printed
    assert load_stage(tmp_path / "ar.ckpt").length_stats.measured is False


# --- statistics measured in `lm fit` --------------------------------------------------------

def shard_lengths(shards: dict) -> dict[str, tuple[int, int]]:
    """key -> (frames, phoneme tokens), read from the token shards' tar members directly."""
    from data.text import PhonemeVocab

    vocab = PhonemeVocab.load(shards["phonemes"])
    out = {}
    for tar in sorted(shards["tokens"].glob("*.tar")):
        with tarfile.open(tar) as t:
            for m in t.getmembers():
                if m.name.endswith(".json"):
                    meta = json.load(t.extractfile(m))
                    out[meta["key"]] = (int(meta["frames"]), len(vocab(meta["phonemes"])))
    return out


def expected_stats(lengths: dict, keys: list[str], max_frames: int) -> tuple[int, float, float, int, int]:
    kept = [lengths[k] for k in keys if lengths[k][0] <= max_frames and lengths[k][1] > 0]  # cropped ones left out
    ratios = [f / t for f, t in kept]
    return len(kept), sum(ratios), sum(r * r for r in ratios), sum(f for f, _ in kept), sum(t for _, t in kept)


def assert_stats(state: dict, expected: tuple) -> None:
    n, rs, rq, f, t = expected
    assert (state["utterances"], state["frames"], state["tokens"]) == (n, f, t)
    assert state["ratio_sum"] == pytest.approx(rs, rel=1e-9) and state["ratio_sq_sum"] == pytest.approx(rq, rel=1e-9)


CROP = 2500  # the fixture's codec runs at 1000 Hz: about half its utterances are longer and get cropped


def fit_argv(shards: dict, root, max_steps: int, *extra: str) -> list[str]:
    return ["lm", "fit", "--config", "configs/lm/valle-ar-tiny.yaml",
            "--data.shards", str(shards["tokens"]), "--data.text_model", str(shards["phonemes"]),
            "--data.loader.batch_size", "2", "--data.loader.max_frames", str(CROP), "--data.loader.longer", "crop", "--data.loader.shuffle_buffer", "4",
            "--data.num_workers", "0", "--model.model.init_args.cfg.cardinality", "32",
            "--model.model.init_args.cfg.dim", "16", "--model.model.init_args.cfg.layers", "1",
            "--model.model.init_args.cfg.heads", "2", "--model.model.init_args.cfg.max_frames", str(CROP),
            "--trainer.max_steps", str(max_steps), "--trainer.default_root_dir", str(root),
            "--trainer.logger", "false", "--trainer.enable_progress_bar", "false",
            "--trainer.callbacks+=tests.resume_helpers.RecordSteps",
            "--trainer.callbacks.path", str(root / "steps-{rank}.jsonl"), *extra]


def recorded_keys(path, upto: int) -> list[str]:
    from tests.resume_helpers import read_steps

    return [k for step, keys, _ in read_steps(path) if step <= upto for k in keys]


def test_lm_fit_stores_the_frames_per_token_of_its_batches_through_checkpoints(speech_token_shards, tmp_path):
    from audiolm.lightning_module import LMModule
    from launch.cli import main

    lengths = shard_lengths(speech_token_shards)
    ref, resumed = tmp_path / "ref", tmp_path / "resumed"
    every_step = ["--trainer.callbacks+=ModelCheckpoint", "--trainer.callbacks.dirpath", str(ref / "ckpt"),
                  "--trainer.callbacks.every_n_train_steps", "1", "--trainer.callbacks.save_top_k", "-1",
                  "--trainer.callbacks.filename", "{step}"]
    assert main(fit_argv(speech_token_shards, ref, 4, *every_step)) == 0
    for step in (2, 4):
        ckpt = torch.load(ref / "ckpt" / f"step={step}.ckpt", map_location="cpu", weights_only=True)
        want = expected_stats(lengths, recorded_keys(ref / "steps-0.jsonl", step), CROP)
        assert_stats(ckpt["state_dict"]["model._extra_state"]["length_stats"], want)
        assert ckpt["length_stats"] == ckpt["state_dict"]["model._extra_state"]["length_stats"]
    final = load_stage(ref / "ckpt" / "step=4.ckpt").length_stats  # the checkpoint alone knows them
    assert final.measured and final.frame_rate == speech_token_shards["codec"].frame_rate
    n, rs, *_ = expected_stats(lengths, recorded_keys(ref / "steps-0.jsonl", 4), CROP)
    assert 0 < n < 8 and final.mean == pytest.approx(rs / n)  # some of the 8 utterances were cropped, left out

    # resumed from step 2: the statistics go on from the checkpoint's, as if never stopped
    assert main(fit_argv(speech_token_shards, resumed, 4, "--ckpt_path", str(ref / "ckpt" / "step=2.ckpt"))) == 0
    last = torch.load(next((resumed / "checkpoints").glob("*.ckpt")), map_location="cpu", weights_only=True)
    assert last["length_stats"] == final.state_dict()

    # FSDP's full-checkpoint loading leaves extra state out: the top-level copy restores them
    module = LMModule(ValleAR(small_config()))
    module.on_load_checkpoint({"length_stats": final.state_dict()})
    assert module.model.length_stats == final


@pytest.mark.ddp
@pytest.mark.slow
def test_ddp_ranks_sum_their_batches_into_one_statistic(speech_token_shards, tmp_path):
    from tests.launch.conftest import run_codeclm
    from tests.launch.test_preemption import DDP, torchrun

    argv = fit_argv(speech_token_shards, tmp_path, 3, *DDP)
    done = run_codeclm(argv, launcher=torchrun())
    assert done.returncode == 0, done.stderr[-3000:]
    lengths = shard_lengths(speech_token_shards)
    keys = [k for rank in (0, 1) for k in recorded_keys(tmp_path / f"steps-{rank}.jsonl", 3)]
    assert len(keys) == 12
    ckpt = torch.load(next((tmp_path / "checkpoints").glob("*.ckpt")), map_location="cpu", weights_only=True)
    assert_stats(ckpt["state_dict"]["model._extra_state"]["length_stats"], expected_stats(lengths, keys, CROP))


# --- a briefly trained model ----------------------------------------------------------------

REPEAT = 2  # frames a text token in the synthetic utterances below


def spoken(g: torch.Generator, b: int, vocab: int, max_tokens: int = 10) -> TokenBatch:
    """Utterances whose codebook 0 says each text token ``REPEAT`` times (tokens distinct in an
    utterance): a fixed frames-per-token law a tiny model learns in a few hundred steps."""
    n = torch.randint(4, max_tokens + 1, (b,), generator=g)
    text = torch.zeros(b, max_tokens, dtype=torch.long)
    codes = torch.zeros(b, 1, REPEAT * max_tokens, dtype=torch.long)
    for i in range(b):
        words = torch.randperm(vocab - 1, generator=g)[: n[i]] + 1
        text[i, : n[i]] = words
        codes[i, 0, : REPEAT * n[i]] = words.repeat_interleave(REPEAT)
    lengths = REPEAT * n
    return TokenBatch(codes=codes, lengths=lengths, mask=lengths_to_mask(lengths, codes.shape[-1]), frame_rate=50.0,
                      text_tokens=text, text_lengths=n)


def test_a_briefly_trained_model_ends_by_eos_within_its_bounds_on_new_texts():
    torch.manual_seed(0)
    vocab = 24
    cfg = ValleConfig(text_vocab=vocab, cardinality=vocab, num_codebooks=1, dim=64, layers=2, heads=4, max_text=16,
                      max_frames=40)
    ar = ValleAR(cfg)
    opt = torch.optim.AdamW(ar.parameters(), lr=3e-3, weight_decay=0.0)
    g = torch.Generator().manual_seed(1)
    for _ in range(300):
        batch = spoken(g, 16, vocab)
        ar.length_stats.observe(batch)
        loss = ar.loss(batch).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    ar.eval()
    assert ar.length_stats.mean == pytest.approx(REPEAT) and ar.length_stats.std == pytest.approx(0.0, abs=1e-6)
    # new texts: a prompt of 2-3 tokens (its text and codes), then a target text of 3-6 tokens to speak
    test = spoken(torch.Generator().manual_seed(99), 12, vocab, max_tokens=9)
    exact = unforced = 0
    for i in range(len(test)):
        n, cut = int(test.text_lengths[i]), 2 + i % 2
        words = test.text_tokens[i, :n]
        bounds = length_bounds(ar.length_stats, n - cut, LengthConfig())
        out = generate_codebook0(ar, words, test.codes[i, 0, : REPEAT * cut], GREEDY, bounds.max_frames,
                                 min_frames=bounds.min_frames)
        assert out.stop == "eos", (i, out)  # it chose to end, inside the bounds
        assert bounds.min_frames <= out.tokens.numel() < bounds.max_frames
        unforced += out.eos_suppressed == 0
        exact += out.tokens.numel() == REPEAT * (n - cut)
    # nearly all never wanted to end before the minimum, and most end exactly where the text does
    # (over seeds: 11-12 of 12 unforced, 8-12 exact)
    assert unforced >= len(test) - 2 and exact >= len(test) // 2, (unforced, exact)
