"""`lm fit --model.compile true`: the transformer cores run compiled and training gives the losses
of the eager run, with checkpoints of the same parameter names."""

from __future__ import annotations

import pytest

from tests.launch.conftest import lm_argv, run_codeclm, steps_of


@pytest.mark.slow
def test_compiled_training_matches_eager(speech_token_shards, tmp_path):
    from launch.checkpoints import read_checkpoint

    eager, compiled = tmp_path / "eager", tmp_path / "compiled"
    for root, extra in ((eager, []), (compiled, ["--model.compile", "true"])):
        out = run_codeclm(lm_argv(speech_token_shards, root, 3, "--model.model.init_args.cfg.dropout", "0.0", *extra),
                          timeout=600)
        assert out.returncode == 0, out.stderr[-3000:]
    want, got = steps_of(eager), steps_of(compiled)
    assert [(s, k) for s, k, _ in got] == [(s, k) for s, k, _ in want]
    for (_, _, a), (_, _, b) in zip(want, got):
        assert b == pytest.approx(a, rel=1e-4, abs=1e-5)
    a = read_checkpoint(next((eager / "checkpoints").glob("*.ckpt")))["state_dict"]
    b = read_checkpoint(next((compiled / "checkpoints").glob("*.ckpt")))["state_dict"]
    assert a.keys() == b.keys() and not any("_orig_mod" in k for k in b)


def test_compile_flag_compiles_every_core_in_place():
    import torch

    from audiolm.lightning_module import LMModule
    from audiolm.models.musicgen import MusicGen, MusicGenConfig
    from audiolm.nn import Transformer

    model = MusicGen(MusicGenConfig(cardinality=8, num_codebooks=2, dim=16, layers=1, heads=2, text_vocab=16,
                                    text_dim=16, text_layers=1, text_heads=2, max_frames=8, max_text_len=8))
    names = list(model.state_dict())
    module = LMModule(model, compile=True)
    module.configure_model()
    cores = [m for m in model.modules() if isinstance(m, Transformer)]
    assert len(cores) == 2  # the decoder and the text encoder
    assert all(getattr(c, "_compiled_call_impl", None) is not None for c in cores)
    assert list(model.state_dict()) == names
    plain = LMModule(MusicGen(model.cfg))
    plain.configure_model()
    assert all(getattr(m, "_compiled_call_impl", None) is None for m in plain.modules())
    torch._dynamo.reset()
