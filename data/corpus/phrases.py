"""Noun, place and time phrases of the built-in sentence generator.

:class:`PhraseMaker` draws noun phrases (with determiners, adjectives, possessives and counts),
mass-noun measures, adjective phrases, places, destinations, clock times and time phrases that
agree with a tense. It is mixed into :class:`data.corpus.sentences.SentenceGenerator`, whose
clause layer supplies ``_relative`` (the relative clause after a noun).
"""

from __future__ import annotations

import random
from typing import Callable, NamedTuple

from data.corpus import inflection as forms
from data.corpus import vocabulary as V


class Subj(NamedTuple):
    text: str
    person: int  # 1, 2 or 3
    plural: bool
    pron: str  # the subject pronoun that can refer back to it, "" when none fits
    cat: str  # p person, a animal, t thing, f food, d drink, x text, l place, w weather
    tag: str = ""  # an animal's sound verb


class _Noun(NamedTuple):
    sg: str
    pl: str
    tag: str
    mass: bool


def _nouns(entries, mass=False) -> list[_Noun]:
    return [_Noun(*forms.split_plural(w), tag, mass) for w, tag in entries]


PRON = {t: Subj(t, person, plural, t, "p") for t, person, plural in (
    ("I", 1, False), ("you", 2, False), ("he", 3, False), ("she", 3, False), ("we", 1, True), ("they", 3, True))}
_OBJ_PRON = "me you him her us them".split()
NAMES = [(n, "she") for n in V.FEMALE_NAMES] + [(n, "he") for n in V.MALE_NAMES]
_GENDER = {"f": "she", "m": "he", "": ""}
_KIN = {w for w, _ in V.KIN}
# People one can say "my ..." of.
_OWNABLE = _KIN | set("teacher doctor dentist lawyer coach manager accountant barber tailor mechanic".split())
_OPENING = set(V.OPENING_PLACES)
NOUNS = {
    "p": _nouns(V.KIN) + _nouns((w, "") for w in V.PROFESSIONS) + _nouns(V.OTHER_PEOPLE),
    "a": _nouns(V.ANIMALS), "t": _nouns((w, "") for w in V.THINGS), "l": _nouns(V.PLACES),
    "f": _nouns((w, "") for w in V.FOODS) + _nouns(V.MASS_FOODS, mass=True), "d": _nouns(V.DRINKS, mass=True),
    "x": _nouns((w, "") for w in V.TEXTS), "s": _nouns((w, "") for w in V.STORIES),
}
ADJ = {"p": V.PERSON_ADJ, "a": V.ANIMAL_ADJ, "t": V.THING_ADJ, "f": V.FOOD_ADJ, "d": V.DRINK_ADJ,
       "x": V.TEXT_ADJ, "s": V.TEXT_ADJ, "l": V.PLACE_ADJ, "w": V.WEATHER_ADJ}
_OWNERS = "my your his her our their".split()
NEAR = ("near", "behind", "next to", "outside", "opposite", "in front of", "beside", "across from")


class PhraseMaker:
    """Phrases drawn from ``self.rng``; ``_r`` and ``_c`` are its ``random`` and ``choice``."""

    rng: random.Random
    _r: Callable[[], float]
    _c: Callable

    def _np(self, cat: str, rich: int, role: str, depth: int = 0, pron_ok: bool = True) -> Subj:
        r, c = self._r, self._c
        if cat == "p" and pron_ok:
            x = r()
            if x < 0.3:
                return c(list(PRON.values())) if role == "subj" else Subj(c(_OBJ_PRON), 3, False, "", "p")
            if x < 0.55:
                name, pron = c(NAMES)
                return Subj(name, 3, False, pron, "p")
        if cat == "l" and role == "obj" and r() < 0.35:
            return Subj(c(V.CITIES), 3, False, "it", "l")
        if cat == "m":  # "lunch", "a quick lunch"
            meal = c(V.MEALS) if r() < 0.7 else c(V.MEAL_ADJ) + " " + c(V.MEALS)
            return Subj(meal if " " not in meal else f"{forms.article(meal)} {meal}", 3, False, "it", "m")
        noun = c(NOUNS[cat])
        adj = c(ADJ[cat]) if r() < 0.12 + 0.2 * rich else ""
        if noun.mass:
            return Subj(self._mass(noun, adj), 3, False, "it", cat)
        plural = r() < 0.3
        x = r()
        if noun.sg in _KIN and x < 0.7 or 0.75 < x < 0.87 and (cat != "p" or noun.sg in _OWNABLE):
            det = c(_OWNERS) if r() < 0.7 or noun.sg not in _KIN else c(NAMES)[0] + "'s"
        elif plural:
            det = "the" if x < 0.3 else c(("these", "those", "some", "many", "several", "a few", "")) if x < 0.75 \
                else self._count(12 if r() < 0.7 else 99)
        else:
            det = "the" if x < 0.45 else "a" if x < 0.75 else c(("this", "that"))
        phrase = (adj + " " if adj else "") + (noun.pl if plural else noun.sg)
        det = forms.article(phrase) if det == "a" else det
        text = f"{det} {phrase}" if det else phrase
        if depth == 0 and rich >= 2 and r() < 0.35:
            text += " " + self._relative(cat, plural)
        elif rich >= 1 and cat in "tfx" and r() < 0.1:
            text += " " + self._thing_spot()
        pron = "they" if plural else _GENDER.get(noun.tag, "") if cat == "p" else "it"
        tag = noun.tag if cat == "a" and not plural else "open" if noun.sg in _OPENING else ""
        return Subj(text, 3, plural, pron, cat, tag)

    def _mass(self, noun: _Noun, adj: str) -> str:
        x, phrase = self._r(), f"{adj} {noun.sg}" if adj else noun.sg
        if x < 0.3:
            return "the " + phrase
        if x < 0.45:
            return "some " + phrase
        if x < 0.6:
            return self._c(_OWNERS) + " " + phrase
        if x < 0.85:
            n = 1 if self._r() < 0.6 else self.rng.randint(2, 5)
            unit = noun.tag if n == 1 else forms.plural(noun.tag)
            return f"{forms.article(unit) if n == 1 else forms.number_words(n)} {unit} of {phrase}"
        return phrase

    def _adjp(self, cat: str, pool=None) -> str:
        if pool is None and cat == "p" and self._r() < 0.15:
            return self._c(V.PREDICATIVE_ADJ)
        adj = self._c(pool or ADJ[cat])
        return self._c(V.DEGREE) + " " + adj if self._r() < 0.3 else adj

    def _place(self, rich: int = 0) -> str:
        r, c, x = self._r, self._c, self._r()
        if x < 0.22:
            return "in " + c(V.CITIES)
        if x < 0.3:
            return c(("at home", "at work", "at school", "upstairs", "downstairs", "outside", "next door"))
        place = c(NOUNS["l"])
        prep = place.tag if x < 0.8 else c(NEAR)
        det = "the" if r() < 0.85 else "a"
        phrase = f"{c(V.PLACE_ADJ)} {place.sg}" if r() < 0.1 + 0.2 * rich or det == "a" else place.sg
        return f"{prep} {forms.article(phrase) if det == 'a' else det} {phrase}"

    def _thing_spot(self) -> str:
        c = self._c
        if self._r() < 0.6:
            return f"{c(('on', 'under', 'behind', 'next to', 'near', 'beside'))} the {c(V.SURFACES)}"
        return f"{c(('in', 'inside'))} {c(('the', 'the', 'my', 'your', 'her', 'his'))} {c(V.CONTAINERS)}"

    def _destination(self, verb: str) -> str:
        r, c, x = self._r, self._c, self._r()
        if x < 0.4 or verb in ("fly", "sail"):
            if x < 0.1:
                return c(("home", "back home") + (("to work", "to school", "to bed") if verb == "go" else ()))
            return c(("to ", "to ", "from ", "toward ")) + c(V.CITIES)
        if x < 0.55:
            return c(("through", "across", "around")) + " the " + c(V.OPEN_AREAS)
        if x < 0.6:
            return "along the " + c(("river", "street", "beach", "canal", "road", "path", "coast"))
        return c(("to", "to", "to", "toward", "past")) + " the " + c(NOUNS["l"]).sg

    def _count(self, top: int = 20) -> str:
        return forms.number_words(self.rng.randint(2, top))

    def _clock(self) -> str:
        h, x = self.rng.randint(1, 12), self._r()
        hour = forms.number_words(h)
        if x < 0.08:
            return self._c(("noon", "midnight", "dawn", "sunrise", "sunset"))
        t = (f"{hour} o'clock" if x < 0.35 else f"half past {hour}" if x < 0.5 else
             f"a quarter {self._c(('past', 'to'))} {hour}" if x < 0.65 else
             f"{hour} {self._c(('fifteen', 'thirty', 'forty five', 'twenty', 'ten', 'oh five', 'fifty'))}")
        return t + (" " + self._c(("in the morning", "in the evening", "at night")) if self._r() < 0.2 else "")

    def _time(self, tense: str) -> str:
        """A time phrase that fits ``tense``; "" for a bare verb phrase."""
        r, c, x = self._r, self._c, self._r()
        day, units = c(V.DAYS), c(V.UNITS)
        if tense == "past":
            if x < 0.3:
                return c(V.PAST_TIMES)
            if x < 0.45:
                return "last " + c((day, "week", "month", "year", c(V.SEASONS), "night"))
            if x < 0.6:
                return self._amount(units) + " ago"
        elif tense in ("future", "modal", "imper", "would"):
            if x < 0.3:
                return c(V.FUTURE_TIMES)
            if x < 0.45:
                return "next " + c((day, "week", "month", "year", c(V.SEASONS)))
            if x < 0.6:
                return "in " + self._amount(units)
        elif tense == "present":
            if x < 0.5:
                return c(V.HABITUAL_TIMES)
            if x < 0.7:
                return "every " + day if x < 0.6 else "on " + forms.plural(day)
            return "at " + self._clock()
        elif tense == "progressive":
            return c(V.NOW_TIMES)
        elif tense == "past_progressive":
            return c(V.WHILE_TIMES) if x < 0.7 else "at " + self._clock() + " " + c(("yesterday", "last night"))
        elif tense == "perfect":
            if x < 0.4:
                return c(V.SO_FAR_TIMES)
            if x < 0.7:
                return "for " + self._amount(units)
            return "since " + c((day, c(V.MONTHS), "last " + c(V.SEASONS), self._year(1950)))
        else:
            return ""
        if x < 0.7:
            return "on " + day + (" " + c(V.PARTS_OF_DAY) if r() < 0.4 else "")
        if x < 0.8:
            return "in " + (c(V.MONTHS) if r() < 0.7 or tense != "past" else self._year(1900))
        if x < 0.9:
            return "at " + self._clock()
        return f"on the {forms.ordinal_words(self.rng.randint(1, 28))} of {c(V.MONTHS)}"

    def _year(self, first: int) -> str:
        return forms.year_words(self.rng.randint(first, 2023))

    def _amount(self, unit: str) -> str:
        if self._r() < 0.35:
            return f"{forms.article(unit)} {unit}"
        return self._count(12) + " " + forms.plural(unit)
