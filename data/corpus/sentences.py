"""English sentences for the built-in speech corpus, and the reader of a user's sentence file.

:class:`SentenceGenerator` composes sentences from the lexicon in :mod:`data.corpus.vocabulary`
with a small phrase grammar: statements, negations, yes/no and wh- questions, imperatives,
exclamations, compound and complex sentences, relative clauses, reported and quoted speech.
Verbs agree with their subjects, time phrases agree with the tense, and articles with the
sound of the next word. Every sentence is drawn in one of three length bands with equal
probability (2-5, 6-15 and 16-30 words), so at speaking rate durations span about 1-10 s.
Quoted speech may begin or end with a double quotation mark.
"""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import NamedTuple

from data.corpus import vocabulary as V

# (shortest, longest) words in a band, and how rich its phrases are.
BANDS = ((2, 5, 0), (6, 15, 1), (16, 30, 2))  # a long sentence is drawn at richness 2 or 3
MAX_LINE_CHARS = 300


class _Subj(NamedTuple):
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
    return [_Noun(*V.split_plural(w), tag, mass) for w, tag in entries]


_PRON = {t: _Subj(t, person, plural, t, "p") for t, person, plural in (
    ("I", 1, False), ("you", 2, False), ("he", 3, False), ("she", 3, False), ("we", 1, True), ("they", 3, True))}
_OBJ_PRON = "me you him her us them".split()
_SELF = {"I": "me", "you": "you", "we": "us"}
_NAMES = [(n, "she") for n in V.FEMALE_NAMES] + [(n, "he") for n in V.MALE_NAMES]
_GENDER = {"f": "she", "m": "he", "": ""}
_KIN = {w for w, _ in V.KIN}
# People one can say "my ..." of.
_OWNABLE = _KIN | set("teacher doctor dentist lawyer coach manager accountant barber tailor mechanic".split())
_OPENING = set(V.OPENING_PLACES)
_NOUNS = {
    "p": _nouns(V.KIN) + _nouns((w, "") for w in V.PROFESSIONS) + _nouns(V.OTHER_PEOPLE),
    "a": _nouns(V.ANIMALS), "t": _nouns((w, "") for w in V.THINGS), "l": _nouns(V.PLACES),
    "f": _nouns((w, "") for w in V.FOODS) + _nouns(V.MASS_FOODS, mass=True), "d": _nouns(V.DRINKS, mass=True),
    "x": _nouns((w, "") for w in V.TEXTS), "s": _nouns((w, "") for w in V.STORIES),
}
_ADJ = {"p": V.PERSON_ADJ, "a": V.ANIMAL_ADJ, "t": V.THING_ADJ, "f": V.FOOD_ADJ, "d": V.DRINK_ADJ,
        "x": V.TEXT_ADJ, "s": V.TEXT_ADJ, "l": V.PLACE_ADJ, "w": V.WEATHER_ADJ}
_TRANS = {c: [v for v, cats in V.TRANSITIVE if c in cats] for c in "tfdxsplam"}
_NO_PASSIVE = V.STATIVE | set("enjoy miss remember reach enter leave try skip hold keep need want use".split())
_PASSIVE = {c: [v for v in vs if " " not in v and v not in _NO_PASSIVE] for c, vs in _TRANS.items()}
_OWNERS = "my your his her our their".split()
_NEAR = ("near", "behind", "next to", "outside", "opposite", "in front of", "beside", "across from")
_OTHER_KINDS = {"a": ("intr", "intr", "trans", "be_adj", "be_loc", "link"),
                "t": ("be_adj", "be_loc", "passive", "link", "intr", "cost"),
                "f": ("be_adj", "be_loc", "passive", "link", "cost"), "d": ("be_adj", "be_loc", "passive", "link"),
                "x": ("be_adj", "be_loc", "passive"), "l": ("be_adj", "be_loc", "passive", "open", "open"),
                "w": ("rain", "be_adj", "be_adj")}
_LINKING = {"a": ("look", "seem", "sound"), "t": ("look", "seem", "feel"), "f": ("look", "taste", "smell"),
            "d": ("taste", "smell", "look")}
_TENSES = ("present",) * 5 + ("past",) * 6 + ("future",) * 3 + (
    "perfect", "perfect", "progressive", "progressive", "past_progressive", "modal")
# Verb phrase kinds for a person; the first 14 do not embed another clause.
_PERSON_KINDS = ("trans",) * 8 + ("intr",) * 4 + ("motion",) * 2 + (
    "ditrans", "be_adj", "be_adj", "be_loc", "be_role", "link", "inf", "inf", "ger", "report")
_CONTRACT = {"is": "isn't", "are": "aren't", "was": "wasn't", "were": "weren't", "do": "don't", "does": "doesn't",
             "did": "didn't", "will": "won't", "has": "hasn't", "have": "haven't", "can": "can't",
             "could": "couldn't", "should": "shouldn't", "would": "wouldn't", "must": "mustn't"}
_SUBJ_CONTRACT = {"am": "'m", "is": "'s", "are": "'re", "will": "'ll", "have": "'ve", "has": "'s"}
_SOME = re.compile(r"\bsome\b")
_FORMULAE = ("Good morning, {n}.", "Thank you, {n}.", "Happy birthday, {n}!", "See you {d}.", "Welcome to {c}!",
             "Good night, {n}.", "Nice to meet you, {n}.", "Excuse me, {n}.", "Well done, {n}!", "Goodbye, {n}.")


def _append(words: str, phrase: str) -> str:
    """``words`` + ``phrase``, unless that would repeat a word ("checked in in Paris")."""
    return words if words.endswith(" " + phrase.split(" ", 1)[0]) else words + " " + phrase


class SentenceGenerator:
    """Endless grammatical English sentences, reproducible for a seed."""

    def __init__(self, seed: int = 0):
        self.rng = random.Random(seed)
        self._r, self._c = self.rng.random, self.rng.choice

    # --- public -------------------------------------------------------------------------------

    def sample(self) -> str:
        """One sentence, its length drawn from one of the three bands."""
        lo, hi, rich = self._c(BANDS)
        rich += rich == 2 and self._r() < 0.8
        for _ in range(40):
            text = self._sentence(rich)
            if lo <= text.count(" ") + 1 <= hi:
                break
        return text[0].upper() + text[1:] if text[0] != '"' else '"' + text[1].upper() + text[2:]

    def sentences(self, n: int) -> list[str]:
        """``n`` sentences, all distinct unless the grammar runs out of new ones."""
        out, seen = [], set()
        for _ in range(20 * n + 100):
            if len(out) == n:
                break
            s = self.sample()
            if s not in seen:
                seen.add(s)
                out.append(s)
        while len(out) < n:
            out.append(self.sample())
        return out

    # --- sentence types -----------------------------------------------------------------------

    def _sentence(self, rich: int, quotes: bool = True) -> str:
        """One sentence without its initial capital; ``rich`` (0-3) sets how much it is elaborated."""
        c = self._c
        if self._r() < (0, 0.12, 0.85, 0.8)[rich]:
            r = self._r()
            if r < 0.1 and quotes:
                return self._quote(rich)
            return self._compound(rich) if r < 0.55 else self._complex(rich)
        r = self._r()
        if rich == 0 and r < 0.12:
            return self._exclaim() if r < 0.07 else c(_FORMULAE).format(
                n=c(_NAMES)[0], c=c(V.CITIES), d=self._time("future"))
        rich += rich >= 2  # a long sentence made of one clause needs more detail
        if r < 0.3:
            opener = c(V.OPENERS) + ", " if rich and self._r() < 0.1 else ""
            return opener + self._clause(rich=rich) + ("!" if self._r() < 0.06 else ".")
        if r < 0.4:
            return self._clause(rich=rich, mode="neg") + "."
        if r < 0.52:
            return self._clause(rich=rich, mode=c(("ask", "ask", "ask", "negask"))) + "?"
        if r < 0.66:
            return self._wh(rich)
        if r < 0.8:
            return self._imperative(rich)
        if r < 0.86:
            return self._clause(subj=_Subj("it", 3, False, "it", "w"), rich=rich) + "."
        if r < 0.92:
            return self._existential(rich)
        return self._clause(rich=rich, mode="neg" if self._r() < 0.3 else "decl") + "."

    def _exclaim(self) -> str:
        noun, adj = self._c(_NOUNS[self._c("ptal")]), self._c(V.EXCLAIM_ADJ)
        if self._r() < 0.3:
            return f"what {adj} {noun.pl}!"
        tail = " you have" if self._r() < 0.3 else ""
        return f"what {V.article(adj)} {adj} {noun.sg}{tail}!"

    def _wh(self, rich: int) -> str:
        r, c, tense = self._r(), self._c, self._c(_TENSES)
        if r < 0.15:
            return self._clause(_Subj("who", 3, False, "", "p"), tense, rich) + "?"
        drop = "obj" if r < 0.5 else "place" if r < 0.7 else "time" if r < 0.85 else None
        subj = self._np("p", rich - 1, "subj")
        verb, rest, ocat = self._vp(subj, tense, rich, 0, drop)
        if drop == "obj":
            noun = c(_NOUNS.get(ocat) or _NOUNS["t"])
            if ocat == "p":
                wh = "who"
            elif self._r() < 0.3 and ocat in _NOUNS and not noun.mass:
                wh = "how many " + noun.pl if self._r() < 0.5 else "which " + noun.sg
            else:
                wh = "what"
        else:
            wh = {"place": "where", "time": "when"}.get(drop) or ("how" if verb != "be" and r < 0.95 else "why")
        return wh + " " + self._realize(subj, verb, rest, tense, "ask") + "?"

    def _imperative(self, rich: int) -> str:
        r, c = self._r(), self._c
        kinds = ("trans", "trans", "trans", "intr", "motion", "ditrans", "be_imp")
        verb, rest, _ = self._vp(_PRON["you"], "imper", rich, 0, None, c(kinds))
        vp = f"{verb} {rest}".strip()
        if r < 0.25:
            return c(("don't ", "do not ", "please don't ")) + vp + c((".", "!"))
        if r < 0.4:
            return "let's " + vp + "."
        if r < 0.55:
            return "please " + vp + "."
        if r < 0.7:
            return c(_NAMES)[0] + ", " + vp + c((".", "!", ", please."))
        return vp + c((".", ".", "!"))

    def _existential(self, rich: int) -> str:
        cat = self._c("tfap")
        noun, plural = self._c(_NOUNS[cat]), self._r() < 0.4
        adj = self._c(_ADJ[cat]) + " " if self._r() < 0.3 + 0.2 * rich else ""
        phrase = adj + (noun.pl if plural else noun.sg)
        if noun.mass:
            det, plural = "some", False
        else:
            det = V.article(phrase) if not plural else self._count(12) if self._r() < 0.3 else self._c(
                ("some", "many", "a few"))
        tense = self._c(("present", "present", "past", "future"))
        place = self._thing_spot() if cat in "tf" and self._r() < 0.5 else self._place(rich)
        rest = f"{det} {phrase} {place}" + (" " + self._time(tense) if self._r() < 0.2 * rich else "")
        mode = self._c(("decl", "decl", "decl", "neg", "ask"))
        end = "?" if mode == "ask" else "."
        return self._realize(_Subj("there", 3, plural, "", "x"), "be", rest, tense, mode) + end

    def _quote(self, rich: int) -> str:
        inner = self._sentence(max(rich - 1, 0), quotes=False)
        inner = inner[0].upper() + inner[1:]
        speaker = self._np("p", 0, "subj").text
        verb = self._c(V.SPEECH_VERBS[inner[-1]])
        if self._r() < 0.5:
            return f'{speaker} {verb}, "{inner}"'
        inner = inner[:-1] + "," if inner[-1] == "." else inner
        order = f"{verb} {speaker}" if speaker not in _PRON and self._r() < 0.5 else f"{speaker} {verb}"
        return f'"{inner}" {order}.'

    def _compound(self, rich: int) -> str:
        tense = self._c(_TENSES)
        first = self._np(self._c("ppppatl"), rich - 1, "subj")
        a = self._clause(first, tense, rich - 1, mode=self._c(("decl", "decl", "decl", "neg")))
        second = _PRON[first.pron] if first.pron in _PRON and self._r() < 0.5 else None
        t2 = tense if self._r() < 0.6 else self._c(("past", "past_progressive") if "past" in tense else
                                                   ("present", "future", "perfect", "modal"))
        b = self._clause(second, t2, rich - 1, mode=self._c(("decl", "decl", "decl", "neg")))
        return f"{a}, {self._c(('and', 'but', 'so', 'and'))} {b}."

    def _complex(self, rich: int) -> str:
        c, r = self._c, self._r()
        if r < 0.25:
            conj, t_sub, t_main = c(("because", "although")), self._c(_TENSES), None
        elif r < 0.45:
            conj, t_sub, t_main = "while", *c((("past_progressive", "past"), ("progressive", "present")))
        elif r < 0.7:
            conj, t_sub, t_main = c(("when", "before", "after")), "past", c(("past", "past", "past_progressive"))
        else:
            conj, t_sub, t_main = c(("when", "if", "before", "after", "as soon as")), "present", c(
                ("future", "future", "modal", "imper"))
        sub = conj + " " + self._clause(tense=t_sub, rich=rich - 1, time_as="future" if t_main in (
            "future", "modal", "imper") else None)
        if t_main == "imper":
            main = self._imperative(rich - 1)[:-1].rstrip(",")
            if main.endswith(", please"):
                main = main[: -len(", please")]
        else:
            main = self._clause(tense=t_main or (t_sub if self._r() < 0.7 else c(_TENSES)), rich=rich - 1)
        return f"{sub}, {main}." if self._r() < 0.5 else f"{main} {sub}."

    # --- clauses ------------------------------------------------------------------------------

    def _clause(self, subj=None, tense=None, rich=0, mode="decl", depth=0, time_as=None) -> str:
        if subj is None:
            subj = self._np(self._c("pppppppatfxl"), rich, "subj", depth)
        tense = tense or self._c(_TENSES)
        verb, rest, _ = self._vp(subj, tense, rich, depth, None, time_as=time_as)
        adverb = self._c(V.FREQUENCY) if mode == "decl" and self._r() < 0.08 and tense in (
            "present", "past", "future", "perfect") and subj.cat != "w" and not time_as else ""
        return self._realize(subj, verb, rest, tense, mode, adverb)

    def _realize(self, subj: _Subj, verb: str, rest: str, tense: str, mode: str, adverb: str = "") -> str:
        """Conjugate ``verb`` for ``subj`` in ``tense`` and put the words in order for ``mode``."""
        agr = 0 if subj.person == 1 and not subj.plural else 1 if subj.person == 3 and not subj.plural else 2
        if verb.split(" ")[0] in V.STATIVE and "progressive" in tense:
            tense = "past" if tense == "past_progressive" else "present"
        simple = tense in ("present", "past")
        if verb == "be" and simple:
            aux, main = (("am", "is", "are") if tense == "present" else ("was", "was", "were"))[agr], ""
        elif simple:
            aux, main = ("do", "does", "do")[agr] if tense == "present" else "did", verb
        elif tense == "perfect":
            aux, main = ("have", "has", "have")[agr], V.participle(verb) if verb != "be" else "been"
        elif "progressive" in tense:
            aux = (("am", "is", "are") if tense == "progressive" else ("was", "was", "were"))[agr]
            main = V.gerund(verb)
        else:
            aux, main = "will" if tense == "future" else "would" if tense == "would" else self._c(V.MODALS), verb
        if mode != "decl":
            rest = _SOME.sub("any", rest)
        if mode == "decl":
            if simple and verb != "be":
                finite = V.past(verb) if tense == "past" else V.third_person(verb) if agr == 1 else verb
                words = (subj.text, adverb, finite, rest)
            elif not adverb and subj.text in _PRON and aux in _SUBJ_CONTRACT and self._r() < 0.3:
                words = (subj.text + _SUBJ_CONTRACT[aux], main, rest)
            else:
                words = (subj.text, aux, adverb, main, rest)
        elif mode == "neg":
            contract = aux in _CONTRACT and self._r() < 0.5
            neg = "cannot" if aux == "can" else _CONTRACT[aux] if contract else aux + " not"
            words = (subj.text, neg, main, rest)
        elif mode == "negask" and aux in _CONTRACT:
            words = (_CONTRACT[aux], subj.text, main, rest)
        else:
            ever = "ever" if tense == "perfect" and self._r() < 0.3 else ""
            words = (aux, subj.text, ever, main, rest)
        return " ".join(w for w in words if w)

    def _vp(self, subj: _Subj, tense: str, rich: int, depth: int, drop, kind=None, time_as=None):
        """A verb lemma, the words after it, and the category of a dropped object. ``drop`` leaves
        out the object, the place or the time (for wh- questions); tense "bare" adds no time."""
        r, c = self._r, self._c
        if subj.cat == "p":
            kind, verb, core, ocat = self._person_core(subj, tense, rich, depth, drop, kind)
        else:
            kind, verb, core, ocat = self._other_core(subj, tense, rich, depth, drop, kind)
        words = f"{verb} {core}".rstrip()
        if tense != "bare" and kind not in ("cost", "report"):
            if kind in ("intr", "trans", "motion", "ditrans") and r() < 0.1 + 0.08 * rich:
                words += " " + c(V.MANNER)
            if kind in ("intr", "trans", "rain", "passive") and drop != "place" and r() < 0.06 + 0.2 * rich:
                words = _append(words, self._place(rich - 1))
            if drop != "time" and r() < 0.12 + 0.22 * rich:
                words = _append(words, self._time(time_as or tense))
        return verb, words[len(verb) + 1:], ocat

    def _person_core(self, subj: _Subj, tense: str, rich: int, depth: int, drop, kind):
        r, c, verb, core, ocat = self._r, self._c, "be", "", ""
        kind = kind or c(_PERSON_KINDS if depth < 1 else _PERSON_KINDS[:14])
        if drop == "obj":
            kind = c(("trans", "trans", "ditrans"))
        elif drop == "place" and kind not in ("intr", "trans", "motion", "be_loc"):
            kind = c(("intr", "trans", "be_loc"))
        elif kind == "ger" and "progressive" in tense:  # not "was enjoying swimming"
            kind = "inf"
        if kind == "trans":
            verb, cats = c(V.TRANSITIVE)
            ocat = c(cats)
            core = "" if drop == "obj" else self._np(ocat, rich - 1, "obj", depth + 1).text
            core = c(_NAMES)[0] if core == _SELF.get(subj.text) else core  # not "I saw me"
        elif kind == "ditrans":
            verb, cats = c(V.DITRANSITIVE)
            ocat = c(cats.strip("@"))
            who = self._np("p", 0, "obj", depth + 1).text
            who = c(_NAMES)[0] if who == _SELF.get(subj.text) else who
            what = "" if drop == "obj" else self._np(ocat, rich - 1, "obj", depth + 1, pron_ok=False).text
            prep = "for" if "@" in cats else "to" if r() < 0.4 or not what else ""
            core = f"{who} {what}" if not prep else f"{what} {prep} {who}".lstrip()
        elif kind == "intr":
            verb = c(V.PERSON_INTRANSITIVE)
        elif kind == "motion":
            verb = c(V.MOTION)
            core = "" if drop == "place" else self._destination(verb)
        elif kind in ("be_adj", "be_imp"):
            core = c(V.IMPERATIVE_ADJ) if kind == "be_imp" else self._adjp("p")
        elif kind == "be_loc":
            core = "" if drop == "place" else self._place(rich)
        elif kind == "be_role":
            job = c(V.PROFESSIONS)
            core = V.plural(job) if subj.plural else f"{V.article(job)} {job}"
        elif kind == "link":
            verb, core = c(V.LINKING), self._adjp("p")
        elif kind in ("inf", "ger"):
            verb = c(V.INFINITIVE_TAKERS if kind == "inf" else V.GERUND_TAKERS)
            v2, rest2, _ = self._vp(subj, "bare", rich - 1, depth + 1, None, c(("trans", "intr", "motion")))
            v2 = v2 if v2 != verb else "relax"
            core = ("to " + v2 if kind == "inf" else V.gerund(v2)) + (" " + rest2 if rest2 else "")
        else:  # reported speech; after a past verb the reported clause shifts into the past
            verb = c(V.REPORT_VERBS)
            inner = c(("past", "past", "past_progressive", "would")) if "past" in tense else None
            core = self._clause(tense=inner, rich=rich - 1, depth=depth + 1)
            core = core if core.startswith("that ") or r() < 0.3 else "that " + core
        return kind, verb, core, ocat

    def _other_core(self, subj: _Subj, tense: str, rich: int, depth: int, drop, kind):
        """Verb phrases for animals, things, food, texts, places and the weather."""
        r, c, cat, verb, core, ocat = self._r, self._c, subj.cat, "be", "", ""
        kind = kind or c(_OTHER_KINDS[cat])
        if kind == "rain":
            verb = c(("rain", "snow"))
        elif kind == "intr":
            verb = subj.tag if subj.tag and r() < 0.6 else c(
                V.ANIMAL_INTRANSITIVE if cat == "a" else V.THING_INTRANSITIVE)
        elif kind == "trans":
            verb, cats = c(V.ANIMAL_TRANSITIVE)
            ocat = c(cats)
            core = self._np(ocat, rich - 1, "obj", depth + 1).text
        elif kind == "passive":
            core = ("being " if "progressive" in tense else "") + V.participle(c(_PASSIVE[cat]))
            if r() < 0.3:
                core += " by " + self._np("p", 0, "obj", depth + 1, pron_ok=False).text
        elif kind == "cost":
            price = self._count(99 if r() < 0.85 else 999)
            verb, core = "cost", price + " " + c(("dollars", "euros", "pounds"))
        elif kind == "open" and subj.tag == "open":
            verb, core = c(("open", "close")), c(("", "", "early", "late"))
        elif kind == "link":
            verb, core = c(_LINKING[cat]), self._adjp(cat)
        elif kind == "be_loc" and cat == "l":
            core = "in " + c(V.CITIES) if r() < 0.4 else f"{c(_NEAR)} the {c(_NOUNS['l']).sg}"
        elif kind == "be_loc":
            core = "" if drop == "place" else self._thing_spot() if r() < 0.6 else self._place(rich)
        else:
            kind, core = "be_adj", self._adjp(cat)
        return kind, verb, core, ocat

    # --- phrases ------------------------------------------------------------------------------

    def _np(self, cat: str, rich: int, role: str, depth: int = 0, pron_ok: bool = True) -> _Subj:
        r, c = self._r, self._c
        if cat == "p" and pron_ok:
            x = r()
            if x < 0.3:
                return c(list(_PRON.values())) if role == "subj" else _Subj(c(_OBJ_PRON), 3, False, "", "p")
            if x < 0.55:
                name, pron = c(_NAMES)
                return _Subj(name, 3, False, pron, "p")
        if cat == "l" and role == "obj" and r() < 0.35:
            return _Subj(c(V.CITIES), 3, False, "it", "l")
        if cat == "m":  # "lunch", "a quick lunch"
            meal = c(V.MEALS) if r() < 0.7 else c(V.MEAL_ADJ) + " " + c(V.MEALS)
            return _Subj(meal if " " not in meal else f"{V.article(meal)} {meal}", 3, False, "it", "m")
        noun = c(_NOUNS[cat])
        adj = c(_ADJ[cat]) if r() < 0.12 + 0.2 * rich else ""
        if noun.mass:
            return _Subj(self._mass(noun, adj), 3, False, "it", cat)
        plural = r() < 0.3
        x = r()
        if noun.sg in _KIN and x < 0.7 or 0.75 < x < 0.87 and (cat != "p" or noun.sg in _OWNABLE):
            det = c(_OWNERS) if r() < 0.7 or noun.sg not in _KIN else c(_NAMES)[0] + "'s"
        elif plural:
            det = "the" if x < 0.3 else c(("these", "those", "some", "many", "several", "a few", "")) if x < 0.75 \
                else self._count(12 if r() < 0.7 else 99)
        else:
            det = "the" if x < 0.45 else "a" if x < 0.75 else c(("this", "that"))
        phrase = (adj + " " if adj else "") + (noun.pl if plural else noun.sg)
        det = V.article(phrase) if det == "a" else det
        text = f"{det} {phrase}" if det else phrase
        if depth == 0 and rich >= 2 and r() < 0.35:
            text += " " + self._relative(cat, plural)
        elif rich >= 1 and cat in "tfx" and r() < 0.1:
            text += " " + self._thing_spot()
        pron = "they" if plural else _GENDER.get(noun.tag, "") if cat == "p" else "it"
        tag = noun.tag if cat == "a" and not plural else "open" if noun.sg in _OPENING else ""
        return _Subj(text, 3, plural, pron, cat, tag)

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
            unit = noun.tag if n == 1 else V.plural(noun.tag)
            return f"{V.article(unit) if n == 1 else V.number_words(n)} {unit} of {phrase}"
        return phrase

    def _adjp(self, cat: str, pool=None) -> str:
        if pool is None and cat == "p" and self._r() < 0.15:
            return self._c(V.PREDICATIVE_ADJ)
        adj = self._c(pool or _ADJ[cat])
        return self._c(V.DEGREE) + " " + adj if self._r() < 0.3 else adj

    def _relative(self, cat: str, plural: bool) -> str:
        r, c = self._r, self._c
        tense = c(("past", "past", "present", "perfect"))
        if cat == "l":
            return "where " + self._clause(tense=tense, depth=1)
        if cat in "pa" and r() < 0.5:
            rel = "who" if cat == "p" else "that"
            return self._clause(_Subj(rel, 3, plural, "", cat), tense, depth=1)
        verb = c(_TRANS[cat])
        rel = c(("that", "that", "that", "" if " " not in verb else "that", "who" if cat == "p" else "which"))
        body = self._realize(self._np("p", 0, "subj", 1), verb, "", tense, "decl")
        if rel == "that" and body.startswith("that "):
            rel = "who" if cat == "p" else "which"
        return f"{rel} {body}" if rel else body

    def _place(self, rich: int = 0) -> str:
        r, c, x = self._r, self._c, self._r()
        if x < 0.22:
            return "in " + c(V.CITIES)
        if x < 0.3:
            return c(("at home", "at work", "at school", "upstairs", "downstairs", "outside", "next door"))
        place = c(_NOUNS["l"])
        prep = place.tag if x < 0.8 else c(_NEAR)
        det = "the" if r() < 0.85 else "a"
        phrase = f"{c(V.PLACE_ADJ)} {place.sg}" if r() < 0.1 + 0.2 * rich or det == "a" else place.sg
        return f"{prep} {V.article(phrase) if det == 'a' else det} {phrase}"

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
        return c(("to", "to", "to", "toward", "past")) + " the " + c(_NOUNS["l"]).sg

    def _count(self, top: int = 20) -> str:
        return V.number_words(self.rng.randint(2, top))

    def _clock(self) -> str:
        h, x = self.rng.randint(1, 12), self._r()
        hour = V.number_words(h)
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
                return "every " + day if x < 0.6 else "on " + V.plural(day)
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
        return f"on the {V.ordinal_words(self.rng.randint(1, 28))} of {c(V.MONTHS)}"

    def _year(self, first: int) -> str:
        return V.year_words(self.rng.randint(first, 2023))

    def _amount(self, unit: str) -> str:
        if self._r() < 0.35:
            return f"{V.article(unit)} {unit}"
        return self._count(12) + " " + V.plural(unit)


# --- user text files --------------------------------------------------------------------------

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|(?<=[.!?][\"'\u201d)])\s+")
_CLAUSE_END = re.compile(r"(?<=[,;:])\s+")


def _pack(pieces: list[str], limit: int) -> list[str]:
    """Join consecutive pieces with spaces into chunks of at most ``limit`` characters."""
    out: list[str] = []
    for piece in pieces:
        if out and len(out[-1]) + 1 + len(piece) <= limit:
            out[-1] += " " + piece
        else:
            out.append(piece)
    return out


def split_long_line(line: str, limit: int = MAX_LINE_CHARS) -> list[str]:
    """Cut a line longer than ``limit`` at sentence punctuation, then at clause punctuation,
    then between words, into pieces of at most ``limit`` characters (a single longer word stays)."""
    if len(line) <= limit:
        return [line]
    out: list[str] = []
    for pattern in (_SENTENCE_END, _CLAUSE_END, re.compile(r"\s+")):
        pieces = pattern.split(line)
        if len(pieces) > 1:
            for chunk in _pack(pieces, limit):
                out.extend(split_long_line(chunk, limit) if len(chunk) > limit else [chunk])
            return out
    return [line]


def load_text_file(path) -> list[str]:
    """Sentences of a user's UTF-8 text file, one a line. Blank lines and lines starting with
    ``#`` are skipped, runs of whitespace become one space, and lines longer than
    :data:`MAX_LINE_CHARS` are split at sentence punctuation."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ValueError(f"{path}: cannot read the sentence file ({e.strerror or e}); check the path") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text (bad byte at offset {e.start}); "
                         "save the file as UTF-8") from None
    out: list[str] = []
    for line in text.splitlines():
        line = " ".join(line.split())
        if line and not line.startswith("#"):
            out.extend(split_long_line(line))
    if not out:
        raise ValueError(f"{path}: no sentences found (only blank lines or '#' comments); "
                         "write one sentence a line")
    return out
