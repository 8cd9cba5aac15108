"""General MIDI to audio, safely: sanitize the notes, then render through fluidsynth or tinysoundfont.

MIDI in the wild holds stuck notes, zero-length notes and pedals never released; a synthesizer fed
that may render without end. So every input first becomes a :class:`Performance` through
:func:`sanitize` (both from :mod:`data.corpus.midi_notes`, re-exported here), and every render is
cut at the last note's end plus a short tail: a renderer never returns more samples than that cap,
and a fluidsynth process is killed once it has written the cap or overruns its time limit. Backends
(:func:`find_renderer`): the ``fluidsynth`` command with a system General MIDI soundfont (Debian's
``fluid-soundfont-gm``), or the ``tinysoundfont`` module with the soundfont bundled in
``pretty_midi`` (TimGM6mb.sf2). Tempo is in quarter notes per minute.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from data.corpus.midi_notes import (  # noqa: F401  (re-exported)
    DRUM_CHANNEL,
    SAFE_CONTROLS,
    Note,
    Part,
    Performance,
    RenderError,
    assign_channels,
    sanitize,
)

APT_HINT = "`apt-get install fluidsynth fluid-soundfont-gm`"
PIP_HINT = "`pip install --no-deps tinysoundfont pretty-midi`"
INSTALL_HINT = f"install one with {APT_HINT} or {PIP_HINT}"
SOUNDFONT_DIRS = ("/usr/share/sounds/sf2", "/usr/share/soundfonts", "/usr/local/share/soundfonts",
                  "/usr/share/sounds/sf3")
PREFERRED_SOUNDFONTS = ("FluidR3_GM.sf2", "default-GM.sf2", "FluidR3_GM.sf3", "default-GM.sf3")


@dataclass(frozen=True)
class Rendered:
    audio: np.ndarray  # [2, T] float32
    sample_rate: int
    seconds: float  # the last note's end
    cap_seconds: float  # the most audio a render may return: seconds + tail
    backend: str


class Renderer:
    """Sanitize, then synthesize at most ``(last note end + tail) * sample_rate`` samples."""

    name = "renderer"

    def __init__(self, soundfont: str | Path):
        self.soundfont = Path(soundfont)
        if not self.soundfont.is_file():
            raise RenderError(f"soundfont {self.soundfont} not found; {INSTALL_HINT}")

    def render(self, midi: Performance | bytes | str | Path, sample_rate: int = 44100, tail_seconds: float = 2.0,
               max_seconds: float = 1800.0) -> Rendered:
        """Audio of ``midi`` (cut at ``max_seconds``) as ``[2, T]`` float32, T at most the cap."""
        perf = midi if isinstance(midi, Performance) else sanitize(midi, max_seconds=max_seconds)
        if perf.duration > max_seconds:
            perf = perf.scaled(1.0, max_seconds)
        if not perf.parts:
            raise RenderError("the MIDI holds no notes to render")
        if not 8000 <= sample_rate <= 96000:
            raise RenderError(f"sample rate {sample_rate} is outside the 8000-96000 Hz a synthesizer renders at")
        cap = int(round((perf.duration + tail_seconds) * sample_rate))
        audio = np.ascontiguousarray(self._synthesize(perf, sample_rate, cap)[:, :cap], dtype=np.float32)
        return Rendered(audio, sample_rate, perf.duration, cap / sample_rate, self.name)

    def _synthesize(self, perf: Performance, sample_rate: int, cap: int) -> np.ndarray:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.soundfont)!r})"


class FluidsynthRenderer(Renderer):
    """The ``fluidsynth`` command in fast-render mode; killed at the length cap or its time limit."""

    name = "fluidsynth"

    def __init__(self, soundfont: str | Path, executable: str = "fluidsynth", gain: float = 0.4,
                 min_speed: float = 2.0, grace_seconds: float = 30.0):
        super().__init__(soundfont)
        self.executable, self.gain = executable, gain
        self.min_speed, self.grace_seconds = min_speed, grace_seconds  # time limit: grace + audio / min_speed

    def _synthesize(self, perf: Performance, sample_rate: int, cap: int) -> np.ndarray:
        with tempfile.TemporaryDirectory(prefix="codeclm-fluid-") as tmp:
            mid, raw, log = Path(tmp, "in.mid"), Path(tmp, "out.raw"), Path(tmp, "log.txt")
            mid.write_bytes(perf.to_midi())
            # headerless native float32 stereo: what was written before a kill stays readable
            cmd = [self.executable, "-n", "-i", "-q", "-g", str(self.gain), "-r", str(sample_rate), "-T", "raw",
                   "-O", "float", "-E", "cpu", "-F", str(raw), str(self.soundfont), str(mid)]
            need, capped = cap * 8, False
            deadline = time.monotonic() + self.grace_seconds + cap / sample_rate / self.min_speed
            with open(log, "wb") as err:
                proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=err, stderr=err, start_new_session=True)
                try:
                    while proc.poll() is None:
                        if raw.exists() and raw.stat().st_size >= need:
                            capped = True  # release and reverb tails past the cap are not wanted
                            break
                        if time.monotonic() > deadline:
                            raise RenderError("fluidsynth overran its time limit and was killed")
                        time.sleep(0.01)
                finally:
                    if proc.poll() is None:
                        os.killpg(proc.pid, signal.SIGKILL)
                        proc.wait()
            if not capped and (proc.returncode != 0 or not raw.exists()):
                last = log.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
                raise RenderError(f"fluidsynth failed (exit {proc.returncode}): {last[0]}")
            with open(raw, "rb") as f:
                data = f.read(need)
        frames = len(data) // 8
        return np.frombuffer(data[: frames * 8], dtype=np.float32).reshape(frames, 2).T


class TinySoundFontRenderer(Renderer):
    """The ``tinysoundfont`` module, driven event by event; renders exactly ``cap`` samples."""

    name = "tinysoundfont"

    def _synthesize(self, perf: Performance, sample_rate: int, cap: int) -> np.ndarray:
        import tinysoundfont

        synth = tinysoundfont.Synth(samplerate=sample_rate)
        sfid = synth.sfload(str(self.soundfont), max_voices=256)
        events: list[tuple[float, int, tuple]] = []  # (seconds, order: offs, controls, ons; action)
        for part, ch in zip(perf.parts, assign_channels(perf.parts)):
            try:
                synth.program_select(ch, sfid, 0, part.program, part.is_drum)
            except RuntimeError:  # the soundfont lacks this preset
                synth.program_select(ch, sfid, 0, 0, part.is_drum)
            events += [(t, 1, (synth.control_change, ch, c, v)) for t, c, v in part.controls]
            events += [(t, 1, (synth.pitchbend, ch, b + 8192)) for t, b in part.bends]
            events += [(n.start, 2, (synth.noteon, ch, n.pitch, n.velocity)) for n in part.notes]
            events += [(n.end, 0, (synth.noteoff, ch, n.pitch)) for n in part.notes]
        buf = bytearray(cap * 8)  # interleaved stereo float32
        view, pos = memoryview(buf), 0
        for t, _, (action, *args) in sorted(events, key=lambda e: (e[0], e[1])):
            target = min(cap, int(round(t * sample_rate)))
            if target > pos:
                synth.generate_simple(target - pos, buffer=view[pos * 8 : target * 8])
                pos = target
            action(*args)
        if cap > pos:
            synth.generate_simple(cap - pos, buffer=view[pos * 8 :])
        return np.frombuffer(buf, dtype=np.float32).reshape(cap, 2).T


def bundled_soundfont() -> Path | None:
    """pretty_midi's TimGM6mb.sf2, found without importing pretty_midi."""
    spec = importlib.util.find_spec("pretty_midi")
    found = [Path(d, "TimGM6mb.sf2") for d in (spec.submodule_search_locations or [] if spec else [])]
    return next((p for p in found if p.is_file()), None)


def system_soundfont() -> Path | None:
    """A General MIDI soundfont from the usual system folders, FluidR3_GM first."""
    dirs = [Path(d) for d in SOUNDFONT_DIRS if Path(d).is_dir()]
    found = [d / n for n in PREFERRED_SOUNDFONTS for d in dirs] + sorted(p for d in dirs for p in d.glob("*.sf[23]"))
    return next((p.resolve() for p in found if p.is_file()), None)


def _importable(module: str) -> bool:
    try:
        importlib.import_module(module)
        return True
    except ImportError:
        return False


def find_renderer(prefer: str = "auto", soundfont: str | Path | None = None) -> Renderer:
    """A backend: ``"fluidsynth"``, ``"tinysoundfont"`` or ``"auto"`` (fluidsynth when installed)."""
    if prefer not in ("auto", "fluidsynth", "tinysoundfont"):
        raise ValueError(f"renderer {prefer!r} is unknown; use 'auto', 'fluidsynth' or 'tinysoundfont'")
    if prefer in ("auto", "fluidsynth"):
        exe, sf2 = shutil.which("fluidsynth"), soundfont or system_soundfont() or bundled_soundfont()
        if exe and sf2:
            return FluidsynthRenderer(sf2, executable=exe)
        if prefer == "fluidsynth":
            raise RenderError(f"fluidsynth or its soundfont is not installed; run {APT_HINT}")
    sf2 = soundfont or bundled_soundfont()
    if sf2 and _importable("tinysoundfont"):
        return TinySoundFontRenderer(sf2)
    if prefer == "tinysoundfont":
        raise RenderError(f"tinysoundfont or pretty_midi's soundfont is not installed; run {PIP_HINT}")
    raise RenderError(f"no MIDI renderer found; {INSTALL_HINT}")
