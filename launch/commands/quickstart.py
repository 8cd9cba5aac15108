"""``codeclm quickstart``: the whole pipeline on the built-in corpus, under one folder.

corpus (espeak-ng speech, training and held-out voices) -> text models -> tiny codec (GAN) ->
exported codec -> a reconstructed example wav -> token shards -> semantic units -> tiny language
models (VALL-E AR + NAR; AudioLM semantic, coarse, fine) -> a voice clone and a continuation of
a held-out voice as wav files. Every step reuses what an earlier run already made (an
interrupted training run resumes from its last checkpoint), so running it again is cheap. Where
each file goes is :class:`launch.run_layout.RunLayout`; ``generate clone``, ``generate continue``
and ``demo`` find the models there with ``--models DIR``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from launch.run_layout import DEFAULT_RUN, RunLayout, logger_args

REPO = Path(__file__).resolve().parents[2]


# Named budgets. ``quickstart`` is the first run a newcomer makes (about 15 minutes on 2 cores);
# ``long`` is the next step: the same pipeline on three times the speech and twice the voices,
# with the codec and every language model trained about six times longer (about 75 minutes on
# an idle 2-core machine), in its own run folder. An option given on the command line wins over the preset.
PRESETS = {
    "quickstart": {"out": str(DEFAULT_RUN), "hours": 1.0, "speakers": 48, "codec_steps": None, "lm_steps_scale": 1.0},
    "long": {"out": "runs/long", "hours": 3.0, "speakers": 96, "codec_steps": 6000, "lm_steps_scale": 6.0},
}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("quickstart", help="build the default corpus and run the pipeline on it")
    p.add_argument("--preset", choices=tuple(PRESETS), default="quickstart",
                   help="the budget: quickstart (default, about 15 min on 2 cores) or long (about 75 min: 3 h of "
                        "speech, 96 voices, ~6x the training; run folder runs/long)")
    p.add_argument("--out", default=None, help=f"the run folder (default {DEFAULT_RUN}; runs/long for --preset long)")
    p.add_argument("--hours", type=float, default=None, help="hours of built-in speech (default 1; 3 for long)")
    p.add_argument("--speakers", type=int, default=None, help="espeak voices in the corpus (default 48; 96 for long)")
    p.add_argument("--codec-steps", type=int, default=None,
                   help="optimizer steps of the tiny codec (default: the config's; 6000 for long)")
    p.add_argument("--lm-steps-scale", type=float, default=None,
                   help="multiplies every tiny LM's optimizer steps (default 1, 6 for long; 0 skips the language models)")
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--check", choices=("stop", "warn"), default="stop",
                   help="what a failed quality check does: stop (default: a collapsed codec stops the run before "
                        "tokenizing, an implausible clone makes it exit 1) or warn (report it in summary.json and go on)")
    p.set_defaults(func=run)


def apply_preset(a: argparse.Namespace) -> argparse.Namespace:
    """Fill every option the command line left unset from ``a.preset``'s budget."""
    for key, value in PRESETS[getattr(a, "preset", None) or "quickstart"].items():
        if getattr(a, key, None) is None:
            setattr(a, key, value)
    return a


def _step(n: int, total: int, what: str) -> None:
    print(f"\n[{n}/{total}] {what}", flush=True)


def run(a: argparse.Namespace) -> None:
    from data.corpus.speech import SpeechCorpusConfig, build_speech
    from data.text import PhonemeVocab, iter_metadata, train_spm
    from launch.commands.data import _workers, print_summary, summarize

    a = apply_preset(a)
    out = Path(a.out)
    print(f"quickstart --preset {a.preset}: {a.hours:g} h of speech, {a.speakers} voices, codec steps "
          f"{a.codec_steps or 'as configured'}, LM steps x{a.lm_steps_scale:g}, run folder {out}", flush=True)
    layout = RunLayout(out)
    made: list[tuple[str, Path]] = []
    t0 = time.time()
    steps = 9 if a.lm_steps_scale > 0 else 6

    _step(1, steps, "speech corpus: espeak-ng, many synthetic speakers -> webdataset shards")
    shards, val = layout.shards, layout.val_shards
    workers = _workers(a.workers)
    build_speech(SpeechCorpusConfig(out_dir=str(shards), hours=a.hours, speakers=a.speakers, workers=workers))
    build_speech(SpeechCorpusConfig(out_dir=str(val), hours=0.05, speakers=8, seed=1, workers=workers))
    summary = summarize(str(shards))
    print_summary(summary)
    print_summary(summarize(str(val)), "held-out voices for validation")
    made += [("speech shards", shards), ("validation shards", val)]

    _step(2, steps, "text models: sentencepiece pieces and the phoneme vocabulary")
    spm_path, phon_path = layout.spm, layout.phonemes
    if not spm_path.exists():
        train_spm(str(shards), 512, spm_path, hard_limit=False)
    if not phon_path.exists():
        PhonemeVocab.fit(m.get("phonemes", "") for m in iter_metadata(str(shards))).save(phon_path)
    made += [("sentencepiece model", spm_path), ("phoneme vocabulary", phon_path)]

    _step(3, steps, "tiny codec: trained on the corpus (configs/codec/tiny.yaml)")
    export = layout.codec_export
    ckpt = _train_codec(layout, a.codec_steps)
    made.append(("codec checkpoint", ckpt))

    _step(4, steps, "export: safetensors + JSON config")
    from codec.export import export_from_checkpoint

    if not (export / "config.json").exists():
        export_from_checkpoint(ckpt, export)
    made.append(("exported codec", export))

    from launch.commands.quickstart_check import codebook_check

    # a collapsed codec stops the run here, saying why (or, with --check warn, is reported)
    code_ppl, collapsed = codebook_check(export, val, stop=a.check == "stop")

    _step(5, steps, "reconstruct a held-out utterance through the codec")
    examples = _reconstruct(export, val, layout.examples)
    made += examples

    _step(6, steps, "tokenize: audio shards -> token shards")
    from codec.load import load_tokenizer
    from codec.tokenize import tokenize_shards

    tokens = layout.tokens
    tokenize_shards(load_tokenizer(str(export)), str(shards), tokens, batch_size=16)
    made.append(("token shards", tokens))

    check = None
    if a.lm_steps_scale > 0:
        lm_made, check = _language_models(layout, a.lm_steps_scale, steps)
        made += lm_made

    record = {"corpus": summary, "made": {k: str(v) for k, v in made}, "seconds": round(time.time() - t0)}
    check = check if check is not None else {"failures": []}
    check["code_perplexity"] = code_ppl
    if collapsed:
        check["failures"].insert(0, collapsed)
    record["check"] = check
    layout.summary.write_text(json.dumps(record, indent=1))
    print(f"\nquickstart done in {time.time() - t0:.0f}s. Made under {out}/:")
    for what, path in made:
        print(f"  {what:22s} {path}")
    print(f"  {'summary':22s} {layout.summary}")
    print(f"\nInspect: tar tf {shards}/speech-000000.tar | head ; codeclm data info {shards}")
    print(f"Training curves: tensorboard --logdir {out}")
    if a.lm_steps_scale > 0:
        from launch.commands.quickstart_lm import demo_command

        print(f"\nHear the models in a browser:\n  {demo_command(out)}")
    if check["failures"]:
        print("\nThe run finished, but its outputs failed the check above: " + "; ".join(check["failures"]))
        if a.check == "stop":
            raise SystemExit(1)


def _language_models(layout: RunLayout, scale: float, steps: int) -> tuple[list[tuple[str, Path]], dict]:
    from launch.commands import quickstart_lm as qlm

    _step(7, steps, "semantic units: k-means over MFCC frames, written into the token shards")
    made = [("semantic unit model", qlm.semantic_units(layout))]
    _step(8, steps, "tiny language models: VALL-E (AR, NAR) and AudioLM (semantic, coarse, fine)")
    ckpts = {}
    for stage in qlm.STAGES:
        print(f"-- {stage.name} (configs/lm/{stage.name}-tiny.yaml)", flush=True)
        ckpts[stage.name] = qlm.train_stage(layout, stage, scale)
        made.append((f"{stage.name} LM checkpoint", ckpts[stage.name]))
    _step(9, steps, "generate: a voice clone and a continuation of a held-out voice")
    from codec.export import load_export

    prompt, text = qlm.write_prompt(layout.val_shards, layout.examples, load_export(layout.codec_export).sample_rate)
    made += qlm.generate(layout, prompt, text)
    from launch.commands.quickstart_check import self_check

    check = self_check(layout, prompt, text, layout.examples / "clone.wav", qlm.CLONE_TEXT,
                       layout.examples / "continuation.wav")
    return made, check


def _train_codec(layout: RunLayout, max_steps: int | None) -> Path:
    """Train (or resume, or reuse) the tiny codec; returns its last checkpoint."""
    from launch.commands.codec_fit import run as fit
    from launch.preemption import stopped_by_signal

    root = layout.codec_root
    last, done = layout.codec_ckpt, root / "DONE"
    if done.exists() and last.exists():
        print(f"reusing {last}")
        return last
    save_dir, name, version = logger_args(layout.codec_run)
    args = ["--config", str(REPO / "configs" / "codec" / "tiny.yaml"), "--data.shards", str(layout.shards),
            "--data.val_shards", str(layout.val_shards), "--trainer.default_root_dir", str(root),
            "--trainer.logger.init_args.save_dir", save_dir, "--trainer.logger.init_args.name", name,
            "--trainer.logger.init_args.version", version]
    if max_steps:  # the learning rate decays over the steps asked for
        args += ["--trainer.max_steps", str(max_steps), "--model.optim.decay_steps", str(max_steps)]
    if last.exists():
        print(f"resuming from {last}")
        args += ["--ckpt_path", str(last)]
    if fit(args) or not last.exists():
        raise RuntimeError(f"`codeclm codec fit` wrote no checkpoint at {last} (see above)")
    stopped = stopped_by_signal()
    if stopped:  # not finished: no DONE, so the next run resumes from that checkpoint
        raise SystemExit(f"{stopped}; run the same command again to resume")
    done.write_text("trained\n")
    return last


def _reconstruct(export: Path, val: Path, folder: Path) -> list[tuple[str, Path]]:
    import soundfile as sf
    import torch

    from codec.export import load_export
    from codec.losses import mel_distance, si_sdr
    from data.datamodule import AudioLoaderConfig, audio_dataset
    from data.webdataset import ShardLoader

    codec = load_export(export)
    cfg = AudioLoaderConfig(sample_rate=codec.sample_rate, crop_seconds=None, batch_size=1)
    batch = next(iter(ShardLoader(audio_dataset(str(val), cfg, train=False))))
    wav = batch.audio[:, :, : int(batch.lengths[0])]
    folder.mkdir(parents=True, exist_ok=True)
    sf.write(folder / "original.wav", wav[0, 0].numpy(), codec.sample_rate)
    made = [("original example", folder / "original.wav")]
    for k in sorted({1, codec.num_codebooks}):
        with torch.no_grad():
            rec = codec.decode(codec.encode(wav, k))[..., : wav.shape[-1]]
        path = folder / f"reconstruction-{codec.bandwidth(k):g}kbps.wav"
        sf.write(path, rec[0, 0].clamp(-1, 1).numpy(), codec.sample_rate)
        print(f"{path.name}: mel distance {float(mel_distance(rec, wav, codec.sample_rate).mean()):.3f}, "
              f"SI-SDR {float(si_sdr(rec, wav).mean()):.1f} dB  ({batch.texts[0]!r})")
        made.append((f"reconstruction {codec.bandwidth(k):g} kbps", path))
    return made
