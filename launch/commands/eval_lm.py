"""``codeclm eval tts`` and ``codeclm eval continue``: zero-shot cloning and continuation, measured.

    codeclm eval tts --codec SPEC --valle-ar AR.ckpt --valle-nar NAR.ckpt --prompts SHARDS \\
        [--text-model phonemes.json] [--max-pairs 20] [--prompt-seconds 3] [--out runs/eval/tts]
    codeclm eval continue --codec SPEC --coarse C.ckpt --fine F.ckpt [--semantic S.ckpt --semantic-model DIR] \\
        --prompts SHARDS [--max-items 20] [--prompt-seconds 3] [--seconds S] [--out runs/eval/continue]

The models load and generate exactly as in ``codeclm generate clone`` / ``generate continue``.
``--prompts`` are audio shards (or a folder of audio with ``.txt`` transcripts in speaker folders)
whose samples carry a speaker id and a text. WER/CER come from the judge ``--asr`` names (Whisper
tiny.en by default, or pocketsphinx; ``none`` leaves WER out), speaker similarity from resemblyzer
(the ``eval`` extra ships every model: nothing is downloaded); either is n/a with the reason when
its package is missing.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from launch.commands.codec import decoder_arg
from launch.commands.asr_option import add_asr_argument
from launch.commands.generate_clone import length_args
from launch.commands.speak import DEFAULT_TEXT_MODEL


def _metrics(text: str) -> tuple[str, ...]:
    names = tuple(x.strip() for x in text.split(",") if x.strip())
    bad = [n for n in names if n not in ("wer", "similarity")]
    if bad:
        raise argparse.ArgumentTypeError(f"unknown metric {bad[0]!r}: choose from wer, similarity")
    return names


def _common(p: argparse.ArgumentParser, out: str, items: str, codec: bool = True) -> None:
    if codec:
        p.add_argument("--codec", required=True, metavar="SPEC", help="the codec the LM was trained on")
        decoder_arg(p)
    p.add_argument("--prompts", required=True, help="audio shards (or a folder) with speaker ids and texts")
    p.add_argument(f"--max-{items}", dest="max_items", type=int, default=20, help=f"{items} evaluated (default 20)")
    p.add_argument("--max-utterances", type=int, default=2000, help="utterances read from --prompts (default 2000)")
    p.add_argument("--prompt-seconds", type=float, default=3.0, help="prompt length (default 3 s)")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top-k", type=int, default=None)
    p.add_argument("--top-p", type=float, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=out, help=f"folder for results.json and report.html (default {out})")
    p.add_argument("--examples", type=int, default=3, help="items with audio in the report (default 3)")
    p.add_argument("--skip-metrics", type=_metrics, default=(), metavar="NAME,...", help="wer and/or similarity")
    add_asr_argument(p, "the judge of WER/CER")
    p.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tts", help="zero-shot voice cloning (VALL-E): WER/CER, speaker similarity, failures")
    _common(p, "runs/eval/tts", "pairs")
    p.add_argument("--valle-ar", required=True, help="AR stage checkpoint (.ckpt from `codeclm lm fit`)")
    p.add_argument("--valle-nar", required=True, help="NAR stage checkpoint")
    p.add_argument("--text-model", default=DEFAULT_TEXT_MODEL, help="phonemes.json or spm .model of the LM")
    p.add_argument("--voice", default="en-us", help="espeak-ng voice for phonemizing (phoneme text models)")
    p.add_argument("--max-seconds", type=float, default=20.0, help="longest speech generated (default 20)")
    length_args(p)
    p.set_defaults(func=cmd_tts)

    p = sub.add_parser("continue", help="speech continuation (AudioLM stages): WER/CER, similarity, failures")
    _common(p, "runs/eval/continue", "items", codec=False)
    from launch.commands.generate_continue import stage_args

    stage_args(p)  # --codec, the stages, or --stack
    p.add_argument("--seconds", type=float, default=None,
                   help="continuation length (default: as long as the rest of each real utterance)")
    p.set_defaults(func=cmd_continue)


def _clips(a: argparse.Namespace):
    from itertools import islice

    from data.clips import iter_clips

    if a.max_items < 1 or a.prompt_seconds <= 0:
        raise ValueError("--max-pairs/--max-items must be >= 1 and --prompt-seconds > 0")
    return list(islice(iter_clips(a.prompts), a.max_utterances))


def _finish(result, a: argparse.Namespace, title: str) -> int:
    from audiolm.evaluation.report import text_report, write_outputs

    print(text_report(result, title))
    if result.skipped:
        print(f"skipped {len(result.skipped)} items: {result.skipped[0]['skipped']}" + (" ..." if len(result.skipped) > 1 else ""))
    json_path, html_path = write_outputs(result, Path(a.out), title)
    print(f"\nwrote {json_path} and {html_path}")
    return 0


def cmd_tts(a: argparse.Namespace) -> int:
    import torch

    from audiolm.evaluation.evaluate import Generated, SkipItem, evaluate_tts
    from audiolm.evaluation.pairs import clone_pairs
    from audiolm.sampling import SamplingConfig
    from data.audio import resample
    from launch.commands.generate_clone import length_config
    from launch.commands.speak import clone_speech, load_clone_models, text_ids

    models = load_clone_models(a.codec, a.valle_ar, a.valle_nar, a.text_model, a.voice, a.device, decoder=a.decoder)
    pairs = clone_pairs(_clips(a), a.max_items, a.prompt_seconds)
    sampling = SamplingConfig(temperature=a.temperature, top_k=a.top_k, top_p=a.top_p, seed=a.seed)
    sr_codec = int(models.codec.sample_rate)
    max_text = models.ar.cfg.max_text
    lengths = length_config(a)

    def generate(prompt, sr, prompt_text, text) -> Generated:
        ids = text_ids(models, text)
        pids = text_ids(models, prompt_text) if prompt_text else None
        if pids is not None and pids.numel() + ids.numel() > max_text:
            pids = None  # the target alone must fit; the prompt's words are a help, not a need
        if ids.numel() > max_text:
            raise SkipItem(f"text of {ids.numel()} tokens exceeds the AR model's max_text {max_text}")
        wav = resample(torch.from_numpy(prompt)[None], sr, sr_codec)[None]  # [1, 1, T]
        torch.manual_seed(a.seed)
        r = clone_speech(models, wav, ids, pids, sampling, a.max_seconds, lengths=lengths)
        return Generated(r.wav.mean(axis=0), r.sample_rate, r.frames, r.limit, stop=r.stop, notes=r.length_notes())

    result = evaluate_tts(pairs, generate, a.skip_metrics, a.examples, progress=not a.quiet, asr=a.asr)
    return _finish(result, a, f"zero-shot cloning: {len(pairs)} pairs, {a.prompt_seconds:g} s prompts, "
                              f"{a.valle_ar} + {a.valle_nar} on {a.codec}")


def cmd_continue(a: argparse.Namespace) -> int:
    import torch

    from audiolm.evaluation.evaluate import Generated, evaluate_continuation
    from audiolm.evaluation.pairs import continuation_items
    from audiolm.sampling import SamplingConfig
    from launch.commands.generate_continue import continue_speech, load_continue_models

    from launch.commands.generate_continue import apply_stack

    apply_stack(a)
    if a.seconds is not None and a.seconds <= 0:
        raise ValueError(f"--seconds must be > 0, got {a.seconds}")
    models = load_continue_models(a.codec, a.coarse, a.fine, a.semantic, a.semantic_model, a.coarse_config,
                                  a.fine_config, a.semantic_config, a.device, decoder=a.decoder)
    items = continuation_items(_clips(a), a.max_items, a.prompt_seconds)
    sampling = SamplingConfig(temperature=a.temperature, top_k=a.top_k, top_p=a.top_p, seed=a.seed)
    sr_codec = int(models.tokenizer.sample_rate)

    def generate(prompt, sr, seconds) -> Generated:
        out, prompt_frames, frames = continue_speech(models, torch.from_numpy(prompt)[None], sr, seconds, sampling)
        full = out.mean(dim=0).numpy()
        start = int(round(prompt_frames * full.size / (prompt_frames + frames)))
        return Generated(full[start:], sr_codec, frames, None, full)

    result = evaluate_continuation(items, generate, a.seconds, a.skip_metrics, a.examples, progress=not a.quiet,
                                   asr=a.asr)
    return _finish(result, a, f"continuation: {len(items)} prompts of {a.prompt_seconds:g} s, "
                              f"{a.coarse} + {a.fine} on {a.codec}")
