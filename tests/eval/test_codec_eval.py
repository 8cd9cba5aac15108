"""`codeclm eval codec`: metrics that order codecs the way their fidelity does, alignment of a
delayed codec, real Opus and Codec2 baselines on the same clips, codebook statistics, the WER of
what Whisper hears in each reconstruction, and the table / JSON / HTML outputs, on espeak speech."""

from __future__ import annotations

import dataclasses
import json
import math
import re

import numpy as np
import pytest
import soundfile as sf
import torch

from codec.evaluation.report import text_report, write_html, write_json
from codec.evaluation.run import CodecEvalConfig, evaluate_codec
from codec.evaluation.systems import codebook_usage
from codec.tokenizer import AudioTokenizer


class ResidualPCM(torch.nn.Module):
    """A real (if bulky) residual scalar codec: one code per sample and level, level k quantizes
    what levels < k left over, 256 steps each, so every level adds 8 bits of precision; ``delay``
    samples of latency, as a streaming codec has."""

    sample_rate, channels, cardinality, codec_id = 16000, 1, 256, "residual-pcm"

    def __init__(self, levels: int = 2, delay: int = 0) -> None:
        super().__init__()
        self.num_codebooks, self.delay = levels, delay
        self.frame_rate = float(self.sample_rate)

    def step(self, k: int) -> float:
        return 2.0 / 256 ** (k + 1)

    def encode(self, wav: torch.Tensor, num_codebooks: int | None = None) -> torch.Tensor:
        x = torch.nn.functional.pad(wav.mean(dim=1), (self.delay, 0))[..., : wav.shape[-1]]  # [B, T]
        residual, codes = x.clamp(-1, 1 - 1e-6) + 1.0, []
        for k in range(num_codebooks or self.num_codebooks):
            q = torch.floor(residual / self.step(k)).clamp(0, 255)
            codes.append(q.long())
            residual = residual - q * self.step(k)
        return torch.stack(codes, dim=1)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        x = sum((codes[:, k].double() + 0.5) * self.step(k) for k in range(codes.shape[1])) - 1.0
        return x.float()[:, None]


def row(result, system: str, kbps: float):
    return next(r for r in result.rows if r.system == system and (r.kbps or r.target_kbps) == pytest.approx(kbps))


def only_ours(**kw) -> CodecEvalConfig:
    return CodecEvalConfig(**{"bandwidths": (128.0, 256.0), "max_clips": 4, "clip_seconds": 3.0, "opus": False,
                              "codec2": False, "progress": False, **kw})


def test_metrics_rank_a_finer_codec_higher_and_see_through_its_delay(eval_clips):
    codec = ResidualPCM(levels=2, delay=37)
    assert isinstance(codec, AudioTokenizer)
    result = evaluate_codec(codec, "pcm", eval_clips, only_ours())
    coarse, fine = row(result, "ours", 128.0), row(result, "ours", 256.0)
    assert len(fine.clips) == 4 and result.unavailable_metrics == {"wer": "no recognizer given"}
    assert fine.delays == [37] * 4  # found and removed before measuring
    # 16-bit residual PCM is transparent; 8 bits is audibly worse; every metric agrees on the order
    assert fine.mean("si_sdr") > 60 and fine.mean("pesq") > 4.4 and fine.mean("stoi") > 0.999
    assert fine.mean("visqol") > 4.0
    assert coarse.mean("si_sdr") < fine.mean("si_sdr") - 30
    for metric in ("pesq", "stoi", "visqol", "si_sdr"):
        assert coarse.mean(metric) < fine.mean(metric), metric
    for metric in ("mel", "stft"):
        assert coarse.mean(metric) > fine.mean(metric), metric
    # the 8-bit level's SI-SDR is what uniform quantization theory predicts (6.02 dB a bit), within a few dB
    clip = eval_clips[0].wav.mean(axis=0)[: 3 * 16000]
    expected = 10 * math.log10(np.mean(clip**2) / ((2 / 256) ** 2 / 12))
    assert abs(coarse.clips[0]["si_sdr"] - expected) < 3, (coarse.clips[0]["si_sdr"], expected)


class Float32Halves(torch.nn.Module):
    """A lossless codec: the bits of each float32 sample as two 16-bit codes, high half first, so
    both levels give the input back bit for bit (Whisper's int8 decoding can turn on a change of
    1e-7 in a borderline clip: a perfect codec must be exact)."""

    sample_rate, channels, cardinality, codec_id, num_codebooks = 16000, 1, 65536, "float32-halves", 2
    frame_rate = 16000.0

    def encode(self, wav: torch.Tensor, num_codebooks: int | None = None) -> torch.Tensor:
        bits = wav.mean(dim=1).contiguous().view(torch.int32).long() & 0xFFFFFFFF  # [B, T]
        return torch.stack([bits >> 16, bits & 0xFFFF], dim=1)[:, : num_codebooks or 2]

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        bits = codes[:, 0] << 16 | (codes[:, 1] if codes.shape[1] > 1 else 0)
        bits = torch.where(bits >= 2**31, bits - 2**32, bits)
        return bits.to(torch.int32).view(torch.float32)[:, None]


class Silence(Float32Halves):
    """Encodes like :class:`Float32Halves` and decodes to silence: nothing of the speech survives."""

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        return torch.zeros(codes.shape[0], 1, codes.shape[-1])


def test_wer_of_reconstructions_is_heard_by_whisper(eval_clips, whisper, tmp_path):
    """A perfect codec's WER is the original's; a codec that outputs silence deletes every word. A
    clip without text is scored against what Whisper hears in its original."""
    clips = [c for c in eval_clips if c.text and 1.5 < c.seconds < 5][:2]
    cfg = CodecEvalConfig(bandwidths=(512.0,), max_clips=2, clip_seconds=10.0, opus=False, codec2=False,
                          skip_metrics=("pesq", "stoi", "visqol"), examples=1, progress=False)
    perfect = evaluate_codec(Float32Halves(), "lossless", clips, cfg, asr=whisper)
    original, ours = perfect.rows[0], row(perfect, "ours", 512.0)
    assert ours.mean("mel") == ours.mean("stft") == 0.0  # the output is the input
    assert original.system == "original" and perfect.wer_references == {"text": 2} and "wer" not in perfect.unavailable_metrics
    assert original.errors.words == sum(len(c.text.split()) for c in clips) and original.mean("wer") < 0.5
    assert [c["transcript"] for c in ours.clips] == [c["transcript"] for c in original.clips]
    assert ours.mean("wer") == original.mean("wer") and ours.errors == original.errors

    no_text = [clips[0], dataclasses.replace(clips[1], text="")]
    silent = evaluate_codec(Silence(), "silence", no_text, cfg, asr=whisper)
    s = row(silent, "ours", 512.0)
    assert silent.wer_references == {"text": 1, "original transcript": 1}
    assert s.mean("wer") == 1.0 and [c["transcript"] for c in s.clips] == ["", ""]
    assert silent.rows[0].errors.utterances == 1  # the original's own WER counts only clips with a text
    assert s.errors.words == len(clips[0].text.split()) + len(original.clips[1]["transcript"].split())

    table = text_report(perfect)  # the original row: 16-bit PCM, no signal metrics, its WER
    assert re.search(r"^original\s+256\s+256\s+-\s+-\s+-\s+-\s+-\s+-\s+\d+\.\d\s+2\s*$", table, re.M), table
    assert "WER judge: Whisper tiny.en" in table and "references: 2 clips against their text" in table
    saved = json.loads(write_json(perfect, tmp_path / "results.json").read_text())
    assert saved["asr"].startswith("Whisper tiny.en") and saved["rows"][0]["system"] == "original"
    saved_ours = next(r for r in saved["rows"] if r["system"] == "ours")
    assert saved_ours["mean"]["wer"] == pytest.approx(ours.mean("wer")) and saved_ours["wer_counts"]["utterances"] == 2
    assert [c["transcript"] for c in saved_ours["per_clip"]] == [c["transcript"] for c in ours.clips]
    page = write_html(perfect, tmp_path).read_text()
    assert "WER judge: Whisper tiny.en" in page and page.count("heard: ") == 2  # original and ours, one example


def test_codebook_usage_and_entropy_per_level():
    rng = np.random.default_rng(0)
    uniform = rng.integers(0, 16, size=(1, 4096))
    constant = np.zeros((1, 4096), dtype=np.int64)
    two = np.tile(np.array([3, 9]), 2048)[None]
    (u,), (c,), (t,) = (codebook_usage([x], 16) for x in (uniform, constant, two))
    assert u.used == 16 and u.entropy_bits == pytest.approx(4.0, abs=0.01) and u.usage == 1.0
    assert c.used == 1 and c.entropy_bits == 0.0 and c.perplexity == 1.0
    assert t.used == 2 and t.entropy_bits == pytest.approx(1.0) and t.perplexity == pytest.approx(2.0)
    levels = codebook_usage([np.stack([uniform[0], constant[0]]), np.stack([uniform[0][:100], two[0][:100]])], 16)
    assert [lv.level for lv in levels] == [0, 1] and levels[1].used == 3  # codes of every clip together


def test_opus_and_codec2_baselines_run_on_the_same_clips(eval_clips, opus_tools, codec2_tools):
    result = evaluate_codec(ResidualPCM(1), "pcm", eval_clips,
                            CodecEvalConfig(bandwidths=(3.0, 6.0, 12.0), max_clips=3, clip_seconds=3.0,
                                            skip_metrics=("visqol",), progress=False))
    assert result.tools["opus"].lower().startswith("opusenc") and "c2enc" in result.tools["codec2"]
    below = row(result, "opus", 3.0)
    assert below.kbps is None and "no lower than 6" in below.note and not below.clips
    o6, o12, c2 = row(result, "opus", 6.0), row(result, "opus", 12.0), row(result, "codec2", 3.2)
    for r in (o6, o12, c2):
        assert [c["clip"] for c in r.clips] == result.clip_keys, r.label  # the same clips for every system
        assert not r.failures, r.failures
    # Opus at speech bitrates on espeak: clearly intelligible, and better with more bits
    assert o6.mean("pesq") > 1.8 and o6.mean("stoi") > 0.85
    assert o12.mean("pesq") > o6.mean("pesq") and o12.mean("mel") < o6.mean("mel")
    assert c2.mean("stoi") > 0.6 and 1.0 <= c2.mean("pesq") < o12.mean("pesq")


def test_reports_hold_every_row_clip_and_example(eval_clips, tmp_path):
    result = evaluate_codec(ResidualPCM(2), "pcm", eval_clips, only_ours(max_clips=3, examples=2,
                                                                           skip_metrics=("visqol",)))
    table = text_report(result)
    for kbps in (128, 256):  # a measured row per bitrate; the absent baselines are rows of n/a with the reason
        assert re.search(rf"^ours\s+{kbps}\s+{kbps}\s+\d+\.\d+\s+\d+\.\d+", table, re.M), table
        assert re.search(rf"^opus\s+{kbps}\s+n/a", table, re.M) and f"opus@{kbps}: n/a (absent: disabled" in table
    assert re.search(r"^1\s+256/256\s+1\.000", table, re.M)  # level 1 of residual PCM uses every code
    saved = json.loads(write_json(result, tmp_path / "results.json").read_text())
    assert saved["clips"] == result.clip_keys and list(saved["unavailable_metrics"]) == ["visqol", "wer"]
    assert saved["metrics"][-1] == "wer" and saved["asr"] == "none (no recognizer given)"
    assert not any(r["system"] == "original" for r in saved["rows"])  # no judge: no WER reference row
    ours = [r for r in saved["rows"] if r["system"] == "ours"]
    assert [len(r["per_clip"]) for r in ours] == [3, 3]
    assert ours[1]["mean"]["pesq"] == pytest.approx(row(result, "ours", 256.0).mean("pesq"))
    assert [u["level"] for u in saved["codebook_usage"]] == [0, 1]
    opus = [r for r in saved["rows"] if r["system"] == "opus"]
    assert opus and all(r["note"].startswith("disabled") or "absent" in r["note"] for r in opus)
    html_path = write_html(result, tmp_path)
    page = html_path.read_text()
    players = re.findall(r"<audio controls preload='none' src='(examples/[^']+)'>", page)
    assert len(players) == 2 * 3  # two examples: original and ours at two bitrates
    assert page.count("data:image/png;base64,") == len(players)
    for src in players:
        wav, sr = sf.read(tmp_path / src)
        assert sr == 16000 and 16000 < wav.size <= 3 * 16000 and np.abs(wav).max() > 0.01


def test_cli_evaluates_an_exported_codec_and_counts_unreadable_files(speech_token_shards, tmp_path, capsys):
    from launch.cli import main

    audio = tmp_path / "audio" / "spk1"
    audio.mkdir(parents=True)
    from data.clips import iter_clips

    for i, clip in enumerate(list(iter_clips(str(speech_token_shards["audio"])))[:2]):
        sf.write(audio / f"utt{i}.wav", clip.wav.T, clip.sample_rate)
    (audio / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot audio")
    out = tmp_path / "report"
    rc = main(["eval", "codec", "--codec", str(speech_token_shards["export"]), "--audio", str(tmp_path / "audio"),
               "--bandwidths", "0.5,1", "--max-clips", "4", "--clip-seconds", "2", "--out", str(out),
               "--skip-metrics", "visqol", "--no-opus", "--no-codec2", "--encodec", "none", "--quiet"])
    printed = capsys.readouterr().out
    assert rc == 0
    saved = json.loads((out / "results.json").read_text())
    assert len(saved["clips"]) == 2 and sum(saved["skipped"].values()) == 1
    assert (out / "report.html").exists() and re.search(r"^ours\s+0\.5\s", printed, re.M)
    assert saved["tools"]["encodec24k"].startswith("absent")
    # the default judge hears every row; without the eval extra WER is n/a with what to install
    if saved["asr"].startswith("Whisper tiny.en"):
        assert saved["rows"][0]["system"] == "original" and "wer" not in saved["unavailable_metrics"]
        ours = [r for r in saved["rows"] if r["system"] == "ours"]
        assert ours and all(r["wer_counts"]["utterances"] == 2 for r in ours)
        assert saved["wer_references"] == {"original transcript": 2}  # wav files without a .txt beside them
    else:
        assert "pip install 'codeclm[eval]'" in saved["unavailable_metrics"]["wer"]
    assert "WER judge: " in printed
    with pytest.raises(SystemExit) as e:
        main(["eval", "codec", "--codec", "x", "--audio", "y", "--bandwidths", "six"])
    assert e.value.code == 2 and "comma-separated kbps" in capsys.readouterr().err


def test_a_clip_too_short_for_visqol_is_a_counted_failure_with_the_reason():
    from codec.evaluation.metrics import MetricSet

    t = np.arange(8000) / 16000  # 0.5 s
    ref = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    values, errors, _ = MetricSet(("pesq", "stoi")).measure(ref, ref.copy(), 16000)
    assert values["visqol"] is None and "ViSQOL needs at least 0.75 s" in errors["visqol"]
    assert values["si_sdr"] > 60  # the other metrics still measure the clip


class FirstLevelOnly:
    """A second decoder of ResidualPCM's tokens that reads only their first level: its rows at
    16 bits must measure what the codec's own 8-bit rows measure. Its ``encode`` must never run:
    the rows decode the codes of the ``ours`` rows."""

    def __init__(self, codec: ResidualPCM) -> None:
        self.codec, self.encoded = codec, 0
        for name in ("sample_rate", "channels", "cardinality", "codec_id", "num_codebooks", "frame_rate"):
            setattr(self, name, getattr(codec, name))

    def encode(self, wav, num_codebooks=None):
        self.encoded += 1
        return self.codec.encode(wav, num_codebooks)

    def decode(self, codes):
        return self.codec.decode(codes[:, :1])


def test_second_decoder_rows_decode_the_same_tokens(eval_clips):
    codec = ResidualPCM(levels=2)
    second = FirstLevelOnly(codec)
    result = evaluate_codec(codec, "pcm", eval_clips, only_ours(), decoders={"first": second})
    assert second.encoded == 0
    assert [r.system for r in result.rows if r.system.startswith("ours")] == ["ours", "ours+first"] * 2
    ours8, ours16, first16 = row(result, "ours", 128.0), row(result, "ours", 256.0), row(result, "ours+first", 256.0)
    assert len(first16.clips) == 4
    for metric in ("si_sdr", "pesq", "stoi", "mel"):
        assert first16.mean(metric) == pytest.approx(ours8.mean(metric), rel=1e-6), metric
    assert first16.mean("si_sdr") < ours16.mean("si_sdr") - 30
