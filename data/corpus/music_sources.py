"""Where the music corpus' pieces come from, and what is known about each one.

Sources are music21's bundled corpus (:func:`score_sources`: shuffled and interleaved so that no
collection dominates) or every ``.mid``/``.midi`` under a folder (:func:`midi_sources`).
:func:`load_piece` parses one into sanitized notes plus its key (music21's analysis of a score, or
Krumhansl-Kessler profiles for a MIDI file, :func:`estimate_key`), key signature, composer,
collection and title.
"""

from __future__ import annotations

import copy
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from data.corpus.midi_notes import Performance, sanitize

MIN_KEY_CONFIDENCE = 0.5
SCORE_SUFFIXES = (".mxl", ".xml", ".musicxml", ".krn", ".abc")
EXCLUDED_FOLDERS = {"demos", "theoryExercises", "leadSheet", "schoenberg", "webern"}  # drills, chord charts, atonal
COMPOSERS = {
    "bach": "Bach", "beethoven": "Beethoven", "mozart": "Mozart", "haydn": "Haydn", "palestrina": "Palestrina",
    "monteverdi": "Monteverdi", "josquin": "Josquin des Prez", "chopin": "Chopin", "handel": "Handel",
    "corelli": "Corelli", "cpebach": "C. P. E. Bach", "schubert": "Schubert", "schumann_robert": "Robert Schumann",
    "schumann_clara": "Clara Schumann", "verdi": "Verdi", "weber": "Weber", "joplin": "Scott Joplin",
    "beach": "Amy Beach", "ciconia": "Ciconia", "lusitano": "Vicente Lusitano",
}
COLLECTIONS = {
    "essenFolksong": "folk song from the Essen collection", "oneills1850": "Irish tune from O'Neill's collection",
    "ryansMammoth": "fiddle tune from Ryan's Mammoth Collection", "airdsAirs": "Scottish air from Aird's collection",
    "miscFolk": "folk tune", "nottingham-dataset": "folk tune from the Nottingham collection",
    "trecento": "fourteenth-century Italian piece",
}
# Krumhansl-Kessler key profiles (C major / C minor), for MIDI files without a score to analyze.
_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
_TONICS = ("C", "C#", "D", "E-", "E", "F", "F#", "G", "A-", "A", "B-", "B")


@dataclass(frozen=True)
class Source:
    path: str
    label: str  # "bach/bwv66.6.mxl", "essenFolksong/kinder0.abc#50", or the path under the MIDI folder
    group: str  # corpus folder, or "midi"
    number: int | None = None  # tune number inside a multi-tune file


@dataclass
class Piece:
    performance: Performance
    key: str | None  # "F-sharp minor"; None when the best key correlates below MIN_KEY_CONFIDENCE
    key_confidence: float
    key_signature: str | None  # "3 sharps"
    composer: str | None
    collection: str | None
    title: str | None


def key_name(tonic: str, mode: str) -> str:
    """music21 spelling to words: ("F#", "minor") -> "F-sharp minor", ("B-", "major") -> "B-flat major"."""
    words = {"": "", "#": "-sharp", "##": "-double-sharp", "-": "-flat", "--": "-double-flat"}
    accidental = words.get(tonic[1:], tonic[1:])
    return f"{tonic[0].upper()}{accidental} {mode}"


def signature_name(sharps: int) -> str:
    if sharps == 0:
        return "no sharps or flats"
    n = abs(sharps)
    return f"{n} {'sharp' if sharps > 0 else 'flat'}{'s' if n > 1 else ''}"


def estimate_key(perf: Performance) -> tuple[str | None, float]:
    """Key from duration-weighted pitch classes against the Krumhansl-Kessler profiles."""
    hist = np.zeros(12)
    for p in perf.parts:
        for n in p.notes if not p.is_drum else ():
            hist[n.pitch % 12] += n.end - n.start
    if hist.sum() <= 0:
        return None, 0.0
    best = max((float(np.corrcoef(hist, np.roll(prof, t))[0, 1]), t, mode)
               for mode, prof in (("major", _MAJOR), ("minor", _MINOR)) for t in range(12))
    return key_name(_TONICS[best[1]], best[2]), best[0]


def score_sources(seed: int) -> Iterator[Source]:
    """music21 corpus pieces, shuffled by ``seed`` and interleaved so that no collection dominates."""
    from music21 import corpus

    groups: dict[str, list[Source]] = {}
    for path in sorted(corpus.getPaths()):
        parts = path.parts[path.parts.index("corpus") + 1 :]
        if path.suffix.lower() not in SCORE_SUFFIXES or parts[0] in EXCLUDED_FOLDERS:
            continue
        label = "/".join(parts)
        if path.suffix.lower() == ".abc":  # a file of many tunes: one source per tune number
            numbers = sorted({int(x) for x in re.findall(rb"^X:\s*(\d+)", path.read_bytes(), re.M)})
            groups.setdefault(parts[0], []).extend(Source(str(path), f"{label}#{x}", parts[0], x) for x in numbers)
        else:
            groups.setdefault(parts[0], []).append(Source(str(path), label, parts[0]))
    rng = np.random.default_rng(seed)
    queues = [[g[i] for i in rng.permutation(len(g))] for _, g in sorted(groups.items())]
    while queues:
        sizes = np.sqrt([len(q) for q in queues])
        q = queues[rng.choice(len(queues), p=sizes / sizes.sum())]
        yield q.pop()
        queues = [q for q in queues if q]


def midi_sources(midi_dir: str | Path, seed: int) -> list[Source]:
    root = Path(midi_dir)
    found = root.rglob("*") if root.is_dir() else ()
    files = sorted(p for p in found if p.suffix.lower() in (".mid", ".midi") and p.is_file())
    if not files:
        raise FileNotFoundError(f"no .mid or .midi files under {root}; pass a folder of MIDI files or leave out --midi")
    order = np.random.default_rng(seed).permutation(len(files))
    return [Source(str(files[i]), files[i].relative_to(root).as_posix(), "midi") for i in order]


def load_piece(src: Source, max_seconds: float) -> Piece:
    """Parse a source into sanitized notes plus what is known about it (key, signature, composer)."""
    if src.group == "midi":
        perf = sanitize(src.path, max_seconds=max_seconds)
        key, conf = estimate_key(perf)
        sig = None
        if perf.key_signatures:
            from music21 import key as m21key

            k = perf.key_signatures[0][1]
            tonic, mode = k.rstrip("m"), "minor" if k.endswith("m") else "major"
            sig = signature_name(m21key.Key(tonic[0] + tonic[1:].replace("b", "-"), mode).sharps)
        return Piece(perf, key if conf >= MIN_KEY_CONFIDENCE else None, conf, sig, None, None, None)
    from music21 import converter, midi, stream

    kw = {"number": src.number} if src.number is not None else {}
    with warnings.catch_warnings():  # music21 warns about every overfull measure
        warnings.simplefilter("ignore")
        reader = converter.Converter()
        reader.parseFileNoPickle(src.path, **kw)  # music21 caches nothing (parseFile would pickle into a temp dir)
        score = reader.stream
    if isinstance(score, stream.Opus):
        score = score.scores[0]
    seen: set[int] = set()  # the ABC reader may put one TimeSignature into two measures; MIDI export then fails
    for container in list(score.recurse(streamsOnly=True, includeSelf=True)):
        for el in list(container.getElementsByClass("TimeSignature")):
            if id(el) in seen:
                container.replace(el, copy.deepcopy(el))
            seen.add(id(el))
    analysis = score.analyze("key")
    sigs = list(score.recurse().getElementsByClass("KeySignature"))
    if sigs:  # of the analysis' candidates, prefer a key the signature agrees with when it fits nearly as well
        agree = [k for k in [analysis, *analysis.alternateInterpretations] if k.sharps == sigs[0].sharps]
        if agree and agree[0].correlationCoefficient >= max(MIN_KEY_CONFIDENCE, analysis.correlationCoefficient - 0.1):
            analysis = agree[0]
    explicit = any(True for _ in score.recurse().getElementsByClass("MetronomeMark"))
    perf = sanitize(midi.translate.music21ObjectToMidiFile(score).writestr(), max_seconds=max_seconds)
    perf.explicit_tempo = explicit
    md = score.metadata
    composer = COMPOSERS.get(src.group) or (None if src.group in COLLECTIONS else (md.composer if md else None))
    conf = float(analysis.correlationCoefficient)
    return Piece(perf, key_name(analysis.tonic.name, analysis.mode) if conf >= MIN_KEY_CONFIDENCE else None, conf,
                 signature_name(sigs[0].sharps) if sigs else None, composer, COLLECTIONS.get(src.group),
                 md.bestTitle if md else None)
