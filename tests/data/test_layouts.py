"""Layout discovery: every supported tree gives the exact keys, texts, speakers and problems."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from data.layouts import discover

SR = 8000


def tone(path: Path, freq: float = 220.0, n: int = 160, channels: int = 1, **kw) -> Path:
    """Write a short sine clip (format from the suffix unless given)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(n) / SR
    wav = np.stack([0.3 * np.sin(2 * np.pi * freq * (c + 1) * t) for c in range(channels)], axis=1)
    sf.write(path, wav.astype(np.float32), SR, **kw)
    return path


def text(path: Path, content: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content, encoding="utf-8")
    return path


def summary(found):
    return [(it.key, it.text, it.speaker) for it in found.items]


def test_librispeech(tmp_path):
    ch = tmp_path / "train-clean-5" / "19" / "198"
    text(ch / "19-198.trans.txt", "19-198-0000 HELLO WORLD\n19-198-0001 SECOND LINE\n19-198-0002 NO AUDIO HERE\n")
    tone(ch / "19-198-0000.flac")
    tone(ch / "19-198-0001.flac")
    tone(ch / "19-198-0009.flac")  # audio the transcript does not list
    ch2 = tmp_path / "train-clean-5" / "26" / "495"
    text(ch2 / "26-495.trans.txt", "26-495-0004 THIRD\n")
    tone(ch2 / "26-495-0004.flac")
    found = discover(tmp_path)
    assert found.layout == "librispeech"
    assert summary(found) == [
        ("train-clean-5_19_198_19-198-0000", "HELLO WORLD", "19"),
        ("train-clean-5_19_198_19-198-0001", "SECOND LINE", "19"),
        ("train-clean-5_26_495_26-495-0004", "THIRD", "26"),
    ]
    assert [it.extra["chapter"] for it in found.items] == ["198", "198", "495"]
    assert found.problems == [
        ("train-clean-5/19/198/19-198.trans.txt:3", "no audio file train-clean-5/19/198/19-198-0002.flac"),
        ("train-clean-5/19/198/19-198-0009.flac", "audio file has no transcript"),
    ]


def test_libritts_prefers_normalized_text(tmp_path):
    ch = tmp_path / "84" / "121123"
    tone(ch / "84_121123_000007_000000.wav")
    text(ch / "84_121123_000007_000000.normalized.txt", "Chapter one.")
    text(ch / "84_121123_000007_000000.original.txt", "CHAPTER I.")
    tone(ch / "84_121123_000008_000000.wav")
    text(ch / "84_121123_000008_000000.original.txt", "Only the original.")
    tone(ch / "84_121123_000009_000000.wav")  # no transcript
    text(ch / "84_121123_000010_000000.normalized.txt", "No audio.")
    text(ch / "84_121123.trans.tsv", "ignored\tignored\n")
    found = discover(tmp_path)
    assert found.layout == "libritts"
    assert summary(found) == [
        ("84_121123_84_121123_000007_000000", "Chapter one.", "84"),
        ("84_121123_84_121123_000008_000000", "Only the original.", "84"),
    ]
    assert found.items[0].extra == {"chapter": "121123"}
    assert sorted(src for src, _ in found.problems) == [
        "84/121123/84_121123_000009_000000.wav",
        "84/121123/84_121123_000010_000000.normalized.txt",
    ]


def test_vctk_silence_trimmed_takes_mic1(tmp_path):
    text(tmp_path / "txt" / "p225" / "p225_001.txt", "Please call Stella.\n")
    text(tmp_path / "txt" / "p225" / "p225_002.txt", "Ask her to bring these things.\n")
    text(tmp_path / "txt" / "p226" / "p226_003.txt", "No recording of this one.\n")
    trimmed = tmp_path / "wav48_silence_trimmed"
    for utt in ("p225_001", "p225_002"):
        tone(trimmed / "p225" / f"{utt}_mic1.flac")
        tone(trimmed / "p225" / f"{utt}_mic2.flac")
    tone(trimmed / "p315" / "p315_001_mic1.flac")  # VCTK ships p315 without text
    found = discover(tmp_path)
    assert found.layout == "vctk"
    assert summary(found) == [
        ("wav48_silence_trimmed_p225_p225_001_mic1", "Please call Stella.", "p225"),
        ("wav48_silence_trimmed_p225_p225_002_mic1", "Ask her to bring these things.", "p225"),
    ]
    assert found.items[0].extra == {"mic": "mic1"}
    assert found.problems == [
        ("wav48_silence_trimmed/p315/p315_001_mic1.flac", "audio file has no transcript txt/p315/p315_001.txt"),
        ("txt/p226/p226_003.txt", "transcript has no audio file"),
    ]
    both = discover(tmp_path, vctk_mic=None)
    assert len(both.items) == 4 and {it.extra["mic"] for it in both.items} == {"mic1", "mic2"}


def test_vctk_wav48(tmp_path):
    text(tmp_path / "txt" / "p225" / "p225_001.txt", "Please call Stella.")
    tone(tmp_path / "wav48" / "p225" / "p225_001.wav")
    found = discover(tmp_path)
    assert found.layout == "vctk"
    assert summary(found) == [("wav48_p225_p225_001", "Please call Stella.", "p225")]
    assert found.problems == []


def test_ljspeech_uses_normalized_column(tmp_path):
    text(
        tmp_path / "metadata.csv",
        'LJ001-0001|Printing, in the "only" sense, 1st|Printing, in the "only" sense, first\n'
        "LJ001-0002|In being comparatively modern.|\n"
        "LJ001-0003|Missing audio.|Missing audio.\n"
        "broken line without separators\n",
    )
    tone(tmp_path / "wavs" / "LJ001-0001.wav")
    tone(tmp_path / "wavs" / "LJ001-0002.wav")
    found = discover(tmp_path)
    assert found.layout == "ljspeech"
    assert summary(found) == [
        ("wavs_LJ001-0001", 'Printing, in the "only" sense, first', "LJ"),
        ("wavs_LJ001-0002", "In being comparatively modern.", "LJ"),
    ]
    assert found.problems == [
        ("metadata.csv:3", "no audio file wavs/LJ001-0003.wav"),
        ("metadata.csv:4", "line has no '|' separated transcript"),
    ]


def cv_tree(root: Path, tables: dict[str, list[tuple[str, str, str]]], ext: str) -> None:
    header = "client_id\tpath\tsentence\tup_votes\tdown_votes\tage\tgender\taccents\tlocale\n"
    for name, rows in tables.items():
        lines = [f"{c}\t{p}\t{s}\t2\t0\t{'twenties' if i == 0 else ''}\t{'female' if i == 0 else ''}\t\ten\n" for i, (c, p, s) in enumerate(rows)]
        text(root / name, header + "".join(lines))
        for _, p, _ in rows:
            if "missing" not in p:
                tone(root / "clips" / p, format=ext)


@pytest.fixture(scope="module")
def cv_ext() -> str:
    # Common Voice ships mp3; libsndfile writes MP3 from 1.1 on. Without it the tsv parsing is still
    # tested, with wav clips under the same names.
    return "MP3" if "MP3" in sf.available_formats() else "WAV"


def test_common_voice_validated(tmp_path, cv_ext):
    cv_tree(
        tmp_path,
        {
            "validated.tsv": [("aaa111", "common_voice_en_1.mp3", 'He said "hi".'), ("bbb222", "common_voice_en_2.mp3", "Second."),
                              ("aaa111", "common_voice_en_missing.mp3", "Gone.")],
            "train.tsv": [("ccc333", "common_voice_en_3.mp3", "Not in validated.")],
        },
        cv_ext,
    )
    found = discover(tmp_path)
    assert found.layout == "commonvoice"
    spk = lambda c: "cv_" + hashlib.sha1(c.encode()).hexdigest()[:12]  # noqa: E731
    assert summary(found) == [
        ("clips_common_voice_en_1", 'He said "hi".', spk("aaa111")),
        ("clips_common_voice_en_2", "Second.", spk("bbb222")),
    ]
    assert re.fullmatch(r"cv_[0-9a-f]{12}", found.items[0].speaker)
    assert found.items[0].extra == {"age": "twenties", "gender": "female", "locale": "en"}
    assert found.items[1].extra == {"locale": "en"}
    assert found.problems == [("validated.tsv:4", "no audio file clips/common_voice_en_missing.mp3")]


def test_common_voice_splits_without_validated(tmp_path, cv_ext):
    cv_tree(
        tmp_path,
        {"train.tsv": [("a", "x1.mp3", "One.")], "dev.tsv": [("b", "x2.mp3", "Two.")], "test.tsv": [("c", "x3.mp3", "Three.")]},
        cv_ext,
    )
    found = discover(tmp_path)
    assert found.layout == "commonvoice"
    assert [(it.key, it.text, it.extra["split"]) for it in found.items] == [
        ("clips_x1", "One.", "train"),
        ("clips_x2", "Two.", "dev"),
        ("clips_x3", "Three.", "test"),
    ]


def test_plain_folder_speakers_from_subfolders(tmp_path):
    tone(tmp_path / "intro.wav")
    text(tmp_path / "intro.txt", "  Welcome.\n")
    tone(tmp_path / "alice" / "a1.FLAC", format="FLAC")
    tone(tmp_path / "bob" / "take 2" / "b1.ogg", format="OGG")
    tone(tmp_path / "bob" / "b2.aiff")
    tone(tmp_path / ".hidden" / "x.wav")
    text(tmp_path / "README.md", "not audio")
    found = discover(tmp_path)
    assert found.layout == "plain"
    assert summary(found) == [
        ("alice_a1", None, "alice"),
        ("bob_b2", None, "bob"),
        ("bob_take_2_b1", None, "take 2"),
        ("intro", "Welcome.", None),
    ]
    assert found.problems == []


def test_plain_flat_folder_has_no_speakers(tmp_path):
    tone(tmp_path / "b.wav")
    tone(tmp_path / "a.wav")
    found = discover(tmp_path)
    assert summary(found) == [("a", None, None), ("b", None, None)]


def test_keys_unique_and_deterministic_on_collisions(tmp_path):
    tone(tmp_path / "x.wav")
    tone(tmp_path / "x.flac", format="FLAC")
    tone(tmp_path / "a b.wav")
    tone(tmp_path / "a_b.wav")
    tone(tmp_path / "音声.wav")
    keys = [it.key for it in discover(tmp_path).items]
    assert keys == [it.key for it in discover(tmp_path).items]
    assert len(set(keys)) == 5
    assert all(re.fullmatch(r"[A-Za-z0-9_\-]+", k) for k in keys)
    assert "a_b" in keys and "x" in keys  # the first in sort order keeps the plain key
    by_name = {it.path.name: it.key for it in discover(tmp_path).items}
    assert by_name["x.flac"] == "x" and by_name["x.wav"].startswith("x_")


def test_jsonl_manifest(tmp_path):
    tone(tmp_path / "a.wav")
    tone(tmp_path / "sub" / "b.wav")
    other = tone(tmp_path / "elsewhere" / "c.wav")
    lines = [
        json.dumps({"audio": "a.wav", "text": "hi", "speaker": 7, "lang": "en"}),
        json.dumps({"path": "sub/b.wav"}),
        "{not json",
        json.dumps({"audio": "missing.wav"}),
        json.dumps([1, 2]),
        "",
        json.dumps({"audio": str(other.resolve()), "text": "absolute"}),
    ]
    manifest = text(tmp_path / "lists" / "train.jsonl", "\n".join(lines) + "\n")
    # relative paths resolve against the manifest's folder
    for rel in ("a.wav", "sub/b.wav"):
        tone(tmp_path / "lists" / rel)
    found = discover(manifest)
    assert found.layout == "jsonl"
    assert summary(found) == [("a", "hi", "7"), ("sub_b", None, None), ("elsewhere_c", "absolute", None)]
    assert found.items[0].extra == {"lang": "en"}
    assert found.items[0].path == tmp_path / "lists" / "a.wav"
    assert [src for src, _ in found.problems] == ["train.jsonl:3", "train.jsonl:4", "train.jsonl:5"]
    assert "not valid JSON" in found.problems[0][1] and "missing.wav" in found.problems[1][1]


def test_missing_input_and_single_audio_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        discover(tmp_path / "nope")
    with pytest.raises(ValueError, match="single audio file"):
        discover(tone(tmp_path / "one.wav"))
