"""Clauses of the built-in sentence generator: verb phrases, tense, agreement and word order.

:class:`ClauseMaker` picks a verb phrase that fits its subject (people, animals, things, food,
texts, places, the weather), conjugates it for the subject's person and number in one of the
tenses, and orders the words for a statement, a negation or a question. Relative clauses after a
noun ("the book that Anna wrote") are made here too.
"""

from __future__ import annotations

import re

from data.corpus import inflection as forms
from data.corpus import vocabulary as V
from data.corpus.phrases import NAMES, NEAR, NOUNS, PRON, PhraseMaker, Subj

_SELF = {"I": "me", "you": "you", "we": "us"}
_TRANS = {c: [v for v, cats in V.TRANSITIVE if c in cats] for c in "tfdxsplam"}
_NO_PASSIVE = V.STATIVE | set("enjoy miss remember reach enter leave try skip hold keep need want use".split())
_PASSIVE = {c: [v for v in vs if " " not in v and v not in _NO_PASSIVE] for c, vs in _TRANS.items()}
_OTHER_KINDS = {"a": ("intr", "intr", "trans", "be_adj", "be_loc", "link"),
                "t": ("be_adj", "be_loc", "passive", "link", "intr", "cost"),
                "f": ("be_adj", "be_loc", "passive", "link", "cost"), "d": ("be_adj", "be_loc", "passive", "link"),
                "x": ("be_adj", "be_loc", "passive"), "l": ("be_adj", "be_loc", "passive", "open", "open"),
                "w": ("rain", "be_adj", "be_adj")}
_LINKING = {"a": ("look", "seem", "sound"), "t": ("look", "seem", "feel"), "f": ("look", "taste", "smell"),
            "d": ("taste", "smell", "look")}
TENSES = ("present",) * 5 + ("past",) * 6 + ("future",) * 3 + (
    "perfect", "perfect", "progressive", "progressive", "past_progressive", "modal")
# Verb phrase kinds for a person; the first 14 do not embed another clause.
_PERSON_KINDS = ("trans",) * 8 + ("intr",) * 4 + ("motion",) * 2 + (
    "ditrans", "be_adj", "be_adj", "be_loc", "be_role", "link", "inf", "inf", "ger", "report")
_CONTRACT = {"is": "isn't", "are": "aren't", "was": "wasn't", "were": "weren't", "do": "don't", "does": "doesn't",
             "did": "didn't", "will": "won't", "has": "hasn't", "have": "haven't", "can": "can't",
             "could": "couldn't", "should": "shouldn't", "would": "wouldn't", "must": "mustn't"}
_SUBJ_CONTRACT = {"am": "'m", "is": "'s", "are": "'re", "will": "'ll", "have": "'ve", "has": "'s"}
_SOME = re.compile(r"\bsome\b")


def _append(words: str, phrase: str) -> str:
    """``words`` + ``phrase``, unless that would repeat a word ("checked in in Paris")."""
    return words if words.endswith(" " + phrase.split(" ", 1)[0]) else words + " " + phrase


class ClauseMaker(PhraseMaker):
    """Clauses and relative clauses, built on the phrases of :class:`PhraseMaker`."""

    def _clause(self, subj=None, tense=None, rich=0, mode="decl", depth=0, time_as=None) -> str:
        if subj is None:
            subj = self._np(self._c("pppppppatfxl"), rich, "subj", depth)
        tense = tense or self._c(TENSES)
        verb, rest, _ = self._vp(subj, tense, rich, depth, None, time_as=time_as)
        adverb = self._c(V.FREQUENCY) if mode == "decl" and self._r() < 0.08 and tense in (
            "present", "past", "future", "perfect") and subj.cat != "w" and not time_as else ""
        return self._realize(subj, verb, rest, tense, mode, adverb)

    def _realize(self, subj: Subj, verb: str, rest: str, tense: str, mode: str, adverb: str = "") -> str:
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
            aux, main = ("have", "has", "have")[agr], forms.participle(verb) if verb != "be" else "been"
        elif "progressive" in tense:
            aux = (("am", "is", "are") if tense == "progressive" else ("was", "was", "were"))[agr]
            main = forms.gerund(verb)
        else:
            aux, main = "will" if tense == "future" else "would" if tense == "would" else self._c(V.MODALS), verb
        if mode != "decl":
            rest = _SOME.sub("any", rest)
        if mode == "decl":
            if simple and verb != "be":
                finite = forms.past(verb) if tense == "past" else forms.third_person(verb) if agr == 1 else verb
                words = (subj.text, adverb, finite, rest)
            elif not adverb and subj.text in PRON and aux in _SUBJ_CONTRACT and self._r() < 0.3:
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

    def _vp(self, subj: Subj, tense: str, rich: int, depth: int, drop, kind=None, time_as=None):
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

    def _person_core(self, subj: Subj, tense: str, rich: int, depth: int, drop, kind):
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
            core = c(NAMES)[0] if core == _SELF.get(subj.text) else core  # not "I saw me"
        elif kind == "ditrans":
            verb, cats = c(V.DITRANSITIVE)
            ocat = c(cats.strip("@"))
            who = self._np("p", 0, "obj", depth + 1).text
            who = c(NAMES)[0] if who == _SELF.get(subj.text) else who
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
            core = forms.plural(job) if subj.plural else f"{forms.article(job)} {job}"
        elif kind == "link":
            verb, core = c(V.LINKING), self._adjp("p")
        elif kind in ("inf", "ger"):
            verb = c(V.INFINITIVE_TAKERS if kind == "inf" else V.GERUND_TAKERS)
            v2, rest2, _ = self._vp(subj, "bare", rich - 1, depth + 1, None, c(("trans", "intr", "motion")))
            v2 = v2 if v2 != verb else "relax"
            core = ("to " + v2 if kind == "inf" else forms.gerund(v2)) + (" " + rest2 if rest2 else "")
        else:  # reported speech; after a past verb the reported clause shifts into the past
            verb = c(V.REPORT_VERBS)
            inner = c(("past", "past", "past_progressive", "would")) if "past" in tense else None
            core = self._clause(tense=inner, rich=rich - 1, depth=depth + 1)
            core = core if core.startswith("that ") or r() < 0.3 else "that " + core
        return kind, verb, core, ocat

    def _other_core(self, subj: Subj, tense: str, rich: int, depth: int, drop, kind):
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
            core = ("being " if "progressive" in tense else "") + forms.participle(c(_PASSIVE[cat]))
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
            core = "in " + c(V.CITIES) if r() < 0.4 else f"{c(NEAR)} the {c(NOUNS['l']).sg}"
        elif kind == "be_loc":
            core = "" if drop == "place" else self._thing_spot() if r() < 0.6 else self._place(rich)
        else:
            kind, core = "be_adj", self._adjp(cat)
        return kind, verb, core, ocat

    def _relative(self, cat: str, plural: bool) -> str:
        r, c = self._r, self._c
        tense = c(("past", "past", "present", "perfect"))
        if cat == "l":
            return "where " + self._clause(tense=tense, depth=1)
        if cat in "pa" and r() < 0.5:
            rel = "who" if cat == "p" else "that"
            return self._clause(Subj(rel, 3, plural, "", cat), tense, depth=1)
        verb = c(_TRANS[cat])
        rel = c(("that", "that", "that", "" if " " not in verb else "that", "who" if cat == "p" else "which"))
        body = self._realize(self._np("p", 0, "subj", 1), verb, "", tense, "decl")
        if rel == "that" and body.startswith("that "):
            rel = "who" if cat == "p" else "which"
        return f"{rel} {body}" if rel else body
