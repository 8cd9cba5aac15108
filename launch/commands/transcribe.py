"""``codeclm transcribe``: speech to text with a recognizer trained on the codec's tokens.

    codeclm transcribe --model runs/quickstart/lm/asr/run/checkpoints/last.ckpt \\
        --codec runs/quickstart/codec/export a.wav b.flac DIR [--text-model spm.model] [--json] [--batch-size 16]

Each file (a folder: every audio file in it, sorted) is read with the checks of every command,
resampled to the codec's rate and encoded; the recognizer (``configs/lm/asr-*.yaml``, trained
with ``codeclm lm fit``) decodes the codes by greedy CTC (or ``--beam N``: CTC prefix beam
search), several files per batch (batched and one at a time give the same text). Audio longer than the model's ``max_frames`` is cut into
windows of that length, each transcribed on its own and the texts joined (a word cut by a window
edge may be misheard). The text model defaults to the ``data.text_model`` of the run's config.
Prints ``FILE<TAB>TEXT`` lines (``--json``: one object a line with the pieces and timings) and
the real-time factor.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("transcribe", help="speech to text with a recognizer trained on codec tokens",
                       description="Transcribe audio files with a TokenASR model (configs/lm/asr-*.yaml).")
    p.add_argument("inputs", nargs="+", help="audio files or folders of them")
    p.add_argument("--model", required=True, metavar="CKPT", help="the recognizer's checkpoint (`codeclm lm fit`)")
    p.add_argument("--codec", required=True, metavar="SPEC", help="the codec its token shards were made with")
    p.add_argument("--text-model", default=None, metavar="SPM",
                   help="sentencepiece .model (default: data.text_model of the run's config.yaml)")
    p.add_argument("--batch-size", type=int, default=16, help="files decoded together (default 16)")
    p.add_argument("--beam", type=int, default=1,
                   help="CTC prefix beam search of this width (default 1: greedy, the fast path)")
    p.add_argument("--json", action="store_true", help="one JSON object per file")
    p.add_argument("--timestamps", action="store_true",
                   help="each word's start and end (seconds) and confidence, from the greedy CTC alignment")
    p.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    p.set_defaults(func=run)


def load_asr(ckpt: str | Path, device: str = "cpu"):
    """The :class:`~audiolm.models.asr.TokenASR` of a ``codeclm lm fit`` checkpoint (its config is
    in the weights), in eval mode; read without pickle."""
    import torch

    from audiolm.models.asr import ASRConfig, TokenASR

    path = Path(ckpt)
    if not path.is_file():
        raise FileNotFoundError(f"no recognizer checkpoint at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    except Exception as e:  # a user's file: one line
        raise ValueError(f"{path} is not a readable `codeclm lm fit` checkpoint ({type(e).__name__}: {e})") from None
    weights = {k[len("model."):]: v for k, v in state.items() if k.startswith("model.")}
    extra = weights.get("_extra_state")
    if not isinstance(extra, dict) or extra.get("kind") != TokenASR.kind:
        kind = extra.get("kind") if isinstance(extra, dict) else "unknown"
        raise ValueError(f"{path} holds a {kind} model, not a speech recognizer (train one with configs/lm/asr-tiny.yaml)")
    model = TokenASR(ASRConfig(**extra["config"]))
    model.load_state_dict(weights)
    return model.to(device).eval()


def _files(inputs: list[str]) -> list[Path]:
    files: list[Path] = []
    for name in inputs:
        p = Path(name)
        if p.is_dir():
            found = sorted(q for q in p.rglob("*") if q.suffix.lower() in AUDIO_SUFFIXES)
            if not found:
                raise FileNotFoundError(f"{p} holds no audio files ({', '.join(AUDIO_SUFFIXES)})")
            files += found
        elif p.is_file():
            files.append(p)
        else:
            raise FileNotFoundError(f"{p} does not exist")
    return files


def _text_model(a: argparse.Namespace) -> str:
    if a.text_model:
        return a.text_model
    from launch.commands.generate_music import find_run_config, load_run_config

    config = load_run_config(find_run_config(Path(a.model)))
    found = (config.get("data") or {}).get("text_model")
    if not found:
        raise ValueError("the run's config names no data.text_model: pass --text-model spm.model")
    return found


def transcribe_codes(model, codes_list: list, batch_size: int, beam: int = 1) -> list[list[int]]:
    """Piece ids of each ``[K, T]`` codes tensor; windows of ``max_frames`` for long ones."""
    import torch

    w = model.cfg.max_frames
    pieces: list[list[int]] = [[] for _ in codes_list]
    windows = [(i, c[:, s:s + w]) for i, c in enumerate(codes_list) for s in range(0, max(1, c.shape[-1]), w)]
    for start in range(0, len(windows), batch_size):
        group = windows[start:start + batch_size]
        t = max(c.shape[-1] for _, c in group)
        codes = torch.zeros(len(group), group[0][1].shape[0], t, dtype=torch.long)
        for row, (_, c) in enumerate(group):
            codes[row, :, : c.shape[-1]] = c
        lengths = torch.tensor([c.shape[-1] for _, c in group])
        device = next(model.parameters()).device
        decode = model.greedy if beam <= 1 else (lambda c, n: model.beam_search(c, n, beam))
        for (i, _), hyp in zip(group, decode(codes.to(device), lengths.to(device))):
            pieces[i] += hyp
    return pieces


def word_times(model, codes, text, frame_rate: float) -> list[dict]:
    """Words of ``codes [K, T]`` with start/end seconds and confidence: the greedy CTC alignment's
    pieces grouped at sentencepiece word starts (``▁``)."""
    import torch

    words: list[dict] = []
    w = model.cfg.max_frames
    for start in range(0, max(1, codes.shape[-1]), w):
        window = codes[:, start:start + w]
        device = next(model.parameters()).device
        for piece, first, last, conf in model.aligned(window[None].to(device))[0]:
            name = text.sp.id_to_piece(piece) if piece > 3 else ""
            if not name:
                continue
            t0, t1 = (start + first) / frame_rate, (start + last + 1) / frame_rate
            if name.startswith("\u2581") or not words:
                words.append({"word": name.lstrip("\u2581"), "start": t0, "end": t1, "conf": [conf]})
            else:
                words[-1]["word"] += name
                words[-1]["end"] = t1
                words[-1]["conf"].append(conf)
    return [{"word": x["word"], "start": round(x["start"], 3), "end": round(x["end"], 3),
             "confidence": round(sum(x["conf"]) / len(x["conf"]), 3)} for x in words if x["word"]]


def run(a: argparse.Namespace) -> int:
    import torch

    from codec.load import load_tokenizer
    from data.audio import read_audio, resample, to_channels
    from data.text import SpmTokenizer

    if a.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {a.batch_size}")
    files = _files(a.inputs)
    device = a.device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = load_asr(a.model, device)
    text = SpmTokenizer(_text_model(a))
    if text.vocab_size > model.cfg.text_vocab:
        raise ValueError(f"the text model has {text.vocab_size} pieces, the recognizer {model.cfg.text_vocab}: "
                         "give the sentencepiece model it was trained with")
    tokenizer = load_tokenizer(a.codec, device=device)
    if tokenizer.cardinality != model.cfg.cardinality or tokenizer.num_codebooks < model.cfg.num_codebooks:
        raise ValueError(f"codec {a.codec} ({tokenizer.num_codebooks} x {tokenizer.cardinality} codes) is not the "
                         f"recognizer's ({model.cfg.num_codebooks} x {model.cfg.cardinality})")
    t0 = time.perf_counter()
    codes_list, seconds = [], []
    for f in files:
        wav, sr = read_audio(f)
        audio = to_channels(resample(torch.from_numpy(wav), sr, tokenizer.sample_rate), tokenizer.channels)
        with torch.inference_mode():
            codes_list.append(tokenizer.encode(audio[None].to(device), model.cfg.num_codebooks)[0].cpu())
        seconds.append(audio.shape[-1] / tokenizer.sample_rate)
    with torch.inference_mode():
        pieces = transcribe_codes(model, codes_list, a.batch_size, a.beam)
    took = time.perf_counter() - t0
    for n, (f, ids, s) in enumerate(zip(files, pieces, seconds)):
        words = text.decode(ids)
        row = {"file": str(f), "text": words, "pieces": ids, "seconds": round(s, 3)}
        if a.timestamps:
            with torch.inference_mode():
                row["words"] = word_times(model, codes_list[n], text, float(tokenizer.frame_rate))
        if a.json:
            print(json.dumps(row))
        else:
            print(f"{f}\t{words}")
            for x in row.get("words", []):
                print(f"\t{x['start']:7.2f} {x['end']:7.2f}  {x['confidence']:.2f}  {x['word']}")
    total = sum(seconds)
    print(f"{len(files)} file(s), {total:.1f} s of audio in {took:.2f} s ({total / max(took, 1e-9):.0f}x real time, "
          "codec encoding included)", file=sys.stderr)
    return 0
