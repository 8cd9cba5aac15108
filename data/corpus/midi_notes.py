"""MIDI notes made safe to render: :func:`sanitize` parses a file into a :class:`Performance`.

MIDI in the wild holds stuck notes (a note-on never switched off; notation exports grace notes as an
off and an on at one tick), zero-length notes and pedals never released. :func:`sanitize` pairs
note-ons with their offs, ends stuck notes, caps every note's length, drops notes under 1 ms and
releases the sustain pedal, giving notes in seconds under the file's tempo map. A
:class:`Performance` can be sped up or cut (:meth:`Performance.scaled`) and written back to a
standard MIDI file (:meth:`Performance.to_midi`). Tempo is in quarter notes per minute.
"""

from __future__ import annotations

import bisect
import io
from dataclasses import dataclass, field, replace
from pathlib import Path

import mido

SAFE_CONTROLS = frozenset({1, 7, 10, 11, 64, 91, 93})  # others (banks, RPNs, mode messages) are dropped
DRUM_CHANNEL = 9


class RenderError(RuntimeError):
    """A MIDI input that cannot be rendered, or no backend to render it."""


@dataclass(frozen=True)
class Note:
    start: float  # seconds
    end: float
    pitch: int
    velocity: int


@dataclass
class Part:
    """One instrument line: a (track, channel) of the source, with the first program it selects."""

    program: int
    is_drum: bool
    notes: list[Note] = field(default_factory=list)
    controls: list[tuple[float, int, int]] = field(default_factory=list)  # (seconds, controller, value)
    bends: list[tuple[float, int]] = field(default_factory=list)  # (seconds, -8192..8191)


@dataclass
class Performance:
    """Sanitized notes in seconds: each ends after it starts, no longer than the cap it was read with."""

    parts: list[Part]
    tempos: list[tuple[float, float]]  # (seconds, quarter notes per minute), the first at 0
    key_signatures: list[tuple[float, str]] = field(default_factory=list)  # (seconds, mido key such as "Bbm")
    explicit_tempo: bool = False  # the source sets a tempo (else MIDI's default 120 applies)

    @property
    def duration(self) -> float:
        return max((n.end for p in self.parts for n in p.notes), default=0.0)

    def tempo_at(self, start: float, end: float) -> float:
        """Time-weighted mean tempo over ``[start, end)``."""
        total = 0.0
        for i, (t, bpm) in enumerate(self.tempos):
            nxt = self.tempos[i + 1][0] if i + 1 < len(self.tempos) else float("inf")
            total += bpm * max(0.0, min(end, nxt) - max(start, t))
        return total / (end - start) if end > start else self.tempos[0][1]

    def scaled(self, factor: float, max_seconds: float | None = None) -> "Performance":
        """Play ``factor`` times faster (tempo x factor), keeping what starts before ``max_seconds``."""
        s, limit = 1.0 / factor, float("inf") if max_seconds is None else max_seconds
        parts = []
        for p in self.parts:
            notes = [Note(n.start * s, min(n.end * s, limit), n.pitch, n.velocity) for n in p.notes]
            if notes := [n for n in notes if n.start < limit and n.end - n.start >= 1e-3]:
                controls = [(t * s, c, v) for t, c, v in p.controls if t * s < limit]
                bends = [(t * s, b) for t, b in p.bends if t * s < limit]
                parts.append(replace(p, notes=notes, controls=controls, bends=bends))
        return Performance(parts, [(t * s, bpm * factor) for t, bpm in self.tempos],
                           [(t * s, k) for t, k in self.key_signatures], self.explicit_tempo)

    def to_midi(self) -> bytes:
        """A standard MIDI file of this performance (120 qpm, 960 ticks a second; every note >= 1 tick)."""
        mid, msg = mido.MidiFile(type=1, ticks_per_beat=480), mido.Message
        mid.tracks.append(mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=500_000, time=0)]))
        for part, ch in zip(self.parts, assign_channels(self.parts)):
            ev = [(0, 0, msg("program_change", channel=ch, program=part.program))]
            ev += [(round(t * 960), 1, msg("control_change", channel=ch, control=c, value=v))
                   for t, c, v in part.controls]
            ev += [(round(t * 960), 1, msg("pitchwheel", channel=ch, pitch=b)) for t, b in part.bends]
            for n in part.notes:  # at one tick: offs, then controls, then ons
                on = round(n.start * 960)
                ev.append((on, 2, msg("note_on", channel=ch, note=n.pitch, velocity=n.velocity)))
                ev.append((max(on + 1, round(n.end * 960)), 0, msg("note_off", channel=ch, note=n.pitch, velocity=0)))
            track, now = mido.MidiTrack(), 0
            for tick, _, m in sorted(ev, key=lambda e: (e[0], e[1])):
                track.append(m.copy(time=tick - now))
                now = tick
            mid.tracks.append(track)
        buf = io.BytesIO()
        mid.save(file=buf)
        return buf.getvalue()


def assign_channels(parts: list[Part]) -> list[int]:
    """Drums on channel 9; other parts on 0-15 in order, skipping 9 (past 15 parts, channels are shared)."""
    melodic = [c for c in range(16) if c != DRUM_CHANNEL]
    out: list[int] = []
    for p in parts:
        out.append(DRUM_CHANNEL if p.is_drum else melodic[sum(c != DRUM_CHANNEL for c in out) % len(melodic)])
    return out


def _absolute(tracks):
    for track in tracks:
        tick = 0
        for msg in track:
            tick += msg.time
            yield tick, msg


def _tempo_map(mid: mido.MidiFile):
    """tick -> seconds under the tempo changes of every track; the tempo list; whether any was set."""
    changes = sorted((tick, msg.tempo) for tick, msg in _absolute(mid.tracks) if msg.type == "set_tempo")
    ticks, secs, tempos, tpb = [0], [0.0], [500_000], mid.ticks_per_beat
    for tick, tempo in changes:
        secs.append(secs[-1] + (tick - ticks[-1]) * tempos[-1] / 1e6 / tpb)
        ticks.append(tick)
        tempos.append(tempo)

    def to_seconds(tick: int) -> float:
        i = bisect.bisect_right(ticks, tick) - 1
        return secs[i] + (tick - ticks[i]) * tempos[i] / 1e6 / tpb

    bpm = [(to_seconds(t), 60e6 / tp) for t, tp in zip(ticks, tempos)]
    bpm = [b for i, b in enumerate(bpm) if i + 1 == len(bpm) or bpm[i + 1][0] > b[0]]  # the last change at a time wins
    return to_seconds, bpm, bool(changes)


def sanitize(midi: bytes | str | Path | mido.MidiFile, max_note_seconds: float = 10.0,
             max_seconds: float | None = None) -> Performance:
    """Parse MIDI into a clean :class:`Performance`.

    Notes pair per (track, channel, pitch). A repeated note-on ends the sounding note; an off then an
    on of one key at one tick with nothing sounding (a zero-length grace note) is dropped; a note-on
    never switched off ends at the file's last event (1 s later if nothing follows); every note is cut
    to ``max_note_seconds`` and to ``max_seconds``; notes under 1 ms are dropped; a sustain pedal is
    released after its part's last note.
    """
    where = str(midi) if isinstance(midi, (str, Path)) else "<midi>"
    try:
        if isinstance(midi, mido.MidiFile):
            mid = midi
        else:
            src = {"file": io.BytesIO(midi)} if isinstance(midi, bytes) else {"filename": str(midi)}
            mid = mido.MidiFile(**src, clip=True)
        if mid.ticks_per_beat <= 0:
            raise ValueError("ticks per beat must be positive")
        to_seconds, tempos, explicit = _tempo_map(mid)
        file_end = to_seconds(max((t for t, _ in _absolute(mid.tracks)), default=0))
    except (OSError, ValueError, EOFError, KeyError, IndexError, TypeError) as e:
        raise RenderError(f"{where}: not a readable MIDI file ({e}); fix or remove it") from None
    limit = float("inf") if max_seconds is None else max_seconds
    parts: dict[tuple[int, int], Part] = {}
    keys: list[tuple[float, str]] = []

    def close(p: Part, start: float, end: float, pitch: int, vel: int) -> None:
        end = min(end, start + max_note_seconds, limit)
        if start < limit and end - start >= 1e-3:
            p.notes.append(Note(start, end, pitch, vel))

    for tr, track in enumerate(mid.tracks):
        programs: dict[int, int] = {}
        sounding: dict[tuple[int, int], tuple[float, int]] = {}
        orphan_offs: set[tuple[int, int, int]] = set()  # note-offs at the current tick with nothing sounding
        part = lambda ch: parts.setdefault((tr, ch), Part(programs.get(ch, 0), ch == DRUM_CHANNEL))  # noqa: E731
        for tick, msg in _absolute([track]):
            t = to_seconds(tick)
            if msg.type == "key_signature":
                keys.append((t, msg.key))
            elif msg.type == "program_change":
                programs.setdefault(msg.channel, msg.program)
                if not part(msg.channel).notes:
                    part(msg.channel).program = programs[msg.channel]
            elif msg.type == "note_on" and msg.velocity > 0:
                key = (msg.channel, msg.note)
                if (*key, tick) in orphan_offs:
                    orphan_offs.discard((*key, tick))
                elif key in sounding:
                    start, vel = sounding.pop(key)
                    close(part(msg.channel), start, t, msg.note, vel)
                    sounding[key] = (t, msg.velocity)
                else:
                    sounding[key] = (t, msg.velocity)
            elif msg.type in ("note_on", "note_off"):
                if (msg.channel, msg.note) in sounding:
                    start, vel = sounding.pop((msg.channel, msg.note))
                    close(part(msg.channel), start, t, msg.note, vel)
                else:
                    orphan_offs = {o for o in orphan_offs if o[2] == tick} | {(msg.channel, msg.note, tick)}
            elif msg.type == "control_change" and msg.control in SAFE_CONTROLS and t < limit:
                part(msg.channel).controls.append((t, msg.control, msg.value))
            elif msg.type == "pitchwheel" and t < limit:
                part(msg.channel).bends.append((t, msg.pitch))
        for (ch, pitch), (start, vel) in sounding.items():  # stuck notes
            close(part(ch), start, file_end if file_end > start else start + 1.0, pitch, vel)
    out = [p for p in parts.values() if p.notes]
    for p in out:
        p.notes.sort(key=lambda n: (n.start, n.pitch))
        if any(c == 64 for _, c, _ in p.controls):
            p.controls.append((max(n.end for n in p.notes), 64, 0))
    return Performance(out, tempos, sorted(keys), explicit)
