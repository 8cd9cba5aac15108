"""The benchmark scripts run end to end at their smallest sizes and print well-formed rows."""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
FIELDS = {"bench", "figure", "ours", "reference", "ratio", "unit", "device", "config"}
EXPECTED = {
    "loader": {"eval_w0", "train_w0", "eval_w1", "train_w1"},
    "codec": {"params", "train_step", "encode_6kbps", "decode_6kbps"},
    "lm": {"params", "train_step", "train_tflops"},
    "decode": {"decode_b1", "decode_b16", "decode_b64"},  # graph_bB rows only on CUDA
    "decoder": {"decode_tiny"},
    "stream": {"latency_causal", "decode_rtf_causal", "decode_rtf_windowed", "chunk_cost_late", "first_audio_causal",
               "first_audio_windowed"},
}


def load_run_module():
    spec = importlib.util.spec_from_file_location("bench_run", BENCH / "run.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_smoke_runs_print_positive_finite_rows():
    # both scripts at once: each is mostly single-threaded start-up and model building
    procs = {name: subprocess.Popen([sys.executable, str(BENCH / f"{name}.py"), "--smoke", "--json", "--device", "cpu"],
                                    cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for name in EXPECTED}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, f"bench/{name}.py --smoke failed:\n{err[-3000:]}"
        rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        assert {r["figure"] for r in rows} == EXPECTED[name], out
        for r in rows:
            assert set(r) == FIELDS, r
            assert r["bench"] == name and r["unit"] and r["device"].startswith("cpu")
            for key in ("ours", "reference", "ratio"):
                assert isinstance(r[key], float) and math.isfinite(r[key]) and r[key] > 0, (key, r)
            assert math.isclose(r["ratio"], r["ours"] / r["reference"], rel_tol=1e-6), r


def test_the_runner_runs_exactly_the_ratio_benchmarks():
    # every script `make bench` runs is one whose smoke rows are checked above, and no other
    assert {p.stem for p in load_run_module().scripts()} == set(EXPECTED)


def test_runner_collects_rows_and_names_failing_scripts(tmp_path, monkeypatch, capsys):
    run = load_run_module()
    row = {"bench": "good", "figure": "f", "ours": 2.0, "reference": 1.0, "ratio": 2.0, "unit": "u", "device": "cpu",
           "config": {}}
    (tmp_path / "good.py").write_text(f"import json, sys\nassert '--json' in sys.argv\nprint(json.dumps({row!r}))\n")
    (tmp_path / "broken.py").write_text("raise SystemExit(3)\n")
    (tmp_path / "silent.py").write_text("print('no rows here')\n")
    monkeypatch.setattr(run, "HERE", tmp_path)
    assert run.main(["--only", "good"]) == 0
    assert "good" in capsys.readouterr().out
    assert run.main(["--json"]) == 1
    cap = capsys.readouterr()
    assert [json.loads(line) for line in cap.out.splitlines() if line.startswith("{")] == [row]
    assert "broken.py failed: exit status 3" in cap.err
    assert "silent.py failed: printed no JSON rows" in cap.err


def test_codec_bench_step_matches_the_lightning_module(tmp_path):
    """The plain-loop GAN step of bench/codec.py computes CodecModule.training_step's losses."""
    import copy

    import lightning as L
    import torch
    import yaml
    from jsonargparse import ArgumentParser

    from codec.lightning_module import CodecModule
    from data.batch import AudioBatch

    spec = importlib.util.spec_from_file_location("bench_codec", BENCH / "codec.py")
    bench = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = bench  # dataclasses look their module up
    try:
        spec.loader.exec_module(bench)
    finally:
        sys.modules.pop(spec.name, None)

    model = yaml.safe_load((ROOT / "configs/codec/tiny.yaml").read_text())["model"]
    model["codec"]["quantizer"].update(quantizer_dropout=False, kmeans_init=False)
    model["losses"].update(discriminator_warmup=0, balancer=True)
    parser = ArgumentParser(exit_on_error=False)
    parser.add_class_arguments(CodecModule, "model")
    torch.manual_seed(0)
    module = parser.instantiate(parser.parse_object({"model": model})).model
    twin = copy.deepcopy(module)

    wav = bench.test_signal(2, 0.25, 16000, torch.device("cpu"))
    batch = AudioBatch(audio=wav, lengths=torch.full((2,), wav.shape[-1]),
                       mask=torch.ones(2, wav.shape[-1], dtype=torch.bool), sample_rate=16000)
    trainer = L.Trainer(max_steps=2, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(module, torch.utils.data.DataLoader([batch], batch_size=None, collate_fn=lambda b: b))
    logged = {k.removeprefix("train/"): float(v) for k, v in trainer.logged_metrics.items()}

    def forward(x):
        out = twin.codec(x)
        return out.audio, out.quantizer.loss

    twin.train()
    ours = {k: float(v) for k, v in bench.GanStep(twin, twin.codec, forward, twin.discriminator, 16000, "fp32")(wav).items()}
    for key in ("d_loss", "l1", "mel", "adversarial"):
        assert math.isclose(ours[key], logged[key], rel_tol=1e-5), (key, ours[key], logged[key])
    # computed after the discriminator's update, so float rounding there shows a little
    assert math.isclose(ours["feature"], logged["feature"], rel_tol=1e-2)


def load_bench_module(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up
    try:
        spec.loader.exec_module(mod)
    finally:
        sys.modules.pop(spec.name, None)
    return mod


def test_decode_bench_variants_agree_and_its_check_catches_broken_caches(monkeypatch):
    """bench/decode.py's cached loop and fixed-shape (graph-ready) step generate what the uncached
    forward generates; a cache that loses keys/values makes its pre-timing check raise."""
    import pytest
    import torch

    from audiolm.nn.kv_cache import KVCache
    from audiolm.sampling import sample

    bench = load_bench_module("decode")
    static = sys.modules["bench._static_decode"]
    model = bench.build_model(bench.PRESETS["smoke"]).eval()
    prompt = torch.randint(0, bench.VOCAB, (3, 5), generator=torch.Generator().manual_seed(1))
    info = bench.check_decoding(model, prompt, 8)
    assert info["check_variants"] == ["cached", "cached (forced)", "static step", "static step (forced)"]
    assert info["check_max_logit_diff"] < 1e-5

    # sampled (temperature, top-k): the same global seed draws the same tokens on every path
    sampler = lambda logits: sample(logits, temperature=0.9, top_k=64)  # noqa: E731
    torch.manual_seed(7)
    cached = bench.generate_cached(model, prompt, 10, model.transformer.make_cache(3, 15), sampler)
    torch.manual_seed(7)
    uncached = bench.generate_uncached(model, prompt, 10, sampler)
    torch.manual_seed(7)
    decoder = static.StaticDecoder(model, 3, 15, sampler, bucket=4, graphs=False)
    stepped = decoder.generate(prompt, 10)
    assert decoder.max_len == 16 and decoder.graphs == {}
    assert cached.shape == (3, 10) and torch.equal(cached, uncached) and torch.equal(stepped, cached)

    def forgetful_update(self, layer, k, v):  # keeps nothing: each token sees only itself
        return k, v

    with monkeypatch.context() as m:
        m.setattr(KVCache, "update", forgetful_update)
        with pytest.raises(RuntimeError, match="the cached decode's"):
            bench.check_decoding(model, prompt, 8)

    def unwritten_update(self, layer, k, v):  # reads the window without writing the new slot
        return self.cache.k[layer, :, :, :self.k_len], self.cache.v[layer, :, :, :self.k_len]

    monkeypatch.setattr(static.PositionCache, "update", unwritten_update)
    with pytest.raises(RuntimeError, match="the static step decode's"):
        bench.check_decoding(model, prompt, 8)
