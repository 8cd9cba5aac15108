"""English word forms for the built-in sentence generator: the indefinite article, noun plurals,
verb conjugation (third person, past, participle, gerund, phrasal verbs inflected on their head)
and numbers, ordinals and years spelled out as words."""

from __future__ import annotations

# Irregular verbs: base form -> (past, past participle).
IRREGULAR = {
    b: (p, pp)
    for b, p, pp in (t.split("/") for t in """
have/had/had do/did/done go/went/gone buy/bought/bought bring/brought/brought build/built/built
catch/caught/caught choose/chose/chosen come/came/come cost/cost/cost cut/cut/cut dig/dug/dug
draw/drew/drawn drink/drank/drunk drive/drove/driven eat/ate/eaten fall/fell/fallen feed/fed/fed
feel/felt/felt find/found/found fly/flew/flown forget/forgot/forgotten forgive/forgave/forgiven
give/gave/given grow/grew/grown hear/heard/heard hide/hid/hidden hold/held/held keep/kept/kept
know/knew/known leave/left/left lend/lent/lent lose/lost/lost make/made/made meet/met/met
pay/paid/paid read/read/read ride/rode/ridden ring/rang/rung run/ran/run say/said/said
see/saw/seen sell/sold/sold send/sent/sent show/showed/shown sing/sang/sung sit/sat/sat
sleep/slept/slept speak/spoke/spoken spend/spent/spent stand/stood/stood steal/stole/stolen
sweep/swept/swept swim/swam/swum take/took/taken teach/taught/taught tell/told/told
think/thought/thought throw/threw/thrown understand/understood/understood wake/woke/woken
wear/wore/worn win/won/won write/wrote/written bite/bit/bitten blow/blew/blown break/broke/broken
become/became/become begin/began/begun rewrite/rewrote/rewritten shake/shook/shaken
put/put/put hurt/hurt/hurt light/lit/lit swing/swung/swung tear/tore/torn freeze/froze/frozen
""".split()
    )
}
# Verbs that double their final consonant before -ed and -ing.
DOUBLING = set("""
stop drop plan shop hug jog chat grab nod skip run swim sit dig begin win forget hit cut put
quit wrap clap step tap trim hum admit regret prefer rob scrub rub pat hop knit""".split())

# Spellings whose first sound is not what their first letter suggests.
_VOWEL_SOUND = ("hour", "honest", "honor", "heir")
_CONSONANT_SOUND = ("unique", "unicorn", "uniform", "union", "unit", "univers", "use", "usual", "euro", "ewe")


def article(word: str) -> str:
    """The indefinite article ("a" or "an") that goes before ``word``, chosen by its sound."""
    w = word.lower()
    if w.startswith(_VOWEL_SOUND):
        return "an"
    if w.startswith(_CONSONANT_SOUND) or w in ("one", "once"):
        return "a"
    return "an" if w[:1] in "aeiou" else "a"


def split_plural(entry: str) -> tuple[str, str]:
    """``"man/men"`` -> ("man", "men"); a regular noun gets its plural by spelling rules."""
    if "/" in entry:
        singular, plural_form = entry.split("/")
        return singular, plural_form
    return entry, plural(entry)


def plural(noun: str) -> str:
    if noun.endswith(("s", "x", "z", "ch", "sh")):
        return noun + "es"
    if noun.endswith("y") and noun[-2:-1] not in "aeiou":
        return noun[:-1] + "ies"
    return noun + "s"


def _on_head(verb: str, inflect) -> str:
    """Inflect the first word of a phrasal verb ("wake up" -> "woke up")."""
    head, _, particle = verb.partition(" ")
    return inflect(head) + (" " + particle if particle else "")


def _third(v: str) -> str:
    if v in ("have", "do", "go"):
        return {"have": "has", "do": "does", "go": "goes"}[v]
    if v.endswith(("s", "x", "z", "ch", "sh")) or (v.endswith("o") and not v.endswith("oo")):
        return v + "es"
    if v.endswith("y") and v[-2] not in "aeiou":
        return v[:-1] + "ies"
    return v + "s"


def _past(v: str) -> str:
    if v in IRREGULAR:
        return IRREGULAR[v][0]
    if v.endswith("e"):
        return v + "d"
    if v.endswith("y") and v[-2] not in "aeiou":
        return v[:-1] + "ied"
    return v + (v[-1] if v in DOUBLING else "") + "ed"


def _participle(v: str) -> str:
    return IRREGULAR[v][1] if v in IRREGULAR else _past(v)


def _gerund(v: str) -> str:
    if v.endswith("ie"):
        return v[:-2] + "ying"
    if v.endswith("e") and not v.endswith(("ee", "ye", "oe")) and v != "be":
        return v[:-1] + "ing"
    return v + (v[-1] if v in DOUBLING else "") + "ing"


def third_person(verb: str) -> str:
    """Present tense after he/she/it: "watch" -> "watches", "wake up" -> "wakes up"."""
    return _on_head(verb, _third)


def past(verb: str) -> str:
    return _on_head(verb, _past)


def participle(verb: str) -> str:
    return _on_head(verb, _participle)


def gerund(verb: str) -> str:
    return _on_head(verb, _gerund)


_ONES = """
zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen
seventeen eighteen nineteen""".split()
_TENS = ["", ""] + "twenty thirty forty fifty sixty seventy eighty ninety".split()


def number_words(n: int) -> str:
    """0 <= n < 1,000,000 in words: 23 -> "twenty three", 305 -> "three hundred and five"."""
    if not 0 <= n < 1_000_000:
        raise ValueError(f"number_words covers 0 to 999999, got {n}")
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else " " + _ONES[n % 10])
    if n < 1000:
        head = _ONES[n // 100] + " hundred"
        return head if n % 100 == 0 else head + " and " + number_words(n % 100)
    head = number_words(n // 1000) + " thousand"
    rest = n % 1000
    if rest == 0:
        return head
    return head + (" and " if rest < 100 else " ") + number_words(rest)


def ordinal_words(n: int) -> str:
    """1 <= n < 100 as an ordinal: 3 -> "third", 21 -> "twenty first", 30 -> "thirtieth"."""
    if n >= 20 and n % 10:
        return _TENS[n // 10] + " " + ordinal_words(n % 10)
    if n >= 20:
        return _TENS[n // 10][:-1] + "ieth"
    special = {1: "first", 2: "second", 3: "third", 5: "fifth", 8: "eighth", 9: "ninth", 12: "twelfth"}
    return special.get(n) or number_words(n) + "th"


def year_words(year: int) -> str:
    """A year as spoken: 1998 -> "nineteen ninety eight", 2005 -> "two thousand and five"."""
    if 2000 <= year < 2010:
        return number_words(year)
    high, low = divmod(year, 100)
    if low == 0:
        return number_words(high) + " hundred"
    return number_words(high) + " " + ("oh " + _ONES[low] if low < 10 else number_words(low))
