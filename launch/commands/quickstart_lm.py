"""The language-model half of ``codeclm quickstart``: semantic units, tiny LMs, generations.

token shards -> semantic units (k-means over MFCC frames) written into the token shards ->
tiny VALL-E (AR + NAR) and AudioLM stages (semantic, coarse, fine) trained with ``codeclm lm
fit`` -> a voice clone and a continuation of a held-out voice, written as wav files through the
same ``codeclm generate`` commands a user runs, given the run folder alone (``--models``). Every
run resumes from its last checkpoint and a finished one is reused.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

from launch.run_layout import DEFAULT_RUN, LM_STAGES, RunLayout, logger_args, short_command

REPO = Path(__file__).resolve().parents[2]

CLONE_TEXT = "The little boat drifted slowly past the old harbour wall."


@dataclass(frozen=True)
class Stage:
    name: str  # configs/lm/{name}-tiny.yaml, runs under RunLayout.stage_root(name)
    steps: int  # optimizer steps at --lm-steps-scale 1
    phonemes: bool  # reads the phoneme vocabulary (VALL-E)


STAGES = (
    Stage("valle-ar", 600, True),
    Stage("valle-nar", 200, True),
    Stage("semantic", 300, False),
    Stage("coarse", 300, False),
    Stage("fine", 200, False),
)


assert tuple(s.name for s in STAGES) == LM_STAGES


def semantic_units(layout: RunLayout) -> Path:
    """Fit the k-means units (reused when present) and write them into the token shards."""
    from audiolm.semantic_labels import add_semantic_units
    from data.semantic import SemanticConfig, SemanticModel, fit_semantic

    folder, shards, tokens = layout.semantic_model, layout.shards, layout.tokens
    if (folder / "config.json").exists():
        print(f"reusing {folder}")
        model = SemanticModel.load(folder)
    else:
        cfg = SemanticConfig(features="mfcc", n_units=100, frame_rate=50.0, sample_rate=16000, max_frames=100_000)
        model = fit_semantic(str(shards), cfg, folder)
    summary = add_semantic_units(model, str(shards), tokens)
    print(f"semantic units {model.semantic_id}: {summary.labelled} shards labelled, {summary.kept} already were")
    return folder


def train_stage(layout: RunLayout, stage: Stage, scale: float) -> Path:
    """Train (or resume, or reuse) one tiny LM stage with ``codeclm lm fit``; its last checkpoint."""
    from launch.commands.lm_fit import run as fit
    from launch.preemption import stopped_by_signal

    root = layout.stage_root(stage.name)
    last, done = layout.stage_ckpt(stage.name), root / "DONE"
    if done.exists() and last.exists():
        print(f"reusing {last}")
        return last
    steps = max(1, round(stage.steps * scale))
    save_dir, name, version = logger_args(layout.stage_run(stage.name))
    args = ["--config", str(REPO / "configs" / "lm" / f"{stage.name}-tiny.yaml"), "--data.shards", str(layout.tokens),
            "--trainer.max_steps", str(steps), "--trainer.default_root_dir", str(root),
            "--trainer.logger", "lightning.pytorch.loggers.TensorBoardLogger",
            "--trainer.logger.save_dir", save_dir, "--trainer.logger.name", name,
            "--trainer.logger.version", version, "--trainer.callbacks.every_n_train_steps", str(max(1, min(200, steps)))]
    if scale != 1:  # a stretched or shrunk budget: the learning rate decays over the steps asked for
        args += ["--model.optim.decay_steps", str(steps)]
    if stage.phonemes:
        args += ["--data.text_model", str(layout.phonemes)]
    if last.exists():
        print(f"resuming from {last}")
        args += ["--ckpt_path", str(last)]
    t0 = time.time()
    if fit(args) or not last.exists():
        raise RuntimeError(f"`codeclm lm fit` for {stage.name} wrote no checkpoint at {last}")
    stopped = stopped_by_signal()
    if stopped:  # not finished: no DONE, so the next run resumes from that checkpoint
        raise SystemExit(f"{stopped}; run the same command again to resume")
    done.write_text("trained\n")
    print(f"{stage.name}: {steps} steps in {time.time() - t0:.0f}s")
    return last


def write_prompt(val: Path, folder: Path, sample_rate: int, seconds: float = 3.0) -> tuple[Path, str]:
    """A held-out voice's utterance of at least ``seconds`` (the longest if none is), cut to at
    most 6 s, as ``prompt.wav``; returns the path and its transcript."""
    import soundfile as sf

    from data.datamodule import AudioLoaderConfig, audio_dataset
    from data.webdataset import ShardLoader

    cfg = AudioLoaderConfig(sample_rate=sample_rate, crop_seconds=None, batch_size=1)
    best = None
    for batch in ShardLoader(audio_dataset(str(val), cfg, train=False)):
        n = int(batch.lengths[0])
        if best is None or n > best[0]:
            best = (n, batch.audio[0, 0, :n], batch.texts[0])
        if n >= seconds * sample_rate:
            break
    if best is None:
        raise RuntimeError(f"no readable utterance in {val} to prompt with")
    n, wav, text = best
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "prompt.wav"
    sf.write(path, wav[: int(6 * sample_rate)].numpy(), sample_rate)
    return path, text


def run_generate(argv: list[str]) -> int:
    """``codeclm generate ARGV`` (the command a user runs; its errors propagate)."""
    from launch.commands import generate as generate_cmds

    parser = argparse.ArgumentParser(prog="codeclm generate")
    generate_cmds.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


def generate(layout: RunLayout, prompt: Path, prompt_text: str) -> list[tuple[str, Path]]:
    """A voice clone and a continuation of ``prompt``, through ``codeclm generate clone`` and
    ``generate continue`` given the run folder alone."""
    clone, cont = layout.examples / "clone.wav", layout.examples / "continuation.wav"
    models = ["--models", str(layout.root)]
    print(f"prompt {prompt} ({prompt_text!r})")
    print(f"$ {short_command('generate clone', layout.root)} --prompt {prompt} --text ... --out {clone}")
    if run_generate(["clone", *models, "--prompt", str(prompt), "--prompt-text", prompt_text, "--text", CLONE_TEXT,
                     "--temperature", "0.8", "--top-k", "50", "--seed", "0", "--max-seconds", "6", "--out", str(clone)]):
        raise RuntimeError("`codeclm generate clone` failed (see above)")
    print(f"$ {short_command('generate continue', layout.root)} --prompt {prompt} --seconds 4 --out {cont}")
    if run_generate(["continue", *models, "--prompt", str(prompt), "--seconds", "4", "--temperature", "0.8",
                     "--top-k", "50", "--seed", "0", "--out", str(cont)]):
        raise RuntimeError("`codeclm generate continue` failed (see above)")
    return [("prompt", prompt), (f"voice clone ({CLONE_TEXT[:24]}...)", clone), ("continuation", cont)]


def demo_command(out: Path | str = DEFAULT_RUN) -> str:
    """The ``codeclm demo`` line for the models the quickstart trained in ``out``."""
    return short_command("demo", out)
