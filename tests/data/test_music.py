"""Music corpus: safe MIDI rendering (stuck notes, length caps) and captioned clips in shards."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import mido
import numpy as np
import pytest
import soundfile as sf

from data.corpus.midi_render import INSTALL_HINT, RenderError, find_renderer, sanitize

SR = 16000


def midi_bytes(tracks: list[list[tuple[float, mido.Message]]], tempo_bpm: float = 120.0, key: str | None = None,
               ) -> bytes:
    """A type-1 MIDI file; each track is (beats, message) pairs with absolute times in beats."""
    mid = mido.MidiFile(type=1, ticks_per_beat=480)
    meta = [mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(tempo_bpm), time=0)]
    if key:
        meta.append(mido.MetaMessage("key_signature", key=key, time=0))
    mid.tracks.append(mido.MidiTrack(meta))
    for events in tracks:
        track, now = mido.MidiTrack(), 0
        for beat, msg in sorted(events, key=lambda e: e[0]):
            tick = round(beat * 480)
            track.append(msg.copy(time=tick - now))
            now = tick
        mid.tracks.append(track)
    buf = io.BytesIO()
    mid.save(file=buf)
    return buf.getvalue()


def notes(pitches: list[int], beats: float = 1.0, channel: int = 0, program: int = 0, start: float = 0.0):
    ev = [(0.0, mido.Message("program_change", channel=channel, program=program))]
    for i, p in enumerate(pitches):
        ev.append((start + i * beats, mido.Message("note_on", channel=channel, note=p, velocity=90)))
        ev.append((start + (i + 1) * beats, mido.Message("note_off", channel=channel, note=p, velocity=0)))
    return ev


def backends() -> list[str]:
    found = []
    for name in ("fluidsynth", "tinysoundfont"):
        try:
            find_renderer(name)
            found.append(name)
        except RenderError:
            pass
    return found


BACKENDS = backends()
needs_renderer = pytest.mark.skipif(not BACKENDS, reason=f"no MIDI renderer; {INSTALL_HINT}")


def on(ch: int, pitch: int) -> mido.Message:
    return mido.Message("note_on", channel=ch, note=pitch, velocity=80)


def off(ch: int, pitch: int) -> mido.Message:
    return mido.Message("note_off", channel=ch, note=pitch)


def test_sanitize_pairs_caps_and_drops_notes():
    stuck = [(0.0, on(0, 60))]  # never switched off
    retrigger = [(0.0, on(1, 64)), (1.0, on(1, 64)), (2.0, off(1, 64))]
    empty = [(3.0, on(2, 67)), (3.0, off(2, 67))]
    grace = [(2.0, off(4, 62)), (2.0, on(4, 62))]  # how notation exports a zero-length grace note
    late = [(400.0, mido.Message("control_change", channel=3, control=7, value=100))]  # the file lasts 200 s
    perf = sanitize(midi_bytes([stuck, retrigger, empty, grace, late]), max_note_seconds=4.0)
    by_pitch: dict[int, list] = {}
    for n in (n for p in perf.parts for n in p.notes):
        by_pitch.setdefault(n.pitch, []).append((round(n.start, 3), round(n.end, 3)))
    assert by_pitch[60] == [(0.0, 4.0)]  # ends at the file's end (200 s), capped at 4 s
    assert by_pitch[64] == [(0.0, 0.5), (0.5, 1.0)]  # a repeated note-on ends the sounding note
    assert set(by_pitch) == {60, 64} and perf.duration == 4.0  # zero-length and grace notes dropped
    alone = sanitize(midi_bytes([stuck]))
    assert [(n.start, n.end) for n in alone.parts[0].notes] == [(0.0, 1.0)]  # nothing follows: 1 s


def test_sanitize_rejects_garbage_with_a_clear_error():
    with pytest.raises(RenderError, match="not a readable MIDI file"):
        sanitize(b"MThd not really midi")


def test_missing_backend_error_names_the_install_command(monkeypatch):
    import data.corpus.midi_render as mr

    monkeypatch.setattr(mr.shutil, "which", lambda _: None)
    monkeypatch.setattr(mr, "bundled_soundfont", lambda: None)
    hint = "apt-get install fluidsynth fluid-soundfont-gm.*pip install --no-deps tinysoundfont pretty-midi"
    with pytest.raises(RenderError, match=hint):
        mr.find_renderer()


def fake_fluidsynth(tmp_path: Path, body: str):
    from data.corpus.midi_render import FluidsynthRenderer

    exe = tmp_path / "fake-fluidsynth"
    exe.write_text('#!/bin/sh\nwhile [ "$1" != "-F" ]; do shift; done\n' + body + "\n")
    exe.chmod(0o755)
    (tmp_path / "gm.sf2").write_bytes(b"not used")
    return FluidsynthRenderer(tmp_path / "gm.sf2", executable=str(exe), grace_seconds=0.5)


def test_runaway_fluidsynth_output_is_cut_at_the_cap(tmp_path):
    out = fake_fluidsynth(tmp_path, 'exec cat /dev/zero > "$2"').render(midi_bytes([notes([60, 64])]), SR, 0.5)
    assert out.audio.shape == (2, round(1.5 * SR))  # killed once it wrote the cap: 1 s of notes + 0.5 s tail


def test_hung_fluidsynth_is_killed(tmp_path):
    with pytest.raises(RenderError, match="time limit"):
        fake_fluidsynth(tmp_path, "exec sleep 60").render(midi_bytes([notes([60])]), SR)


@needs_renderer
@pytest.mark.parametrize("backend", BACKENDS)
def test_render_two_notes(backend):
    out = find_renderer(backend).render(midi_bytes([notes([60, 64])]), SR, tail_seconds=0.5)  # 2 beats at 120 bpm
    assert out.backend == backend and out.audio.dtype == np.float32 and out.audio.shape[0] == 2
    assert out.seconds == pytest.approx(1.0)
    assert SR * 0.9 <= out.audio.shape[1] <= round(1.5 * SR)
    body = out.audio[:, : SR]
    assert np.sqrt(np.mean(body**2)) > 1e-3 and np.isfinite(out.audio).all()
    spectrum = np.abs(np.fft.rfft(body[0, : SR // 2] * np.hanning(SR // 2)))  # first note: C4, 261.6 Hz
    assert abs(np.argmax(spectrum) * 2 - 261.6) < 8 or abs(np.argmax(spectrum) * 2 - 523.3) < 8


@needs_renderer
@pytest.mark.parametrize("backend", BACKENDS)
def test_stuck_note_render_is_capped(backend):
    stuck = [(0.0, mido.Message("program_change", program=19)), (0.0, mido.Message("note_on", note=60, velocity=90)),
             (600.0, mido.Message("control_change", control=7, value=100))]  # organ held "forever": 300 s
    out = find_renderer(backend).render(sanitize(midi_bytes([stuck]), max_note_seconds=2.0), SR, tail_seconds=1.0)
    assert out.seconds == pytest.approx(2.0) and out.cap_seconds == pytest.approx(3.0)
    assert 0 < out.audio.shape[1] <= 3 * SR


@pytest.fixture(scope="module")
def midi_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("midi")
    arpeggio = [60, 64, 67, 72, 67, 64, 60, 67, 65, 69, 72, 69, 67, 71, 74, 71, 60, 64, 67, 60]
    (d / "c_major_tune.mid").write_bytes(midi_bytes([notes(arpeggio, 0.5, program=40)], 120, key="C"))
    bass = [45, 52, 57, 52, 50, 53, 57, 53, 52, 56, 59, 56, 45]
    melody = [69, 72, 76, 74, 72, 71, 69, 72, 77, 76, 74, 72, 71, 68, 69]
    (d / "duet.mid").write_bytes(midi_bytes([notes(melody, 0.5), notes(bass, 0.75, channel=1, program=32)], 100))
    return d


@needs_renderer
def test_build_music_from_midi_folder(tmp_path, midi_dir):
    from data.corpus.music import build_music

    m = build_music(tmp_path / "a", hours=6 / 3600, sample_rate=SR, midi_dir=midi_dir, clip_seconds=2.0, progress=False)
    assert m["name"] == "music" and m["total_count"] == 3 and m["total_duration"] == pytest.approx(6.0)
    assert m["sample_rate"] == SR and m["channels"] == 1 and not m["skipped"]
    metas = []
    for shard in m["shards"]:
        with tarfile.open(tmp_path / "a" / shard["url"]) as tar:
            files = {i.name: tar.extractfile(i).read() for i in tar.getmembers()}
        for name in sorted(n for n in files if n.endswith(".json")):
            meta = json.loads(files[name])
            wav, sr = sf.read(io.BytesIO(files[name[:-5] + ".flac"]), dtype="float32")
            assert sr == SR and wav.ndim == 1 and len(wav) == 2 * SR and np.sqrt(np.mean(wav**2)) > 1e-3
            metas.append(meta)
    assert len(metas) == 3
    for meta in metas:
        text = meta["text"]
        assert meta["duration"] == 2.0 and meta["sample_rate"] == SR and meta["channels"] == 1
        assert all(inst in text for inst in meta["instruments"]) and len(meta["programs"]) >= 1
        assert f"{meta['tempo']} tempo at {meta['tempo_bpm']} bpm" in text
        bpm = meta["tempo_bpm"]
        assert meta["tempo"] == ("slow" if bpm < 80 else "moderate" if bpm < 120 else "fast")
        bpm0 = 120 if meta["source"] == "c_major_tune.mid" else 100
        assert 0.84 * bpm0 <= meta["tempo_bpm"] <= 1.16 * bpm0  # a marked tempo changes by at most 15%
        assert meta["source"] in text and meta["composer"] is None
        if meta["source"] == "c_major_tune.mid":
            assert meta["musical_key"] == "C major" and "in C major" in text
            assert meta["key_signature"] == "no sharps or flats" and meta["parts"] == 1 and text.startswith("solo ")
        elif meta["musical_key"]:
            assert f"in {meta['musical_key']}" in text
    again = build_music(tmp_path / "a", hours=6 / 3600, sample_rate=SR, midi_dir=midi_dir, clip_seconds=2.0,
                        progress=False)
    assert again == m  # the same build is reused
    par = build_music(tmp_path / "b", hours=6 / 3600, sample_rate=SR, midi_dir=midi_dir, clip_seconds=2.0, workers=2,
                      progress=False)
    assert {k: v for k, v in par.items() if k != "build"} == {k: v for k, v in m.items() if k != "build"}
    for s in m["shards"]:  # deterministic whatever the number of processes
        assert (tmp_path / "b" / s["url"]).read_bytes() == (tmp_path / "a" / s["url"]).read_bytes()


@needs_renderer
def test_bad_piece_is_a_skip_not_a_failure(tmp_path):
    from data.corpus.music import PieceJob, Source, render_piece

    bad = tmp_path / "broken.mid"
    bad.write_bytes(b"MThd garbage")
    r = find_renderer()
    res = render_piece(PieceJob(0, Source(str(bad), "broken.mid", "midi"), SR, 2.0, 0, 60.0, r.name, str(r.soundfont)))
    assert res.clips == [] and "not a readable MIDI file" in res.skip


@needs_renderer
def test_build_music_from_music21_corpus(tmp_path):
    pytest.importorskip("music21")
    from data.corpus.music import build_music

    m = build_music(tmp_path, hours=2 / 3600, sample_rate=SR, clip_seconds=2.0, max_piece_seconds=20.0, progress=False)
    assert m["total_count"] == 1 and m["total_duration"] == pytest.approx(2.0)
    with tarfile.open(tmp_path / m["shards"][0]["url"]) as tar:
        meta = json.loads(next(tar.extractfile(i).read() for i in tar.getmembers() if i.name.endswith(".json")))
    text = meta["text"]
    assert meta["composer"] or meta["collection"]
    assert (meta["composer"] or meta["collection"]) in text and f"{meta['tempo_bpm']} bpm" in text
    assert meta["musical_key"] is None or f"in {meta['musical_key']}" in text
    assert meta["source"].split("/")[0] and all(inst in text for inst in meta["instruments"])
