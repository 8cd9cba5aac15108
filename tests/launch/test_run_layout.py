"""``--models DIR``: generate clone / continue and demo find every model of a quickstart run folder;
options given on the command line win; a missing piece is one line naming its file and option.
The layout lives in launch/run_layout.py alone, and the quickstart does not import the CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from launch.cli import build_parser, main
from launch.run_layout import DEFAULT_RUN, LM_STAGES, RunLayout, resolve_clone, resolve_continue, resolve_demo

REPO = Path(__file__).resolve().parents[2]

# what `codeclm quickstart --out DIR` writes, relative to DIR
FILES = {
    "codec": "codec/export",
    "text_model": "text/phonemes.json",
    "ar": "lm/valle-ar/run/checkpoints/last.ckpt",
    "nar": "lm/valle-nar/run/checkpoints/last.ckpt",
    "semantic": "lm/semantic/run/checkpoints/last.ckpt",
    "semantic_model": "semantic",
    "coarse": "lm/coarse/run/checkpoints/last.ckpt",
    "fine": "lm/fine/run/checkpoints/last.ckpt",
}


def fake_run(root: Path, *leave_out: str) -> Path:
    """A run folder holding (empty stand-ins of) every model but ``leave_out``."""
    for dest, rel in FILES.items():
        if dest in leave_out:
            continue
        path = root / rel
        if rel.endswith((".json", ".ckpt")):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"")
        else:
            path.mkdir(parents=True, exist_ok=True)
    return root


def parse(*argv: str):
    return build_parser().parse_args(list(argv))


CLONE = ("generate", "clone", "--prompt", "p.wav", "--text", "hi", "--out", "o.wav")
CONTINUE = ("generate", "continue", "--prompt", "p.wav", "--out", "o.wav")


@pytest.fixture(autouse=True)
def elsewhere(tmp_path, monkeypatch):
    """Run in an empty folder: the default run folder (runs/quickstart) is only there when a test makes it."""
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")


def test_the_layout_is_the_quickstarts(tmp_path):
    layout = RunLayout(tmp_path)
    for stage in LM_STAGES:
        assert layout.stage_ckpt(stage) == tmp_path / "lm" / stage / "run" / "checkpoints" / "last.ckpt"
    assert layout.codec_export == tmp_path / FILES["codec"] and layout.phonemes == tmp_path / FILES["text_model"]
    assert layout.semantic_model == tmp_path / "semantic" and layout.tokens == tmp_path / "tokens" / "speech"
    assert layout.codec_ckpt == tmp_path / "codec" / "tiny" / "run" / "checkpoints" / "last.ckpt"
    with pytest.raises(ValueError, match="unknown LM stage"):
        layout.stage_ckpt("valle")
    from launch.commands.quickstart_lm import STAGES

    assert tuple(s.name for s in STAGES) == LM_STAGES


def test_a_run_folder_gives_every_model(tmp_path):
    run = fake_run(tmp_path / "run")
    a = resolve_clone(parse(*CLONE, "--models", str(run)))
    assert {k: getattr(a, k) for k in ("codec", "ar", "nar", "text_model")} == {
        k: str(run / FILES[k]) for k in ("codec", "ar", "nar", "text_model")}
    a = resolve_continue(parse(*CONTINUE, "--models", str(run)))
    assert {k: getattr(a, k) for k in ("codec", "coarse", "fine", "semantic", "semantic_model")} == {
        k: str(run / FILES[k]) for k in ("codec", "coarse", "fine", "semantic", "semantic_model")}
    a = resolve_demo(parse("demo", "--models", str(run)))
    assert {k: getattr(a, k) for k in FILES} == {k: str(run / v) for k, v in FILES.items()}


def test_the_default_folder_is_runs_quickstart_when_it_exists():
    with pytest.raises(ValueError, match=r"give --codec .*--models DIR.*does not exist"):
        resolve_clone(parse(*CLONE))
    run = fake_run(Path.cwd() / DEFAULT_RUN)
    a = resolve_clone(parse(*CLONE))
    assert a.ar == str(DEFAULT_RUN / FILES["ar"]) and (Path.cwd() / a.ar).samefile(run / FILES["ar"])


def test_options_given_win_over_the_folder(tmp_path):
    run = fake_run(tmp_path / "run")
    a = resolve_clone(parse(*CLONE, "--models", str(run), "--ar", "mine.ckpt", "--codec", "encodec24k"))
    assert a.ar == "mine.ckpt" and a.codec == "encodec24k" and a.nar == str(run / FILES["nar"])
    # a coarse stage of the user's own: the folder's semantic stage (trained with another) is not added
    a = resolve_continue(parse(*CONTINUE, "--models", str(run), "--coarse", "c.ckpt"))
    assert a.coarse == "c.ckpt" and a.fine == str(run / FILES["fine"]) and a.semantic is None
    # a stack file's stages win over the folder too
    stack = tmp_path / "stack.yaml"
    stack.write_text("coarse: s/coarse.ckpt\nfine: s/fine.ckpt\n")
    from launch.commands.generate_continue import apply_stack

    a = resolve_continue(apply_stack(parse(*CONTINUE, "--models", str(run), "--stack", str(stack)), require=False))
    assert a.coarse == str(tmp_path / "s/coarse.ckpt") and a.codec == str(run / FILES["codec"]) and a.semantic is None


@pytest.mark.parametrize("argv,missing,option", [
    (CLONE, "nar", "--nar"),
    (CLONE, "text_model", "--text-model"),
    (CLONE, "codec", "--codec"),
    (CONTINUE, "fine", "--fine"),
    (CONTINUE, "semantic_model", "--semantic-model"),
    (("demo",), "codec", "--codec"),
    (("demo",), "ar", "--ar"),
])
def test_a_missing_piece_names_its_file_and_option(tmp_path, capsys, argv, missing, option):
    run = fake_run(tmp_path / "run", missing)
    assert main([*argv, "--models", str(run)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("codeclm: error:"), err
    assert str(run / FILES[missing]) in err[0] and f"give {option}" in err[0], err[0]


def test_a_demo_section_without_its_models_stays_off(tmp_path):
    run = fake_run(tmp_path / "run", "ar", "nar", "semantic", "coarse", "fine")
    with pytest.raises(ValueError, match="no models: give --ar and --nar"):
        resolve_demo(parse("demo", "--models", str(run)))
    fake_run(tmp_path / "run", "ar", "nar")
    a = resolve_demo(parse("demo", "--models", str(run)))
    assert a.ar is None and a.coarse == str(run / FILES["coarse"])


def test_a_models_folder_that_is_not_there(tmp_path, capsys):
    assert main([*CLONE, "--models", str(tmp_path / "nowhere")]) == 2
    assert "--models" in capsys.readouterr().err


def test_quickstart_and_cli_do_not_import_each_other():
    for name in ("quickstart.py", "quickstart_lm.py"):
        assert "launch.cli" not in (REPO / "launch" / "commands" / name).read_text(), name
    code = ("import sys, launch.commands.quickstart, launch.commands.quickstart_lm, launch.commands.generate; "
            "assert 'launch.cli' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)
    from launch.commands.quickstart_lm import demo_command

    assert demo_command() == "codeclm demo" and demo_command("runs/x") == "codeclm demo --models runs/x"
