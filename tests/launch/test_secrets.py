"""Secrets never land in what a training run writes: with ``WANDB_API_KEY`` and ``HF_TOKEN`` set and
a token inside the shard command (``pipe:curl -H 'Authorization: ...'`` style), a run with the
wandb (offline), TensorBoard and CSV loggers leaves no trace of them in any file it wrote (saved
config, checkpoints, logger files, wandb run metadata) nor on its stdout/stderr, and still trains."""

from __future__ import annotations

from pathlib import Path

from tests.launch.conftest import child_env, lm_argv, run_codeclm

WANDB_KEY = "canary-wandb-0f9e8d7c6b5a4"
HF_TOKEN = "canary-hf-1a2b3c4d5e6f7"


def files_under(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def test_secret_canaries_are_absent_from_every_file_a_run_writes(speech_token_shards, tmp_path):
    tokens = Path(speech_token_shards["tokens"])
    tars = sorted(tokens.glob("*.tar"))
    run = tmp_path / "run"
    shards = f"pipe:cat {' '.join(map(str, tars))} # token={HF_TOKEN}"
    loggers = ["--trainer.logger=lightning.pytorch.loggers.WandbLogger",  # replaces the config's logger
               "--trainer.logger.save_dir", str(run), "--trainer.logger.offline", "true",
               "--trainer.logger+=lightning.pytorch.loggers.TensorBoardLogger", "--trainer.logger.save_dir", str(run),
               "--trainer.logger+=lightning.pytorch.loggers.CSVLogger", "--trainer.logger.save_dir", str(run)]
    argv = lm_argv(speech_token_shards, run, 3, "--trainer.log_every_n_steps", "1")
    i = argv.index("--trainer.logger")
    del argv[i:i + 2]  # the helper turns loggers off: use three instead
    i = argv.index("--data.shards")
    argv[i + 1] = shards
    argv += loggers + ["--trainer.callbacks+=ModelCheckpoint", "--trainer.callbacks.dirpath", str(run / "ckpt"),
                       "--trainer.callbacks.every_n_train_steps", "1"]
    env = child_env(WANDB_API_KEY=WANDB_KEY, HF_TOKEN=HF_TOKEN, WANDB_DIR=str(run), WANDB_CACHE_DIR=str(run / "cache"),
                    WANDB_CONFIG_DIR=str(run / "wandb-config"), WANDB_SILENT="true")
    out = run_codeclm(argv, env=env)
    assert out.returncode == 0, out.stderr[-4000:]
    written = files_under(run)
    kinds = {p.suffix for p in written}
    assert {".ckpt", ".yaml", ".csv"} <= kinds and any("tfevents" in p.name for p in written)
    assert any("wandb" in p.parts for p in written), "the wandb logger wrote nothing"
    assert "<redacted>" in (run / "config.yaml").read_text()  # the shard command is kept, its token blanked
    for path in written:
        data = path.read_bytes()
        for canary in (WANDB_KEY, HF_TOKEN):
            assert canary.encode() not in data, f"{canary} found in {path}"
    for stream in (out.stdout, out.stderr):
        assert WANDB_KEY not in stream and HF_TOKEN not in stream
