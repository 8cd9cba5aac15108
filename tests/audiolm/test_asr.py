"""Speech recognition on codec tokens (audiolm/models/asr.py): greedy CTC from its definition on a
hand-made alignment, a tiny model that learns 8 utterances exactly, batched decoding equal to one
at a time, the augmentations, and training through `codeclm lm fit` on real token shards."""

from __future__ import annotations

import math

import pytest
import torch

from audiolm.models.asr import ASRConfig, TokenASR, _edit_distance
from data.batch import TokenBatch, lengths_to_mask


def tiny(**kw) -> TokenASR:
    torch.manual_seed(0)
    base = dict(cardinality=16, num_codebooks=2, text_vocab=12, dim=32, layers=2, heads=2, max_frames=64,
                subsample=2, dropout=0.0, level_dropout=0.0, time_masks=0)
    base.update(kw)
    return TokenASR(ASRConfig(**base))


def test_greedy_ctc_merges_repeats_and_drops_blanks():
    model = tiny()
    blank = model.cfg.blank
    path = [3, 3, blank, 3, 5, 5, blank, blank, 7, 2, 2]  # -> 3 3 5 7 2 (a blank separates the two 3s)
    log_probs = torch.full((1, len(path) + 2, blank + 1), -10.0)
    for t, c in enumerate(path + [9, 9]):
        log_probs[0, t, c] = 0.0
    assert model.decode_best(log_probs, torch.tensor([len(path)])) == [[3, 3, 5, 7, 2]]  # frames past the length ignored
    assert _edit_distance([1, 2, 3], [1, 3]) == 1 and _edit_distance([], [4, 4]) == 2


def batch_of(seed: int = 0, n: int = 8) -> TokenBatch:
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(20, 41, (n,), generator=g)
    codes = torch.randint(0, 16, (n, 2, 40), generator=g) * lengths_to_mask(lengths, 40)[:, None]
    text_lengths = torch.randint(3, 7, (n,), generator=g)
    text = torch.randint(1, 12, (n, 6), generator=g) * lengths_to_mask(text_lengths, 6)
    return TokenBatch(codes=codes, lengths=lengths, mask=lengths_to_mask(lengths, 40), frame_rate=50.0,
                      text_tokens=text, text_lengths=text_lengths)


def test_a_tiny_model_learns_eight_utterances_to_zero_errors():
    model, batch = tiny(), batch_of()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    model.train()
    for _ in range(300):
        out = model.loss(batch)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    model.eval()
    hyp = model.greedy(batch.codes, batch.lengths)
    ref = [t[: int(n)].tolist() for t, n in zip(batch.text_tokens, batch.text_lengths)]
    assert hyp == ref
    # the alignment behind the timestamps: the same pieces, in order, inside the utterance, confident
    for spans, pieces, n in zip(model.aligned(batch.codes, batch.lengths), hyp, batch.lengths.tolist()):
        assert [p for p, *_ in spans] == pieces
        starts = [f for _, f, _, _ in spans]
        assert starts == sorted(starts) and all(0 <= f <= e < n for _, f, e, _ in spans)
        assert all(0.5 < c <= 1.0 for *_, c in spans)
    assert model.loss(batch).codebook_accuracy.item() == 1.0


def test_batched_decoding_equals_one_at_a_time():
    model, batch = tiny().eval(), batch_of(1)
    together = model.greedy(batch.codes, batch.lengths)
    alone = [model.greedy(batch.codes[i:i + 1, :, : int(n)])[0] for i, n in enumerate(batch.lengths)]
    assert together == alone
    log_probs, out = model(batch.codes, batch.lengths)
    assert out.tolist() == [math.ceil(int(n) / 2) for n in batch.lengths] and log_probs.shape[1] == max(out.tolist())


def test_augmentations_act_only_in_training_and_fewer_levels_are_read():
    model, batch = tiny(level_dropout=1.0, time_masks=2, time_mask_frames=8), batch_of(2)
    model.eval()
    a = model(batch.codes, batch.lengths)[0]
    assert torch.equal(a, model(batch.codes, batch.lengths)[0])  # eval: no augmentation
    model.train()
    torch.manual_seed(1)
    b = model(batch.codes, batch.lengths)[0]
    assert not torch.allclose(a, b)
    model.eval()
    assert model(batch.codes[:, :1], batch.lengths)[0].shape == a.shape  # one level of two
    with pytest.raises(ValueError, match="max_frames"):
        model(torch.zeros(1, 2, 65, dtype=torch.long), torch.tensor([65]))


def test_lm_fit_trains_the_recognizer_on_token_shards(speech_token_shards, tmp_path):
    from launch.cli import main
    from launch.checkpoints import read_checkpoint

    out = tmp_path / "asr"
    cfg = "--model.model.init_args.cfg."
    assert main(["lm", "fit", "--config", "configs/lm/asr-tiny.yaml", "--data.shards", str(speech_token_shards["tokens"]),
                 "--data.text_model", str(speech_token_shards["spm"]), f"{cfg}cardinality", "32",
                 f"{cfg}text_vocab", "64", f"{cfg}dim", "32", f"{cfg}layers", "1", f"{cfg}heads", "2",
                 f"{cfg}max_frames", "2000", "--data.loader.max_frames", "2000", "--data.loader.batch_size", "4",
                 "--data.num_workers", "0", "--trainer.max_steps", "3", "--trainer.default_root_dir", str(out),
                 "--trainer.logger", "false", "--trainer.callbacks+=ModelCheckpoint", "--trainer.callbacks.dirpath",
                 str(out / "ckpt"), "--trainer.callbacks.save_last", "true"]) == 0
    ckpt = read_checkpoint(out / "ckpt" / "last.ckpt")
    assert ckpt["global_step"] == 3
    assert ckpt["state_dict"]["model._extra_state"]["kind"] == "token_asr"
    # the trained checkpoint transcribes files through the console command (a few steps of training
    # say little: the output only has to be well-formed, the same batched and alone)
    import json

    import numpy as np
    import soundfile as sf

    from launch.commands.transcribe import load_asr, transcribe_codes

    rng = np.random.default_rng(0)
    wavs = []
    for i, seconds in enumerate((0.7, 1.3)):
        wavs.append(tmp_path / f"a{i}.wav")
        sf.write(wavs[-1], (0.2 * rng.standard_normal(int(seconds * 16000))).astype(np.float32), 16000)
    capsys_out = tmp_path / "out.jsonl"
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["transcribe", "--model", str(out / "ckpt" / "last.ckpt"), "--codec",
                     str(speech_token_shards["export"]), "--text-model", str(speech_token_shards["spm"]),
                     "--json", "--timestamps", "--batch-size", "2", *map(str, wavs)]) == 0
    rows = [json.loads(line) for line in buf.getvalue().splitlines()]
    capsys_out.write_text(buf.getvalue())
    assert [r["file"] for r in rows] == [str(w) for w in wavs] and all(isinstance(r["text"], str) for r in rows)
    for r in rows:  # words with times inside the clip
        assert all(0 <= w["start"] < w["end"] <= r["seconds"] + 0.05 and 0 < w["confidence"] <= 1 for w in r["words"])
    model = load_asr(out / "ckpt" / "last.ckpt")
    codes = [torch.randint(0, 32, (model.cfg.num_codebooks, n)) for n in (30, 2500)]  # the second past max_frames
    assert transcribe_codes(model, codes, 2) == [transcribe_codes(model, [c], 1)[0] for c in codes]
    with pytest.raises(ValueError, match="not a speech recognizer"):
        load_asr(_a_valle_checkpoint(tmp_path))
    # eval asr over the fixture's audio shards (their transcripts are the references)
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["eval", "asr", "--model", str(out / "ckpt" / "last.ckpt"), "--codec", str(speech_token_shards["export"]),
                     "--text-model", str(speech_token_shards["spm"]), "--audio", str(speech_token_shards["audio"]),
                     "--max-clips", "4", "--judges", "none", "--out", str(tmp_path / "eval")]) == 0
    results = json.loads((tmp_path / "eval" / "results.json").read_text())
    ours = results["systems"]["ours (codec tokens)"]
    assert results["clips"] == 4 and len(ours["transcripts"]) == 4 and ours["words"] > 0 and ours["wer"] >= 0


def _a_valle_checkpoint(tmp_path):
    from audiolm.models.valle import ValleAR, ValleConfig

    model = ValleAR(ValleConfig(text_vocab=8, cardinality=8, num_codebooks=2, dim=16, layers=1, heads=2))
    path = tmp_path / "valle.ckpt"
    torch.save({"state_dict": {f"model.{k}": v for k, v in model.state_dict().items()}}, path)
    return path


def test_bootstrap_interval_brackets_the_corpus_wer():
    from launch.commands.eval_asr import bootstrap, score

    s = score(["the cat sat on the mat", "a dog", "one two three"], ["the cat sat on a mat", "a dog", "one three"])
    assert s["wer"] == pytest.approx(2 / 11) and s["words"] == 11
    low, high = s["wer_95"]
    assert 0 <= low <= s["wer"] <= high <= 1
    assert bootstrap([(1, 4)] * 5) == (0.25, 0.25)  # no spread, no interval


def test_prefix_beam_search_finds_the_likeliest_labeling_by_brute_force():
    """On a 2-label vocabulary and 6 frames: every labeling's CTC probability from torch's ctc_loss,
    the best one by enumeration, against the beam search without pruning (and its score)."""
    import itertools

    import torch.nn.functional as F

    from audiolm.models.asr import ctc_prefix_beam_search

    torch.manual_seed(0)
    t, blank = 6, 2
    for trial in range(5):
        log_probs = torch.log_softmax(torch.randn(t, 3) * 2, dim=-1).double()
        scores = {}
        for n in range(0, t + 1):
            for labels in itertools.product((0, 1), repeat=n):
                target = torch.tensor([labels], dtype=torch.long) if n else torch.zeros(1, 0, dtype=torch.long)
                nll = F.ctc_loss(log_probs[:, None], target, torch.tensor([t]), torch.tensor([n]), blank=blank,
                                 reduction="sum", zero_infinity=False)
                if torch.isfinite(nll):
                    scores[labels] = -float(nll)
        best = max(scores, key=scores.get)
        ranked = ctc_prefix_beam_search(log_probs, blank, beam=10_000)
        assert tuple(ranked[0][0]) == best and ranked[0][1] == pytest.approx(scores[best], abs=1e-9)
        exact = {tuple(p): s for p, s in ranked}
        for labels, s in scores.items():  # every labeling's total, not only the best
            assert exact[labels] == pytest.approx(s, abs=1e-9)
