"""Synthetic speakers: espeak-ng accents x variants x pitch, range and rate, with stable ids.

Variants alone are weak as distinct speakers, so every speaker varies accent, variant, pitch,
pitch range and rate together. The table is a pure function of (voices, count, seed): the same
arguments always give the same speakers with the same ids.
"""

from __future__ import annotations

import random
from dataclasses import asdict

from data.corpus.espeak import VoiceParams

# English accents shipped with espeak-ng.
ENGLISH_VOICES = (
    "en-us", "en", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-us-nyc", "en-gb-x-gbclan", "en-gb-x-gbcwmd",
)
# Human-sounding variants (robotic, whispered and novelty variants are left out).
MALE_VARIANTS = (
    "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "adam", "Andy", "benjamin", "boris", "caleb", "david",
    "ed", "edward", "Gene", "gustave", "ian", "iven", "john", "Lee", "Marco", "Michael", "Mike", "max",
    "michel", "miguel", "norbert", "pablo", "paul", "pedro", "quincy", "rob", "robert", "sandro", "travis",
    "victor", "zac", "Henrique", "Hugo", "Jacky", "Reed", "Storm", "Denis", "Diogo", "marcelo", "grandpa",
)
FEMALE_VARIANTS = (
    "f1", "f2", "f3", "f4", "f5", "Alicia", "Andrea", "Annie", "anika", "aunty", "belinda", "linda",
    "shelby", "steph", "grandma",
)


def speaker_id(p: VoiceParams) -> str:
    """A readable, stable id naming every parameter that makes the voice."""
    variant = p.variant or "default"
    return f"{p.voice}_{variant}_p{p.pitch}_r{p.range}_s{p.rate}".replace("-", "").replace("+", "_")


def make_speakers(count: int, voices: tuple[str, ...] | list[str] = ENGLISH_VOICES, seed: int = 0) -> dict[str, VoiceParams]:
    """``count`` distinct speakers as ``{speaker_id: VoiceParams}``, deterministic for the seed.

    Accents are cycled so each gets an equal share; variants alternate female/male; pitch, range
    and rate are drawn over the range where espeak stays intelligible.
    """
    if count < 1:
        raise ValueError("need at least one speaker")
    if not voices:
        raise ValueError("need at least one espeak voice")
    rng = random.Random(f"codeclm-speakers-{seed}")
    males, females = list(MALE_VARIANTS), list(FEMALE_VARIANTS)
    rng.shuffle(males)
    rng.shuffle(females)
    out: dict[str, VoiceParams] = {}
    i = 0
    while len(out) < count:
        female = i % 2 == 0
        pool = females if female else males
        variant = pool[(i // 2) % len(pool)]
        p = VoiceParams(
            voice=voices[i % len(voices)],
            variant=variant,
            pitch=rng.randint(30, 70),
            range=rng.randint(25, 85),
            rate=rng.randint(140, 195),
        )
        out.setdefault(speaker_id(p), p)
        i += 1
    return out


def describe(p: VoiceParams) -> dict:
    return {k: v for k, v in asdict(p).items() if k != "wordgap" or v}
