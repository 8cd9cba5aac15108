"""Codebook patterns: exact round trips, hand-checked layouts, masks, logits alignment, steps."""

from __future__ import annotations

import pytest
import torch

from audiolm.patterns import (DelayPattern, FlattenPattern, ParallelPattern, make_pattern, offset_tokens,
                              strip_offsets)

FILL = 1000  # outside the code range used below (codes < 50)


def all_patterns(k: int, gen: torch.Generator | None = None):
    delays = torch.randint(0, 5, (k,), generator=gen).tolist() if gen is not None else [0] * k
    return [FlattenPattern(k), ParallelPattern(k), DelayPattern.musicgen(k), DelayPattern(delays)]


def random_cases(n: int, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    for _ in range(n):
        b, k, t = (int(torch.randint(lo, hi, (1,), generator=gen)) for lo, hi in ((0, 4), (1, 6), (0, 12)))
        codes = torch.randint(0, 50, (b, k, t), generator=gen)
        for pattern in all_patterns(k, gen):
            yield pattern, codes


def test_round_trip_random_shapes():
    for pattern, codes in random_cases(60):
        seq = pattern.build(codes, fill=FILL)
        b, k, t = codes.shape
        seq_shape = (b, pattern.length(t)) if pattern.seq_dims == 1 else (b, k, pattern.length(t))
        assert seq.tokens.shape == seq_shape and seq.mask.shape == seq_shape
        assert torch.equal(pattern.revert(seq.tokens), codes), pattern


@pytest.mark.parametrize("k", [1, 2, 4])
@pytest.mark.parametrize("t", [0, 1, 2, 7])
@pytest.mark.parametrize("b", [0, 1, 3])
def test_round_trip_edges(b, k, t):
    codes = torch.arange(b * k * t).reshape(b, k, t)
    for pattern in all_patterns(k):
        seq = pattern.build(codes, fill=-7)
        assert pattern.revert(seq.tokens).shape == (b, k, t)
        assert torch.equal(pattern.revert(seq.tokens), codes)
        assert pattern.frames(pattern.length(t)) == t


def test_masks_exclude_exactly_the_fill_positions():
    for pattern, codes in random_cases(40, seed=1):
        seq = pattern.build(codes, fill=FILL)
        assert seq.mask.dtype == torch.bool
        assert torch.equal(seq.mask, seq.tokens != FILL)  # codes never equal FILL
        if len(seq.mask):
            assert torch.equal(seq.mask[0], seq.time >= 0)
        # every code appears exactly once among the valid positions
        assert int(seq.mask.sum()) == codes.numel()
        b, k, t = codes.shape
        valid = seq.time >= 0
        pairs = set(zip(seq.codebook[valid].tolist(), seq.time[valid].tolist()))
        assert len(pairs) == int(valid.sum()) == k * t


def test_delay_layout_by_hand():
    codes = torch.tensor([[[1, 2, 3], [4, 5, 6], [7, 8, 9]]])  # [1, 3, 3]
    seq = DelayPattern([0, 1, 2]).build(codes, fill=-1)
    expected = torch.tensor([[[1, 2, 3, -1, -1],
                              [-1, 4, 5, 6, -1],
                              [-1, -1, 7, 8, 9]]])
    assert torch.equal(seq.tokens, expected)
    assert torch.equal(seq.mask, expected != -1)
    assert seq.time.tolist() == [[0, 1, 2, -1, -1], [-1, 0, 1, 2, -1], [-1, -1, 0, 1, 2]]
    assert seq.codebook.tolist() == [[0] * 5, [1] * 5, [2] * 5]

    # arbitrary delays, not sorted, none at zero
    seq = DelayPattern([2, 1]).build(torch.tensor([[[1, 2], [3, 4]]]), fill=0)
    assert seq.tokens.tolist() == [[[0, 0, 1, 2], [0, 3, 4, 0]]]


def test_flatten_and_parallel_layout_by_hand():
    codes = torch.tensor([[[1, 2, 3], [4, 5, 6]]])  # K=2, T=3
    seq = FlattenPattern(2).build(codes)
    assert seq.tokens.tolist() == [[1, 4, 2, 5, 3, 6]]
    assert seq.codebook.tolist() == [0, 1, 0, 1, 0, 1]
    assert seq.time.tolist() == [0, 0, 1, 1, 2, 2]
    assert bool(seq.mask.all())
    seq = ParallelPattern(2).build(codes)
    assert torch.equal(seq.tokens, codes) and bool(seq.mask.all())


def test_revert_logits_alignment():
    gen = torch.Generator().manual_seed(2)
    for pattern, codes in random_cases(30, seed=2):
        b, k, t = codes.shape
        seq = pattern.build(codes, fill=FILL)
        v = 5
        # logits whose every entry records the token at its sequence position and the class index
        logits = seq.tokens[..., None].float() * 10 + torch.arange(v).float()
        aligned = pattern.revert_logits(logits)
        assert aligned.shape == (b, k, t, v)
        assert torch.equal(aligned, codes[..., None].float() * 10 + torch.arange(v).float())
        # random logits: gathering the aligned logits at the codes equals gathering at the sequence
        logits = torch.randn(*seq.tokens.shape, v, generator=gen)
        target = torch.randint(0, v, seq.tokens.shape, generator=gen)
        picked = logits.gather(-1, target[..., None])[..., 0]
        assert torch.equal(pattern.revert_logits(logits).gather(-1, pattern.revert(target)[..., None])[..., 0],
                           pattern.revert(picked))


def test_revert_logits_delay_by_hand():
    pattern = DelayPattern([0, 1])
    logits = torch.arange(2 * 3).reshape(1, 2, 3, 1).float()  # [B=1, K=2, S=3, V=1], T=2
    assert pattern.revert_logits(logits)[..., 0].tolist() == [[[0, 1], [4, 5]]]


@pytest.mark.parametrize("t", [0, 1, 5])
def test_step_positions_cover_every_code_once(t):
    gen = torch.Generator().manual_seed(3)
    for k in (1, 3, 4):
        for pattern in all_patterns(k, gen):
            seen = []
            layout = pattern.layout(t)
            for s in range(pattern.length(t)):
                step = pattern.step_positions(s, t)
                seen += step
                # the step's codes are the ones laid out at sequence position/column s
                column_time, column_k = layout.time[..., s], layout.codebook[..., s]
                valid = column_time >= 0
                expected = list(zip(column_k.reshape(-1)[valid.reshape(-1)].tolist(),
                                    column_time.reshape(-1)[valid.reshape(-1)].tolist()))
                assert sorted(step) == sorted(expected)
            assert sorted(seen) == [(kk, tt) for kk in range(k) for tt in range(t)]
            with pytest.raises(ValueError):
                pattern.step_positions(pattern.length(t), t)


def test_step_positions_delay_by_hand():
    p = DelayPattern.musicgen(3)
    assert p.step_positions(0, 4) == [(0, 0)]
    assert p.step_positions(2, 4) == [(0, 2), (1, 1), (2, 0)]
    assert p.step_positions(5, 4) == [(2, 3)]
    assert FlattenPattern(3).step_positions(4, 2) == [(1, 1)]
    assert ParallelPattern(2).step_positions(1, 2) == [(0, 1), (1, 1)]


def test_offset_tokens_round_trip_and_flatten():
    gen = torch.Generator().manual_seed(4)
    codes = torch.randint(0, 16, (3, 4, 9), generator=gen)
    ids = offset_tokens(codes, 16)
    assert ids.tolist()[0][2] == (codes[0, 2] + 32).tolist()
    assert torch.equal(strip_offsets(ids, 16), codes)
    pattern = FlattenPattern(4)
    seq = pattern.build(ids)
    assert torch.equal(seq.tokens // 16, seq.codebook.expand_as(seq.tokens))  # id tells its codebook
    assert torch.equal(strip_offsets(pattern.revert(seq.tokens), 16), codes)
    assert offset_tokens(torch.zeros(2, 3, 0, dtype=torch.long), 16).shape == (2, 3, 0)
    with pytest.raises(ValueError):
        offset_tokens(codes, 8)
    with pytest.raises(ValueError):
        strip_offsets(ids + 16, 16)


def test_clear_errors():
    codes = torch.zeros(2, 3, 4, dtype=torch.long)
    with pytest.raises(ValueError, match="fill"):
        DelayPattern.musicgen(3).build(codes)
    assert DelayPattern([0, 0, 0]).build(codes).tokens.shape == (2, 3, 4)  # no fill positions: none needed
    with pytest.raises(ValueError, match="codebooks"):
        ParallelPattern(2).build(codes)
    with pytest.raises(ValueError, match="codebooks"):
        DelayPattern.musicgen(3).revert(torch.zeros(2, 4, 6, dtype=torch.long))
    with pytest.raises(ValueError, match="multiple"):
        FlattenPattern(3).revert(torch.zeros(2, 7, dtype=torch.long))
    with pytest.raises(ValueError, match="shorter"):
        DelayPattern.musicgen(3).revert(torch.zeros(2, 3, 1, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\[B, K, S, V\]"):
        ParallelPattern(3).revert_logits(torch.zeros(2, 3, 4))
    with pytest.raises(ValueError):
        DelayPattern([0, -1])
    with pytest.raises(ValueError):
        DelayPattern([])


def test_make_pattern():
    assert isinstance(make_pattern("flatten", 4), FlattenPattern)
    assert isinstance(make_pattern("parallel", 4), ParallelPattern)
    assert make_pattern("delay", 4).delays == (0, 1, 2, 3)
    assert make_pattern("delay", 2, delays=[0, 3]).length(5) == 8
    with pytest.raises(ValueError, match="choose"):
        make_pattern("zigzag", 4)
    with pytest.raises(ValueError):
        make_pattern("delay", 3, delays=[0, 1])
