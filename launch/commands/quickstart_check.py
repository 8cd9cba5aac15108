"""What the quickstart's models are worth, checked by the quickstart itself.

- :func:`codebook_check` encodes held-out utterances with the exported codec and measures each
  level's code perplexity (``exp`` of the entropy of its code histogram). A level under
  :data:`MIN_PERPLEXITY` has collapsed: its tokens say almost nothing, and every language model
  trained on them learns that the next code is the last one. The quickstart stops there, saying so,
  rather than tokenize the corpus with it.
- :func:`self_check` listens to what the run made, in under a minute: the offline Whisper judge
  transcribes the codec's round trips of a few held-out utterances, the voice clone and the
  continuation (word error rates against their texts), the clone's duration is compared with the
  duration its text takes in the training data, and the clone's voice with the prompt's (speaker
  similarity). Missing judges are reported as such. An empty or truncated clone is a failure,
  named in the summary, never a success.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

MIN_PERPLEXITY = 8.0  # codec.codebook_health's default: a level under it carries almost nothing
SILENCE_DB = -40.0


class CollapsedCodecError(RuntimeError):
    pass


def held_out(val: Path, sample_rate: int, count: int) -> list[tuple[np.ndarray, str]]:
    """Up to ``count`` held-out utterances ``(wav [T] at sample_rate, text)``."""
    from data.datamodule import AudioLoaderConfig, audio_dataset
    from data.webdataset import ShardLoader

    cfg = AudioLoaderConfig(sample_rate=sample_rate, crop_seconds=None, batch_size=1)
    out = []
    for batch in ShardLoader(audio_dataset(str(val), cfg, train=False)):
        out.append((batch.audio[0, 0, : int(batch.lengths[0])].numpy(), batch.texts[0]))
        if len(out) >= count:
            break
    return out


def codebook_check(export: Path, val: Path, count: int = 16, stop: bool = True) -> tuple[list[float], str | None]:
    """Per-level code perplexity of the exported codec on ``count`` held-out utterances, and what is
    wrong with it (``None`` when every level is at or over :data:`MIN_PERPLEXITY`). A collapse raises
    :class:`CollapsedCodecError` when ``stop``, and is printed as a warning otherwise."""
    import torch

    from codec.evaluation.systems import codebook_usage
    from codec.export import load_export

    codec = load_export(export)
    with torch.inference_mode():
        codes = [codec.encode(torch.from_numpy(w)[None, None])[0].numpy() for w, _ in held_out(val, codec.sample_rate, count)]
    ppl = [round(u.perplexity, 1) for u in codebook_usage(codes, codec.cardinality)]
    bad = [k for k, p in enumerate(ppl) if p < MIN_PERPLEXITY]
    print(f"code perplexity per level on {len(codes)} held-out utterances: {ppl} of {codec.cardinality}")
    if not bad:
        return ppl, None
    what = (f"the codec in {export} has collapsed codebooks: level(s) {bad} use fewer than {MIN_PERPLEXITY:g} codes' "
            f"worth (perplexity {[ppl[k] for k in bad]} of {codec.cardinality}) on held-out speech, so its tokens "
            "carry almost nothing and no language model can learn from them")
    if stop:
        raise CollapsedCodecError(
            f"{what}. Not tokenizing. Train it again (delete {export.parent} and rerun), with more batches "
            "(--codec-steps) or a lower model.optim.lr in configs/codec/tiny.yaml")
    print(f"warning: {what}; going on (--check warn)")
    return ppl, what


def _wer(asr, wav16: np.ndarray, text: str) -> tuple[float, str]:
    from data.transcripts import ErrorCounts

    heard = asr(wav16)
    counts = ErrorCounts()
    counts.add(text, heard)
    return float(counts.wer), heard


def _silent_fraction(wav: np.ndarray, sr: int) -> float:
    hop = sr // 50
    n = wav.size // hop
    if n == 0:
        return 1.0
    rms = np.sqrt(np.mean(wav[: n * hop].reshape(n, hop) ** 2, axis=1) + 1e-12)
    return float(np.mean(20 * np.log10(rms / max(float(rms.max()), 1e-9)) < SILENCE_DB))


def expected_seconds(ar_ckpt: Path, text: str, encode, frame_rate: float) -> float | None:
    """How long ``text`` takes in the AR model's training data (its stored frames per text token)."""
    from audiolm.models.valle_generate import load_stage

    stats = getattr(load_stage(ar_ckpt), "length_stats", None)
    if stats is None or not stats.measured:
        return None
    return len(encode(text)) * stats.mean / frame_rate


def self_check(layout, prompt: Path, prompt_text: str, clone: Path, clone_text: str,
               continuation: Path, count: int = 6) -> dict[str, Any]:
    """Listen to the run's outputs (see the module doc); prints a summary and returns it as a dict."""
    import soundfile as sf
    import torch

    from audiolm.evaluation.asr import describe, load_transcriber
    from audiolm.evaluation.evaluate import to_16k
    from audiolm.evaluation.speaker import cosine, load_speaker_encoder
    from codec.export import load_export
    from launch.commands.speak import text_encoder

    asr, why = load_transcriber("whisper-tiny")
    spk, spk_why = load_speaker_encoder()
    report: dict[str, Any] = {"judge": describe(asr, why), "speaker_encoder": "resemblyzer" if spk else spk_why,
                              "failures": []}
    codec = load_export(layout.codec_export)
    sr = int(codec.sample_rate)

    if asr is not None:  # the codec's round trip on held-out voices, beside the originals
        orig, rec = [], []
        for wav, text in held_out(layout.val_shards, sr, count):
            with torch.inference_mode():
                y = codec.decode(codec.encode(torch.from_numpy(wav)[None, None]))[0, 0, : wav.size].numpy()
            orig.append(_wer(asr, to_16k(wav, sr), text)[0])
            rec.append(_wer(asr, to_16k(np.clip(y, -1, 1), sr), text)[0])
        report["codec"] = {"utterances": len(rec), "wer_original": float(np.mean(orig)) if orig else None,
                           "wer_round_trip": float(np.mean(rec)) if rec else None,
                           "kbps": codec.bandwidth(codec.num_codebooks)}

    def clip(path: Path) -> tuple[np.ndarray, int] | None:
        if not path.exists():
            return None
        wav, rate = sf.read(path, dtype="float32", always_2d=True)
        return wav.mean(axis=1), rate

    prompt_audio = clip(prompt)
    got = clip(clone)
    entry: dict[str, Any] = {"path": str(clone), "text": clone_text}
    if got is None or got[0].size == 0:
        report["failures"].append(f"the voice clone {clone} is missing or empty")
    else:
        wav, rate = got
        entry["seconds"] = round(wav.size / rate, 2)
        encode = text_encoder(str(layout.phonemes), "en-us")
        expect = expected_seconds(layout.stage_ckpt("valle-ar"), clone_text, encode, codec.frame_rate)
        if expect:
            entry["expected_seconds"] = round(expect, 2)
            ratio = entry["seconds"] / expect
            entry["length_ratio"] = round(ratio, 2)
            if not 0.45 <= ratio <= 2.2:  # generation bounds it to 0.5-2x: outside is a broken bound
                report["failures"].append(f"the voice clone lasts {entry['seconds']} s where its text takes about "
                                          f"{expect:.1f} s in the training data ({ratio:.2f}x)")
        entry["silent_fraction"] = round(_silent_fraction(wav, rate), 3)
        if asr is not None:
            entry["wer"], entry["heard"] = _wer(asr, to_16k(wav, rate), clone_text)
        if spk is not None and prompt_audio is not None:
            a, b = spk.embed(to_16k(wav, rate)), spk.embed(to_16k(*prompt_audio))
            entry["speaker_similarity"] = round(cosine(a, b), 3) if a is not None and b is not None else None
    report["clone"] = entry

    got = clip(continuation)
    entry = {"path": str(continuation)}
    if got is None or got[0].size == 0:
        report["failures"].append(f"the continuation {continuation} is missing or empty")
    else:
        wav, rate = got
        entry["seconds"] = round(wav.size / rate, 2)
        entry["silent_fraction"] = round(_silent_fraction(wav, rate), 3)
        if asr is not None:
            entry["heard"] = asr(to_16k(wav, rate))
            entry["words_heard"] = len(entry["heard"].split())
        if spk is not None and prompt_audio is not None:
            a, b = spk.embed(to_16k(wav, rate)), spk.embed(to_16k(*prompt_audio))
            entry["speaker_similarity"] = round(cosine(a, b), 3) if a is not None and b is not None else None
    report["continuation"] = entry
    report["prompt"] = {"path": str(prompt), "text": prompt_text}
    print_check(report)
    return report


def _pct(x: float | None) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.0f}%"


def print_check(report: dict[str, Any]) -> None:
    print(f"\nwhat the models say (judge: {report['judge']}):")
    c = report.get("codec")
    if c:
        print(f"  codec round trip at {c['kbps']:g} kbps, {c['utterances']} held-out voices: word error rate "
              f"{_pct(c['wer_round_trip'])} (the originals: {_pct(c['wer_original'])})")
    cl = report["clone"]
    if "seconds" in cl:
        exp = f" (its text takes about {cl['expected_seconds']} s in training)" if "expected_seconds" in cl else ""
        sim = f", speaker similarity to the prompt {cl['speaker_similarity']}" if cl.get("speaker_similarity") is not None else ""
        print(f"  voice clone: {cl['seconds']} s{exp}; heard {cl.get('heard', 'n/a')!r}, word error rate "
              f"{_pct(cl.get('wer'))}{sim}")
    co = report["continuation"]
    if "seconds" in co:
        print(f"  continuation: {co['seconds']} s, {_pct(co['silent_fraction'])} of it silent; heard "
              f"{co.get('heard', 'n/a')!r}")
    for f in report["failures"]:
        print(f"  FAILED: {f}")
