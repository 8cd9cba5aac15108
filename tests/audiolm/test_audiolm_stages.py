"""AudioLM stages: each learns a fixed token set, is causal where it must be, generates with a
cache exactly as without one, slides past its context, and trains from labelled shards."""

from __future__ import annotations

import argparse
import json

import pytest
import torch

from audiolm.models.audiolm_generate import continue_codes, continue_coarse, continue_semantic, continue_stack
from audiolm.models.coarse import CoarseLM, CoarseLMConfig
from audiolm.models.fine import FineLM, FineLMConfig
from audiolm.models.semantic import SemanticLM, SemanticLMConfig
from audiolm.sampling import SamplingConfig
from data.batch import TokenBatch, lengths_to_mask

SIZE = dict(dim=32, layers=1, heads=2)
GREEDY = SamplingConfig(temperature=0.0)


def tiny_models(semantic_prefix: bool = True, frames: int = 16, units: int = 16):
    torch.manual_seed(0)
    return (SemanticLM(SemanticLMConfig(n_units=16, text_vocab=20, max_text=6, max_units=units, **SIZE)),
            CoarseLM(CoarseLMConfig(cardinality=32, coarse_codebooks=2, n_units=16, max_frames=frames,
                                    max_semantic=8, semantic_prefix=semantic_prefix, **SIZE)),
            FineLM(FineLMConfig(cardinality=32, num_codebooks=4, coarse_codebooks=2, max_frames=frames, **SIZE)))


def fixed_batch() -> TokenBatch:
    g = torch.Generator().manual_seed(1)
    lengths, sem_len, text_len = torch.tensor([10, 7, 5]), torch.tensor([6, 4, 3]), torch.tensor([4, 2, 3])
    return TokenBatch(codes=torch.randint(0, 32, (3, 4, 10), generator=g), lengths=lengths,
                      mask=lengths_to_mask(lengths, 10), frame_rate=50.0,
                      semantic=torch.randint(0, 16, (3, 6), generator=g), semantic_lengths=sem_len,
                      text_tokens=torch.randint(1, 20, (3, 4), generator=g), text_lengths=text_len)


@pytest.mark.parametrize("stage", [0, 1, 2], ids=["semantic", "coarse", "fine"])
def test_stage_learns_a_fixed_token_set(stage):
    model = tiny_models()[stage]
    batch = fixed_batch()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    first = None
    for _ in range(120):
        out = model.loss(batch)
        first = first if first is not None else float(out.loss.detach())
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    assert float(out.loss) < 0.1 < first
    expected = {0: 1, 1: 2, 2: 4}[stage]
    assert out.codebook_loss.shape == (expected,)
    if stage == 2:  # coarse codebooks are inputs of the fine stage, not targets
        assert out.codebook_loss[:2].isnan().all() and not out.codebook_loss[2:].isnan().any()
    # targets: every real unit + EOS / every real coarse or fine code
    assert out.tokens == {0: 13 + 3, 1: 22 * 2, 2: 22 * 2}[stage]


def test_tied_semantic_lm_shares_one_matrix_and_still_learns():
    torch.manual_seed(0)
    tied = SemanticLM(SemanticLMConfig(n_units=16, text_vocab=20, max_text=6, max_units=16, tie_weights=True, **SIZE))
    assert tied.head.weight is tied.unit_emb.weight
    untied = tiny_models()[0]
    assert sum(p.numel() for p in untied.parameters()) - sum(p.numel() for p in tied.parameters()) == 18 * 32
    opt = torch.optim.AdamW(tied.parameters(), lr=1e-2)
    batch = fixed_batch()
    for _ in range(120):
        out = tied.loss(batch)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    assert float(out.loss) < 0.1
    assert tied.head.weight is tied.unit_emb.weight  # still one tensor after training
    fresh = SemanticLM(tied.cfg)
    fresh.load_state_dict(tied.state_dict())
    assert torch.equal(fresh.head.weight, tied.unit_emb.weight) and fresh.head.weight is fresh.unit_emb.weight


def test_padding_never_changes_the_loss_of_a_row():
    sem, coarse, fine = [m.eval() for m in tiny_models()]
    batch = fixed_batch()
    one = TokenBatch(codes=batch.codes[1:2, :, :7], lengths=batch.lengths[1:2], mask=batch.mask[1:2, :7],
                     frame_rate=50.0, semantic=batch.semantic[1:2, :4], semantic_lengths=batch.semantic_lengths[1:2],
                     text_tokens=batch.text_tokens[1:2, :2], text_lengths=batch.text_lengths[1:2])
    padded = TokenBatch(codes=batch.codes[1:2], lengths=batch.lengths[1:2], mask=batch.mask[1:2], frame_rate=50.0,
                        semantic=batch.semantic[1:2], semantic_lengths=batch.semantic_lengths[1:2],
                        text_tokens=batch.text_tokens[1:2], text_lengths=batch.text_lengths[1:2])
    for model in (sem, coarse, fine):
        torch.testing.assert_close(model.loss(one).loss, model.loss(padded).loss)


@pytest.mark.parametrize("stage", [0, 1], ids=["semantic", "coarse"])
def test_autoregressive_stages_are_causal(stage):
    model = tiny_models()[stage].eval()
    prompt = model.prompt(torch.tensor([3, 4, 5])) if stage == 0 else model.prompt(torch.tensor([1, 2, 3]))
    tokens = torch.randint(0, 16, (1, 9))
    changed = tokens.clone()
    changed[0, 6:] = (changed[0, 6:] + 1) % 16
    p = prompt.x.shape[1]

    def hidden(t):
        x = torch.cat([prompt.x, model.embed_tokens(t, 0)], dim=1)
        return model.transformer(x, attn_mask=prompt.mask(x.shape[1]))

    h1, h2 = hidden(tokens), hidden(changed)
    torch.testing.assert_close(h1[:, : p + 6], h2[:, : p + 6])
    assert not torch.allclose(h1[:, p + 6:], h2[:, p + 6:])


def test_cached_decoding_equals_naive_greedy_and_slides_past_the_context():
    sem, coarse, fine = [m.eval() for m in tiny_models(frames=8, units=8)]
    prompt_units = torch.tensor([1, 2, 3])
    cached = continue_semantic(sem, prompt_units, 25, GREEDY, text=torch.tensor([4, 5]))
    naive = continue_semantic(sem, prompt_units, 25, GREEDY, text=torch.tensor([4, 5]), use_cache=False)
    assert cached.shape == (28,) and torch.equal(cached, naive) and torch.equal(cached[:3], prompt_units)
    assert sem.cfg.max_seq_len < 28  # the window slid

    prompt_codes = torch.randint(0, 32, (4, 3))
    units = torch.randint(0, 16, (30,))
    c1 = continue_coarse(coarse, prompt_codes, 27, GREEDY, units=units)
    c2 = continue_coarse(coarse, prompt_codes, 27, GREEDY, units=units, use_cache=False)
    assert c1.shape == (2, 30) and torch.equal(c1, c2) and torch.equal(c1[:, :3], prompt_codes[:2])
    assert coarse.cfg.max_seq_len < 2 * 30


def test_stack_is_deterministic_under_a_seed_and_keeps_the_prompt():
    sem, coarse, fine = [m.eval() for m in tiny_models(frames=8, units=8)]
    prompt_units, prompt_codes = torch.tensor([1, 2, 3, 4]), torch.randint(0, 32, (4, 4))
    sampling = SamplingConfig(temperature=1.0, top_k=8, seed=7)
    a = continue_stack(sem, coarse, fine, prompt_units, prompt_codes, 20, sampling)
    b = continue_stack(sem, coarse, fine, prompt_units, prompt_codes, 20, sampling)
    c = continue_stack(sem, coarse, fine, prompt_units, prompt_codes, 20, SamplingConfig(temperature=1.0, seed=8))
    assert a.shape == (4, 24) and torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(a[:, :4], prompt_codes) and int(a.max()) < 32


def test_codec_only_continuation_needs_no_semantic_units():
    _, coarse, fine = [m.eval() for m in tiny_models(semantic_prefix=False, frames=8)]
    prompt_codes = torch.randint(0, 32, (4, 5))
    out = continue_codes(coarse, fine, prompt_codes, 19, SamplingConfig(temperature=0.8, seed=0))
    assert out.shape == (4, 24) and torch.equal(out[:, :5], prompt_codes)
    with pytest.raises(ValueError, match="semantic"):
        continue_codes(tiny_models()[1].eval(), fine, prompt_codes, 4, GREEDY)


@pytest.mark.parametrize("chunk", [1, 3, 50])
def test_continue_stream_yields_the_coarse_tokens_of_one_pass_chunk_by_chunk(chunk):
    """Through the semantic stage and window slides: the streamed chunks' coarse codebooks are those of
    continue_stack / continue_codes, greedy and sampled; each chunk is whole frames of all K codebooks."""
    from audiolm.models.audiolm_generate import continue_stream

    sem, coarse, fine = [m.eval() for m in tiny_models(frames=8, units=8)]
    prompt_units, prompt_codes = torch.tensor([1, 2, 3, 4]), torch.randint(0, 32, (4, 4), generator=torch.Generator().manual_seed(2))
    for sampling in (GREEDY, SamplingConfig(temperature=1.0, top_k=8, seed=7)):
        whole = continue_stack(sem, coarse, fine, prompt_units, prompt_codes, 20, sampling)
        chunks = list(continue_stream(coarse, fine, prompt_codes, 20, sampling, semantic_lm=sem,
                                      prompt_semantic=prompt_units, chunk_frames=chunk))
        size = min(chunk, fine.cfg.max_frames - 1)
        assert [c.shape[1] for c in chunks[:-1]] == [size] * (len(chunks) - 1) and all(c.shape[0] == 4 for c in chunks)
        streamed = torch.cat(chunks, dim=1)
        assert streamed.shape == (4, 20) and int(streamed.max()) < 32
        assert torch.equal(streamed[:2], whole[:2, 4:])  # the coarse stage's tokens, draw for draw
    _, coarse_only, fine_only = [m.eval() for m in tiny_models(semantic_prefix=False, frames=8)]
    whole = continue_codes(coarse_only, fine_only, prompt_codes, 13, GREEDY)
    streamed = torch.cat(list(continue_stream(coarse_only, fine_only, prompt_codes, 13, GREEDY, chunk_frames=chunk)), 1)
    assert torch.equal(streamed[:2], whole[:2, 4:])


def test_label_shards_then_train_every_stage_and_continue(speech_token_shards, tmp_path, capsys):
    from audiolm.semantic_labels import add_semantic_units
    from data.semantic import SemanticConfig, fit_semantic
    from data.tokens import TokenLoaderConfig, token_dataset
    from launch.cli import main
    from launch.commands import generate_continue

    fx = speech_token_shards
    units_dir = tmp_path / "units"
    model = fit_semantic(str(fx["audio"]), SemanticConfig(n_units=16, kmeans_iters=5, max_frames=4000), units_dir,
                         progress=False)
    tokens = tmp_path / "tokens"
    import shutil

    shutil.copytree(fx["tokens"], tokens)
    assert main(["semantic", "label", "--model", str(units_dir), "--audio", str(fx["audio"]), "--tokens", str(tokens)]) == 0
    said = capsys.readouterr().out
    labelled = json.loads((tokens / "semantic_labels.json").read_text())
    assert labelled and f"semantic units {model.semantic_id}" in said and " 0 samples without audio" in said
    again = add_semantic_units(model, str(fx["audio"]), tokens)
    assert again.kept == again.shards and again.labelled == 0
    manifest = json.loads((tokens / "shards.json").read_text())
    assert manifest["semantic_units"] == 16

    batch = next(iter(token_dataset(str(tokens), TokenLoaderConfig(batch_size=2, max_frames=None), train=False)))
    assert batch.semantic is not None and int(batch.semantic.max()) < 16
    ratio = float(batch.semantic_lengths[0]) / float(batch.lengths[0])  # 50 units/s over 1000 frames/s
    assert 0.03 < ratio < 0.07

    ckpts = {}
    for stage in ("semantic", "coarse", "fine"):
        root = tmp_path / stage
        sizes = {"semantic": ["--model.model.init_args.cfg.n_units", "16"],
                 "coarse": ["--model.model.init_args.cfg.n_units", "16", "--model.model.init_args.cfg.cardinality", "32",
                            "--model.model.init_args.cfg.units_per_frame", "0.05",
                            "--model.model.init_args.cfg.max_frames", "64", "--model.model.init_args.cfg.max_semantic", "4"],
                 "fine": ["--model.model.init_args.cfg.cardinality", "32", "--model.model.init_args.cfg.max_frames", "64"]}
        rc = main(["lm", "fit", "--config", f"configs/lm/{stage}-tiny.yaml", "--data.shards", str(tokens),
                   *sizes[stage], "--model.model.init_args.cfg.dim", "16", "--model.model.init_args.cfg.layers", "1",
                   "--trainer.max_steps", "3", "--trainer.default_root_dir", str(root), "--data.num_workers", "0",
                   "--data.loader.batch_size", "2", "--trainer.enable_progress_bar", "false"])
        assert rc == 0
        found = sorted(root.rglob("*.ckpt"))
        assert found, f"no checkpoint under {root}"
        ckpts[stage] = found[-1]

    out = tmp_path / "continued.wav"
    parser = argparse.ArgumentParser()
    generate_continue.register(parser.add_subparsers())
    args = parser.parse_args(["continue", "--codec", str(fx["export"]), "--coarse", str(ckpts["coarse"]),
                              "--fine", str(ckpts["fine"]), "--semantic", str(ckpts["semantic"]),
                              "--semantic-model", str(units_dir), "--prompt", str(_a_prompt(fx["audio"], tmp_path)),
                              "--seconds", "0.05", "--out", str(out), "--seed", "0", "--device", "cpu"])
    assert args.func(args) == 0
    import soundfile as sf

    wav, sr = sf.read(str(out))
    assert sr == 16000 and wav.shape[0] >= int(0.05 * 16000) + 1000


def _a_prompt(audio_dir, tmp_path):
    """A 0.1 s wav cut from the first clip of the audio shards."""
    import soundfile as sf

    from data.audio import decode_audio
    from data.skips import SkipCounter
    from data.urls import expand_urls
    from data.webdataset import read_shard

    sample = next(read_shard(expand_urls(str(audio_dir)).urls[0], SkipCounter()))
    wav, sr = decode_audio(sample["flac"])
    path = tmp_path / "prompt.wav"
    sf.write(str(path), wav[:, : sr // 10].T, sr)
    return path
