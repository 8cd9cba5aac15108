"""Transformer core: causality, masks, KV-cache decoding equal to a full pass, GQA, compile."""

from __future__ import annotations

import math

import pytest
import torch

from audiolm.nn import KVCache, Transformer, TransformerConfig, init_weights, prefix_causal_mask

D, L_COND, D_COND = 32, 5, 24


def make(seed: int = 0, **overrides) -> Transformer:
    kw = dict(dim=D, num_layers=2, num_heads=4, num_kv_heads=2, max_seq_len=64)
    kw.update(overrides)
    torch.manual_seed(seed)
    return Transformer(TransformerConfig(**kw)).eval()


def inputs(b: int = 2, s: int = 12, seed: int = 1) -> torch.Tensor:
    return torch.randn(b, s, D, generator=torch.Generator().manual_seed(seed))


def conditioning(b: int = 2, seed: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    cond = torch.randn(b, L_COND, D_COND, generator=torch.Generator().manual_seed(seed))
    mask = torch.ones(b, L_COND, dtype=torch.bool)
    mask[-1, 3:] = False
    return cond, mask


def decode(model: Transformer, x: torch.Tensor, chunks: list[int], **first_call) -> torch.Tensor:
    """Run ``x`` through a fresh cache chunk by chunk; ``first_call`` kwargs go to the first call."""
    cache = model.make_cache(batch=x.shape[0], max_len=x.shape[1])
    outs, t = [], 0
    for i, n in enumerate(chunks):
        outs.append(model(x[:, t:t + n], cache=cache, **(first_call if i == 0 else {})))
        t += n
    assert t == x.shape[1] and cache.length == t
    return torch.cat(outs, dim=1)


@torch.no_grad()
def test_causal_future_tokens_never_change_the_past():
    model, x = make(), inputs()
    y = model(x)
    x2 = x.clone()
    x2[:, 7:] = torch.randn_like(x2[:, 7:])
    y2 = model(x2)
    assert y.shape == x.shape
    torch.testing.assert_close(y2[:, :7], y[:, :7], atol=1e-6, rtol=0)
    assert (y2[:, 7:] - y[:, 7:]).abs().max() > 1e-3


@torch.no_grad()
def test_bidirectional_sees_the_future():
    model, x = make(), inputs()
    x2 = x.clone()
    x2[:, -1] += 1.0
    y, y2 = model(x, causal=False), model(x2, causal=False)
    assert (y2[:, 0] - y[:, 0]).abs().max() > 1e-4


@pytest.mark.parametrize("chunks", [[1] * 12, [5, 1, 1, 3, 2]], ids=["token_by_token", "prefill_then_chunks"])
@pytest.mark.parametrize("cross", [False, True], ids=["self_only", "cross_attention"])
@torch.no_grad()
def test_cached_decoding_equals_full_forward(chunks, cross):
    model, x = make(cross_attention=cross, cross_dim=D_COND if cross else None), inputs()
    kw = {}
    if cross:
        kw["cross"], kw["cross_mask"] = conditioning()
    full = model(x, **kw)
    torch.testing.assert_close(decode(model, x, chunks, **kw), full, atol=1e-5, rtol=0)


@torch.no_grad()
def test_cross_attention_is_computed_once_and_cached():
    model = make(cross_attention=True, cross_dim=D_COND)
    cond, mask = conditioning()
    cache = model.make_cache(batch=2, max_len=8)
    model(inputs(s=3), cache=cache, cross=cond, cross_mask=mask)
    k0 = cache.cross_k[0]
    assert k0 is not None and k0.shape == (2, 2, L_COND, D // 4)
    model(inputs(s=1), cache=cache)  # no conditioning passed: the cached one is used
    assert cache.cross_k[0] is k0 and torch.equal(cache.cross_mask, mask)
    cache.reset()
    assert cache.length == 0 and cache.cross_k[0] is None
    with pytest.raises(ValueError, match="cross_attention is True"):
        model(inputs(s=1), cache=cache)


@torch.no_grad()
def test_batched_cached_decoding_equals_per_sequence():
    model, x = make(cross_attention=True, cross_dim=D_COND), inputs(b=3, s=9)
    cond, mask = conditioning(b=3)
    batched = decode(model, x, [4, 1, 1, 3], cross=cond, cross_mask=mask)
    for i in range(3):
        alone = decode(model, x[i:i + 1], [4, 1, 1, 3], cross=cond[i:i + 1], cross_mask=mask[i:i + 1])
        torch.testing.assert_close(batched[i:i + 1], alone, atol=1e-5, rtol=0)


@torch.no_grad()
def test_left_padded_prompts_decode_like_unpadded_ones():
    """Rows of different prompt lengths share slots (left padding), each with its own positions."""
    model, steps = make(), 3
    lengths = [6, 4, 2]
    seqs = [inputs(b=1, s=n + steps, seed=10 + i)[0] for i, n in enumerate(lengths)]
    width = max(lengths)
    prompt = torch.zeros(3, width, D)
    valid = torch.zeros(3, width, dtype=torch.bool)
    for i, n in enumerate(lengths):
        prompt[i, width - n:], valid[i, width - n:] = seqs[i][:n], True
    pads = torch.tensor([width - n for n in lengths])
    positions = (torch.arange(width)[None] - pads[:, None]).clamp(min=0)
    cache = model.make_cache(batch=3, max_len=width + steps)
    outs = [model(prompt, positions=positions, key_padding_mask=valid, cache=cache)]
    assert torch.isfinite(outs[0]).all()
    for t in range(steps):
        step = torch.stack([seqs[i][n + t] for i, n in enumerate(lengths)])[:, None]
        outs.append(model(step, positions=torch.tensor(lengths)[:, None] + t, cache=cache))
    out = torch.cat(outs, dim=1)
    for i, n in enumerate(lengths):
        alone = model(seqs[i][None])
        torch.testing.assert_close(out[i, width - n:], alone[0], atol=1e-5, rtol=0)


@pytest.mark.parametrize("causal", [True, False])
@torch.no_grad()
def test_padded_keys_do_not_affect_other_positions(causal):
    model, x = make(), inputs()
    valid = torch.ones(2, 12, dtype=torch.bool)
    valid[0, 8:] = False  # right padding
    valid[1, :3] = False  # left padding: its first queries have no valid key in the causal past
    y = model(x, key_padding_mask=valid, causal=causal)
    x2 = x + 5.0 * (~valid)[..., None]
    y2 = model(x2, key_padding_mask=valid, causal=causal)
    assert torch.isfinite(y).all() and torch.isfinite(y2).all()
    torch.testing.assert_close(y2[valid], y[valid], atol=1e-6, rtol=0)
    # and the valid part equals the unpadded sequence alone
    torch.testing.assert_close(y[0, :8], model(x[:1, :8], causal=causal)[0], atol=1e-5, rtol=0)


@torch.no_grad()
def test_prefix_causal_mask_values():
    m = prefix_causal_mask(torch.tensor([3, 0]), 5)
    expected0 = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 0, 0], [1, 1, 1, 0, 0],
                              [1, 1, 1, 1, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    assert m.shape == (2, 5, 5) and torch.equal(m[0], expected0)
    assert torch.equal(m[1], torch.ones(5, 5, dtype=torch.bool).tril())
    assert torch.equal(prefix_causal_mask(3, 5), expected0)


@torch.no_grad()
def test_prefix_lm_bidirectional_in_prefix_causal_after():
    model, x, p = make(), inputs(), 4
    mask = prefix_causal_mask(torch.tensor([p, p]), 12)
    y = model(x, attn_mask=mask)

    def changed(t: int) -> torch.Tensor:
        x2 = x.clone()
        x2[:, t] += 1.0
        return (model(x2, attn_mask=mask) - y).abs().amax(dim=(0, 2))  # [S]

    assert changed(p - 1)[0] > 1e-4  # the prefix sees its own future
    assert changed(p)[:p].max() == 0  # but nothing after the prefix
    after = changed(8)
    assert after[:8].max() <= 1e-6 and after[8] > 1e-4  # causal after the prefix
    # prefix-LM prefill through a cache, then token steps, equals the full pass
    cache = model.make_cache(batch=2, max_len=12)
    outs = [model(x[:, :p], attn_mask=prefix_causal_mask(p, p), cache=cache)]
    outs += [model(x[:, t:t + 1], cache=cache) for t in range(p, 12)]
    torch.testing.assert_close(torch.cat(outs, dim=1), y, atol=1e-5, rtol=0)


@torch.no_grad()
def test_cross_mask_hides_padded_conditioning_and_empty_rows_are_finite():
    model, x = make(cross_attention=True, cross_dim=D_COND), inputs()
    cond, mask = conditioning()
    mask[0] = False  # row 0 has no conditioning at all
    y = model(x, cross=cond, cross_mask=mask)
    cond2 = cond + 3.0 * (~mask)[..., None]
    y2 = model(x, cross=cond2, cross_mask=mask)
    assert torch.isfinite(y).all()
    torch.testing.assert_close(y2, y, atol=1e-6, rtol=0)


@torch.no_grad()
def test_gqa_shapes_and_masked_path_agree():
    model, x = make(num_heads=4, num_kv_heads=1), inputs()
    cfg = model.cfg
    assert (cfg.head_dim, cfg.kv_heads) == (8, 1)
    assert model.blocks[0].attn.qkv.weight.shape == ((4 + 2 * 1) * 8, D)
    cache = model.make_cache(batch=2)
    assert isinstance(cache, KVCache) and cache.k.shape == (2, 2, 1, 64, 8)
    assert model(x, cache=cache).shape == (2, 12, D)
    # the masked path expands kv heads; the unmasked one lets SDPA group them
    all_valid = torch.ones(2, 12, dtype=torch.bool)
    torch.testing.assert_close(model(x, key_padding_mask=all_valid), model(x), atol=1e-6, rtol=0)


def test_parameter_count_of_a_known_config():
    model = make(dim=64, num_layers=2, num_heads=4, num_kv_heads=2, mlp_ratio=4.0)
    head_dim, hidden = 16, 176  # 2/3 * 4 * 64 = 170.7, rounded up to a multiple of 8
    assert model.cfg.mlp_hidden_dim == hidden
    attn = 64 * (4 + 2 * 2) * head_dim + 4 * head_dim * 64
    mlp = 64 * 2 * hidden + hidden * 64
    per_layer = attn + mlp + 2 * 64
    assert sum(p.numel() for p in model.parameters()) == 2 * per_layer + 64 == 92_480
    cross = make(dim=64, num_layers=1, num_heads=4, num_kv_heads=None, cross_attention=True, cross_dim=48,
                 bias=True)
    cross_attn = (64 * 64 + 64) + (48 * 128 + 128) + (64 * 64 + 64) + 64
    self_attn = (64 * 192 + 192) + (64 * 64 + 64)
    mlp = (64 * 352 + 352) + (176 * 64 + 64)
    assert sum(p.numel() for p in cross.parameters()) == self_attn + cross_attn + mlp + 2 * 64 + 64


@torch.no_grad()
def test_rope_is_relative_and_positions_are_explicit():
    model, x = make(), inputs()
    y = model(x)
    shifted = model(x, positions=torch.arange(12) + 17)
    torch.testing.assert_close(shifted, y, atol=1e-5, rtol=0)
    per_row = model(x, positions=torch.stack([torch.arange(12), torch.arange(12) + 5]))
    torch.testing.assert_close(per_row, y, atol=1e-5, rtol=0)


def test_runs_under_bf16_autocast_on_cpu():
    model, x = make(cross_attention=True, cross_dim=D_COND), inputs()
    cond, mask = conditioning()
    ref = model(x, cross=cond, cross_mask=mask)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = model(x, cross=cond, cross_mask=mask)  # ... the residual stream keeps the input's dtype
        inner = model.blocks[0].attn.qkv(x)
        y.float().square().mean().backward()
        with torch.no_grad():
            cached = decode(model, x, [6, 1, 5], cross=cond, cross_mask=mask)
    assert inner.dtype == torch.bfloat16  # matmuls run in bf16 ...
    assert y.dtype == torch.float32 and torch.isfinite(y).all()
    assert (y.float() - ref).abs().max() < 0.1
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    assert (cached.float() - ref).abs().max() < 0.1


@torch.no_grad()
def test_cache_overflow_and_reset():
    model, x = make(), inputs(s=6)
    cache = model.make_cache(batch=2, max_len=6)
    first = model(x, cache=cache)
    with pytest.raises(ValueError, match="KVCache is full"):
        model(x[:, :1], cache=cache)
    with pytest.raises(ValueError, match="batch"):
        model(inputs(b=3, s=1), cache=cache)
    cache.reset()
    torch.testing.assert_close(model(x, cache=cache), first, atol=0, rtol=0)
    with pytest.raises(ValueError, match="max_seq_len"):
        model(inputs(s=65))


def test_config_validation_and_dropout():
    with pytest.raises(ValueError, match="num_heads"):
        TransformerConfig(dim=30, num_layers=1, num_heads=4, max_seq_len=8)
    with pytest.raises(ValueError, match="num_kv_heads"):
        TransformerConfig(dim=32, num_layers=1, num_heads=4, num_kv_heads=3, max_seq_len=8)
    model, x = make(dropout=0.5).train(), inputs()
    assert not torch.equal(model(x), model(x))
    model.eval()
    assert torch.equal(model(x), model(x))


def test_init_weights_scales_residual_projections():
    model = make(dim=64, num_layers=4, num_heads=4)
    init_weights(model, num_layers=4)
    block = model.blocks[0]
    assert math.isclose(block.attn.qkv.weight.std().item(), 0.02, rel_tol=0.1)
    residual = 0.02 / math.sqrt(8)
    assert math.isclose(block.attn.out.weight.std().item(), residual, rel_tol=0.1)
    assert math.isclose(block.mlp.down.weight.std().item(), residual, rel_tol=0.1)
    assert torch.equal(block.attn_norm.weight, torch.ones(64))


@pytest.mark.slow
def test_training_forward_compiles_fullgraph_and_matches_eager():
    """fullgraph=True fails on any graph break. aot_eager traces forward and backward (training)
    through both attention paths; inductor then compiles the masked forward to machine code."""
    torch._dynamo.reset()
    model, x = make(num_layers=1, cross_attention=True, cross_dim=D_COND).train(), inputs()
    cond, mask = conditioning()
    valid = torch.ones(2, 12, dtype=torch.bool)
    valid[1, 9:] = False
    calls = [dict(cross=cond, cross_mask=mask), dict(key_padding_mask=valid, cross=cond, cross_mask=mask)]

    traced = torch.compile(model, fullgraph=True, backend="aot_eager")
    for kw in calls:  # is_causal path, then the explicit-mask path
        model.zero_grad()
        eager = model(x, **kw)
        eager.square().mean().backward()
        eager_grads = [p.grad.clone() for p in model.parameters()]
        model.zero_grad()
        compiled = traced(x, **kw)
        compiled.square().mean().backward()
        torch.testing.assert_close(compiled, eager, atol=1e-5, rtol=1e-5)
        for p, g in zip(model.parameters(), eager_grads):
            torch.testing.assert_close(p.grad, g, atol=1e-5, rtol=1e-5)

    torch._dynamo.reset()
    model.eval()
    try:
        with torch.no_grad():
            compiled = torch.compile(model, fullgraph=True, backend="inductor")(x, **calls[1])
    except torch._dynamo.exc.BackendCompilerFailed as err:  # no working C++ toolchain
        pytest.skip(f"inductor cannot compile on this CPU ({str(err)[:200]}); aot_eager traced "
                    "forward and backward with fullgraph=True and matched eager")
    with torch.no_grad():
        torch.testing.assert_close(compiled, model(x, **calls[1]), atol=1e-5, rtol=1e-5)
