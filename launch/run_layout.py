"""Where a ``codeclm quickstart`` run folder keeps what it makes, and ``--models DIR``.

``codeclm quickstart --out DIR`` writes every file under one folder; ``generate clone``,
``generate continue`` and ``demo`` take that folder as ``--models DIR`` (default
``runs/quickstart`` when it exists) and find each model in it::

    DIR/shards/speech, DIR/shards/speech-val       audio shards (training, held-out voices)
    DIR/text/spm.model, DIR/text/phonemes.json     text models (--text-model)
    DIR/codec/export                               exported codec (--codec)
    DIR/codec/tiny/run/checkpoints/last.ckpt       codec training checkpoint
    DIR/tokens/speech                              token shards
    DIR/semantic                                   semantic unit model (--semantic-model)
    DIR/lm/NAME/run/checkpoints/last.ckpt          LM stages: valle-ar (--ar), valle-nar (--nar),
                                                   semantic (--semantic), coarse (--coarse), fine (--fine)
    DIR/examples                                   wav files the quickstart generates

An option given on the command line always wins over the folder. This module is the only place
that knows the layout; it imports nothing of the commands.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

DEFAULT_RUN = Path("runs/quickstart")
LM_STAGES = ("valle-ar", "valle-nar", "semantic", "coarse", "fine")
RUN_VERSION = "run"  # the logger version of every training run in the folder


@dataclass(frozen=True)
class RunLayout:
    """The paths of one run folder (nothing is checked or created)."""

    root: Path

    @property
    def shards(self) -> Path:
        return self.root / "shards" / "speech"

    @property
    def val_shards(self) -> Path:
        return self.root / "shards" / "speech-val"

    @property
    def spm(self) -> Path:
        return self.root / "text" / "spm.model"

    @property
    def phonemes(self) -> Path:
        return self.root / "text" / "phonemes.json"

    @property
    def codec_root(self) -> Path:
        return self.root / "codec"

    @property
    def codec_run(self) -> Path:
        """The codec training run's log folder (``config.yaml``, ``checkpoints/``)."""
        return self.codec_root / "tiny" / RUN_VERSION

    @property
    def codec_ckpt(self) -> Path:
        return self.codec_run / "checkpoints" / "last.ckpt"

    @property
    def codec_export(self) -> Path:
        return self.codec_root / "export"

    @property
    def tokens(self) -> Path:
        return self.root / "tokens" / "speech"

    @property
    def semantic_model(self) -> Path:
        return self.root / "semantic"

    @property
    def lm_root(self) -> Path:
        return self.root / "lm"

    def stage_root(self, name: str) -> Path:
        if name not in LM_STAGES:
            raise ValueError(f"unknown LM stage {name!r}: one of {', '.join(LM_STAGES)}")
        return self.lm_root / name

    def stage_run(self, name: str) -> Path:
        """The log folder of the LM stage ``name`` (one of :data:`LM_STAGES`)."""
        return self.stage_root(name) / RUN_VERSION

    def stage_ckpt(self, name: str) -> Path:
        """The last checkpoint of the LM stage ``name``."""
        return self.stage_run(name) / "checkpoints" / "last.ckpt"

    @property
    def examples(self) -> Path:
        return self.root / "examples"

    @property
    def summary(self) -> Path:
        return self.root / "summary.json"


def logger_args(run: Path) -> tuple[str, str, str]:
    """``(save_dir, name, version)`` of a Lightning logger that writes to the log folder ``run``."""
    return str(run.parent.parent), run.parent.name, run.name


# option (argparse dest) -> (what it is, where the run folder keeps it)
MODEL_OPTIONS = {
    "codec": ("the exported codec", lambda r: r.codec_export),
    "text_model": ("the phoneme vocabulary", lambda r: r.phonemes),
    "ar": ("the VALL-E AR stage checkpoint", lambda r: r.stage_ckpt("valle-ar")),
    "nar": ("the VALL-E NAR stage checkpoint", lambda r: r.stage_ckpt("valle-nar")),
    "semantic": ("the semantic stage checkpoint", lambda r: r.stage_ckpt("semantic")),
    "semantic_model": ("the semantic unit model", lambda r: r.semantic_model),
    "coarse": ("the coarse stage checkpoint", lambda r: r.stage_ckpt("coarse")),
    "fine": ("the fine stage checkpoint", lambda r: r.stage_ckpt("fine")),
}
CLONE = ("codec", "ar", "nar", "text_model")
CONTINUE = ("codec", "coarse", "fine")
SEMANTIC = ("semantic", "semantic_model")


def flag(dest: str) -> str:
    return "--" + dest.replace("_", "-")


def add_models_option(p) -> None:
    p.add_argument("--models", metavar="DIR", default=None,
                   help=f"a `codeclm quickstart` run folder: each model not given by its own option is taken from "
                        f"it (default {DEFAULT_RUN} when it exists)")


def short_command(command: str, folder: Path | str) -> str:
    """``codeclm COMMAND`` with ``--models`` only where the folder is not the default."""
    return f"codeclm {command}" if Path(folder) == DEFAULT_RUN else f"codeclm {command} --models {folder}"


class RunModels:
    """The run folder an ``argparse.Namespace`` names (``args.models``, else the default one when it
    exists, else none), and the models in it."""

    def __init__(self, args: argparse.Namespace) -> None:
        given = getattr(args, "models", None)
        if given is not None and not Path(given).is_dir():
            raise FileNotFoundError(f"--models {given}: no such folder (give a `codeclm quickstart --out` folder)")
        folder = Path(given) if given is not None else DEFAULT_RUN if DEFAULT_RUN.is_dir() else None
        self.args = args
        self.filled: set[str] = set()  # the options taken from the folder
        self.layout = RunLayout(folder) if folder is not None else None

    def path(self, dest: str) -> Path | None:
        return MODEL_OPTIONS[dest][1](self.layout) if self.layout is not None else None

    def has(self, dest: str) -> bool:
        path = self.path(dest)
        return path is not None and path.exists()

    def fill(self, dests) -> list[str]:
        """Set each option of ``dests`` the command line left out (None) to the folder's file where it
        exists; the options it set."""
        filled = []
        for dest in dests:
            if getattr(self.args, dest, None) is None and self.has(dest):
                setattr(self.args, dest, str(self.path(dest)))
                filled.append(dest)
        self.filled.update(filled)
        return filled

    def _set(self, dest: str) -> bool:
        return getattr(self.args, dest, None) is not None

    def require(self, dests, alt: str = "") -> None:
        """One clear error for the first option of ``dests`` still unset: the file missing from the
        folder and the option to give instead. ``alt``: other ways to give it (", a --stack file")."""
        for dest in dests:
            if self._set(dest):
                continue
            what = MODEL_OPTIONS[dest][0]
            if self.layout is None:
                raise ValueError(f"give {flag(dest)} ({what}){alt} or --models DIR, a `codeclm quickstart` run "
                                 f"folder ({DEFAULT_RUN} does not exist)")
            raise FileNotFoundError(f"{self.path(dest)} is missing ({what} of the run folder {self.layout.root}): "
                                    f"give {flag(dest)}{alt} or a --models folder that has it")

    def require_pair(self, a: str, b: str) -> None:
        """Options that go together: neither or both (after filling)."""
        if self._set(a) != self._set(b):
            present, missing = (a, b) if self._set(a) else (b, a)
            if present in self.filled:  # found in the folder without its partner
                self.require((missing,))
            where = f" ({self.path(missing)} is missing)" if self.layout is not None else ""
            raise ValueError(f"{flag(a)} and {flag(b)} go together: give {flag(missing)} too "
                             f"({MODEL_OPTIONS[missing][0]}){where}")

    def fill_continuation(self) -> bool:
        """Fill coarse and fine; the semantic stage and its unit model too when the coarse stage came
        from the folder (it was trained on them) or when one of the pair was given. Whether any
        continuation option is now set."""
        coarse_from_folder = "coarse" in self.fill(("coarse", "fine"))
        if coarse_from_folder or any(self._set(d) for d in SEMANTIC):
            self.fill(SEMANTIC)
        self.require_pair("coarse", "fine")
        self.require_pair(*SEMANTIC)
        return any(self._set(d) for d in ("coarse", "fine", *SEMANTIC))


def resolve_clone(args: argparse.Namespace) -> argparse.Namespace:
    """``generate clone``: codec, AR, NAR and text model from the options, else the run folder."""
    run = RunModels(args)
    run.fill(CLONE)
    run.require_pair("ar", "nar")
    run.require(CLONE)
    return args


def resolve_continue(args: argparse.Namespace, alt: str = "") -> argparse.Namespace:
    """``generate continue``: codec, coarse and fine stages (and the semantic pair, see
    :meth:`RunModels.fill_continuation`) from the options, else the run folder."""
    run = RunModels(args)
    run.fill(("codec",))
    run.fill_continuation()
    run.require(CONTINUE, alt)
    return args


def resolve_demo(args: argparse.Namespace) -> argparse.Namespace:
    """``demo``: a section (voice cloning, continuation) is on when its models are given or found in
    the run folder; a section given or found in part names what it misses."""
    run = RunModels(args)
    run.fill(CLONE)
    run.require_pair("ar", "nar")
    if args.ar is not None:
        run.require(CLONE)
    if run.fill_continuation():
        run.require(CONTINUE)
    if args.ar is None and args.coarse is None:
        where = (f"the run folder {run.layout.root} has neither {run.path('ar')} nor {run.path('coarse')}"
                 if run.layout is not None else f"{DEFAULT_RUN} does not exist")
        raise ValueError(f"no models: give --ar and --nar (voice cloning) and/or --coarse and --fine (continuation), "
                         f"or --models DIR, a `codeclm quickstart` run folder ({where})")
    run.require(("codec",))
    return args
