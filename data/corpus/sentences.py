"""English sentences for the built-in speech corpus.

:class:`SentenceGenerator` composes sentences from the lexicon in :mod:`data.corpus.vocabulary`
with a small grammar (clauses in :mod:`data.corpus.clauses`, phrases in :mod:`data.corpus.phrases`):
statements, negations, yes/no and wh- questions, imperatives, exclamations, compound and complex
sentences, relative clauses, reported and quoted speech. Verbs agree with their subjects, time
phrases agree with the tense, and articles with the sound of the next word. Every sentence is drawn
in one of three length bands with equal probability (2-5, 6-15 and 16-30 words), so at speaking
rate durations span about 1-10 s. Quoted speech may begin or end with a double quotation mark.

The reader of a user's sentence file lives in :mod:`data.corpus.text_file` and is re-exported here.
"""

from __future__ import annotations

import random

from data.corpus import inflection as forms
from data.corpus import vocabulary as V
from data.corpus.clauses import TENSES, ClauseMaker
from data.corpus.phrases import ADJ, NAMES, NOUNS, PRON, Subj
from data.corpus.text_file import MAX_LINE_CHARS, load_text_file, split_long_line  # noqa: F401  (re-exported)

# (shortest, longest) words in a band, and how rich its phrases are.
BANDS = ((2, 5, 0), (6, 15, 1), (16, 30, 2))  # a long sentence is drawn at richness 2 or 3
_FORMULAE = ("Good morning, {n}.", "Thank you, {n}.", "Happy birthday, {n}!", "See you {d}.", "Welcome to {c}!",
             "Good night, {n}.", "Nice to meet you, {n}.", "Excuse me, {n}.", "Well done, {n}!", "Goodbye, {n}.")


class SentenceGenerator(ClauseMaker):
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
                n=c(NAMES)[0], c=c(V.CITIES), d=self._time("future"))
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
            return self._clause(subj=Subj("it", 3, False, "it", "w"), rich=rich) + "."
        if r < 0.92:
            return self._existential(rich)
        return self._clause(rich=rich, mode="neg" if self._r() < 0.3 else "decl") + "."

    def _exclaim(self) -> str:
        noun, adj = self._c(NOUNS[self._c("ptal")]), self._c(V.EXCLAIM_ADJ)
        if self._r() < 0.3:
            return f"what {adj} {noun.pl}!"
        tail = " you have" if self._r() < 0.3 else ""
        return f"what {forms.article(adj)} {adj} {noun.sg}{tail}!"

    def _wh(self, rich: int) -> str:
        r, c, tense = self._r(), self._c, self._c(TENSES)
        if r < 0.15:
            return self._clause(Subj("who", 3, False, "", "p"), tense, rich) + "?"
        drop = "obj" if r < 0.5 else "place" if r < 0.7 else "time" if r < 0.85 else None
        subj = self._np("p", rich - 1, "subj")
        verb, rest, ocat = self._vp(subj, tense, rich, 0, drop)
        if drop == "obj":
            noun = c(NOUNS.get(ocat) or NOUNS["t"])
            if ocat == "p":
                wh = "who"
            elif self._r() < 0.3 and ocat in NOUNS and not noun.mass:
                wh = "how many " + noun.pl if self._r() < 0.5 else "which " + noun.sg
            else:
                wh = "what"
        else:
            wh = {"place": "where", "time": "when"}.get(drop) or ("how" if verb != "be" and r < 0.95 else "why")
        return wh + " " + self._realize(subj, verb, rest, tense, "ask") + "?"

    def _imperative(self, rich: int) -> str:
        r, c = self._r(), self._c
        kinds = ("trans", "trans", "trans", "intr", "motion", "ditrans", "be_imp")
        verb, rest, _ = self._vp(PRON["you"], "imper", rich, 0, None, c(kinds))
        vp = f"{verb} {rest}".strip()
        if r < 0.25:
            return c(("don't ", "do not ", "please don't ")) + vp + c((".", "!"))
        if r < 0.4:
            return "let's " + vp + "."
        if r < 0.55:
            return "please " + vp + "."
        if r < 0.7:
            return c(NAMES)[0] + ", " + vp + c((".", "!", ", please."))
        return vp + c((".", ".", "!"))

    def _existential(self, rich: int) -> str:
        cat = self._c("tfap")
        noun, plural = self._c(NOUNS[cat]), self._r() < 0.4
        adj = self._c(ADJ[cat]) + " " if self._r() < 0.3 + 0.2 * rich else ""
        phrase = adj + (noun.pl if plural else noun.sg)
        if noun.mass:
            det, plural = "some", False
        else:
            det = forms.article(phrase) if not plural else self._count(12) if self._r() < 0.3 else self._c(
                ("some", "many", "a few"))
        tense = self._c(("present", "present", "past", "future"))
        place = self._thing_spot() if cat in "tf" and self._r() < 0.5 else self._place(rich)
        rest = f"{det} {phrase} {place}" + (" " + self._time(tense) if self._r() < 0.2 * rich else "")
        mode = self._c(("decl", "decl", "decl", "neg", "ask"))
        end = "?" if mode == "ask" else "."
        return self._realize(Subj("there", 3, plural, "", "x"), "be", rest, tense, mode) + end

    def _quote(self, rich: int) -> str:
        inner = self._sentence(max(rich - 1, 0), quotes=False)
        inner = inner[0].upper() + inner[1:]
        speaker = self._np("p", 0, "subj").text
        verb = self._c(V.SPEECH_VERBS[inner[-1]])
        if self._r() < 0.5:
            return f'{speaker} {verb}, "{inner}"'
        inner = inner[:-1] + "," if inner[-1] == "." else inner
        order = f"{verb} {speaker}" if speaker not in PRON and self._r() < 0.5 else f"{speaker} {verb}"
        return f'"{inner}" {order}.'

    def _compound(self, rich: int) -> str:
        tense = self._c(TENSES)
        first = self._np(self._c("ppppatl"), rich - 1, "subj")
        a = self._clause(first, tense, rich - 1, mode=self._c(("decl", "decl", "decl", "neg")))
        second = PRON[first.pron] if first.pron in PRON and self._r() < 0.5 else None
        t2 = tense if self._r() < 0.6 else self._c(("past", "past_progressive") if "past" in tense else
                                                   ("present", "future", "perfect", "modal"))
        b = self._clause(second, t2, rich - 1, mode=self._c(("decl", "decl", "decl", "neg")))
        return f"{a}, {self._c(('and', 'but', 'so', 'and'))} {b}."

    def _complex(self, rich: int) -> str:
        c, r = self._c, self._r()
        if r < 0.25:
            conj, t_sub, t_main = c(("because", "although")), self._c(TENSES), None
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
            main = self._clause(tense=t_main or (t_sub if self._r() < 0.7 else c(TENSES)), rich=rich - 1)
        return f"{sub}, {main}." if self._r() < 0.5 else f"{main} {sub}."
