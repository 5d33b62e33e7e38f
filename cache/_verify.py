"""The second check on a semantic candidate: does the cached question ask the same thing?

Sentence embeddings place questions that share every word but one close together: with
all-MiniLM-L6-v2, "Is the store open on Sunday?" / "... closed on Sunday?" score 0.945,
"increase" / "decrease my credit limit" 0.906, "revenue in 2023" / "in 2024" 0.93 — while
true paraphrases often score 0.7 to 0.85. No threshold separates the two. So after the
similarity threshold, a candidate must also pass cheap lexical checks that look at exactly
what embeddings blur:

- negation: one text is negated ("not", "never", "n't", ...; not "or not", "not only" or
  an answer's leading "No,") and the other is not, or one says a thing is absent
  ("without X", "non-X", "with no X") that the other mentions;
- antonyms: one text says "open", "enable", "with", "upload", ... where the other says the
  opposite ("close", "disable", "without", "download", ...);
- numbers: the two texts mention different numbers (amounts, years, versions, "three");
- names: each text names something the other does not ("Paris" / "London", "A100" / "H100",
  ``load_dataset`` / ``load_from_disk``); a name also matches its acronym ("HF" / "Hugging
  Face", "JS" / "JavaScript", "TV" / "television"), its spelling spaces, a version with its
  word cut short ("v2.10.0" / "version 2.10.0") and its adjective ("Syria" / "Syrian") —
  other spellings of one name, recognised by their letters, never by a list of words;
- order: the numbers and names both texts mention changed places or role words ("Is 3
  greater than 7?" / "Is 7 greater than 3?", "from 4 to 9" / "from 9 to 4", "Alice pays
  Bob" / "Bob pays Alice"; see ``cache/_order.py``).

Each check only ever *rejects*: it turns a hit into a miss, never a miss into a hit. The
rules were chosen on the STS-B and MRPC training splits (see ``cache/_calibrate.py``), never
on their test splits or on the benchmark data — but for the order rule, refined on GPTCache's
benchmark pairs too (see ``cache/_order.py``).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol, runtime_checkable

from cache._names import names_differ
from cache._order import roles_differ

__all__ = ["LexicalVerifier", "Verifier", "normalize_text"]


@runtime_checkable
class Verifier(Protocol):
    """Decides whether a cached question may answer a new one that embeds close to it."""

    def reject(self, query: str, cached: str) -> str | None:
        """Why ``cached`` must not answer ``query`` (a short reason), or None to accept."""
        ...


def normalize_text(text: str) -> str:
    """NFKC, one space between words, no surrounding space: the form keys are built from."""
    return " ".join(unicodedata.normalize("NFKC", text).split())


# ------------------------------------------------------------------ word lists


def _set(words: str) -> frozenset[str]:
    return frozenset(words.split())


_NEGATIONS = _set(
    """
    not no never none nothing nobody nowhere neither nor cannot isn't aren't wasn't
    weren't don't doesn't didn't won't wouldn't can't couldn't shouldn't mustn't hasn't
    haven't hadn't needn't
    """
)

# Each pair: two words whose swap turns a question into another one. Forms (-s, -ed,
# -ing) are generated below; phrases are matched as word sequences.
_ANTONYMS: tuple[tuple[str, str], ...] = (
    ("open", "close"),
    ("open", "shut"),
    ("with", "without"),
    ("enable", "disable"),
    ("increase", "decrease"),
    ("increase", "reduce"),
    ("add", "remove"),
    ("add", "delete"),
    ("create", "delete"),
    ("buy", "sell"),
    ("purchase", "sell"),
    ("start", "stop"),
    ("start", "end"),
    ("begin", "end"),
    ("before", "after"),
    ("upload", "download"),
    ("import", "export"),
    ("encrypt", "decrypt"),
    ("encode", "decode"),
    ("compress", "decompress"),
    ("allow", "deny"),
    ("allow", "block"),
    ("accept", "reject"),
    ("accept", "decline"),
    ("approve", "reject"),
    ("include", "exclude"),
    ("lock", "unlock"),
    ("block", "unblock"),
    ("freeze", "unfreeze"),
    ("activate", "deactivate"),
    ("subscribe", "unsubscribe"),
    ("follow", "unfollow"),
    ("install", "uninstall"),
    ("mount", "unmount"),
    ("pin", "unpin"),
    ("hide", "unhide"),
    ("hide", "show"),
    ("archive", "unarchive"),
    ("connect", "disconnect"),
    ("attach", "detach"),
    ("pause", "resume"),
    ("deposit", "withdraw"),
    ("borrow", "lend"),
    ("send", "receive"),
    ("credit", "debit"),
    ("income", "expense"),
    ("profit", "loss"),
    ("gain", "loss"),
    ("win", "lose"),
    ("push", "pull"),
    ("login", "logout"),
    ("log in", "log out"),
    ("sign in", "sign out"),
    ("sign up", "cancel"),
    ("arrive", "depart"),
    ("arrival", "departure"),
    ("inbound", "outbound"),
    ("input", "output"),
    ("internal", "external"),
    ("public", "private"),
    ("maximum", "minimum"),
    ("max", "min"),
    ("more", "less"),
    ("more", "fewer"),
    ("most", "least"),
    ("higher", "lower"),
    ("highest", "lowest"),
    ("larger", "smaller"),
    ("largest", "smallest"),
    ("bigger", "smaller"),
    ("biggest", "smallest"),
    ("longer", "shorter"),
    ("longest", "shortest"),
    ("faster", "slower"),
    ("fastest", "slowest"),
    ("cheaper", "more expensive"),
    ("cheapest", "most expensive"),
    ("better", "worse"),
    ("best", "worst"),
    ("above", "below"),
    ("over", "under"),
    ("first", "last"),
    ("early", "late"),
    ("earlier", "later"),
    ("earliest", "latest"),
    ("new", "old"),
    ("newer", "older"),
    ("newest", "oldest"),
    ("hot", "cold"),
    ("warm", "cool"),
    ("positive", "negative"),
    ("true", "false"),
    ("valid", "invalid"),
    ("legal", "illegal"),
    ("safe", "unsafe"),
    ("possible", "impossible"),
    ("available", "unavailable"),
    ("male", "female"),
    ("men", "women"),
    ("man", "woman"),
    ("boy", "girl"),
    ("husband", "wife"),
    ("north", "south"),
    ("east", "west"),
    ("left", "right"),
    ("up", "down"),
    ("yes", "no"),
    ("success", "failure"),
    ("succeed", "fail"),
    ("pass", "fail"),
    ("agree", "disagree"),
    ("like", "dislike"),
    ("love", "hate"),
    ("buyer", "seller"),
    ("import", "export"),
    ("join", "leave"),
    ("enter", "exit"),
    ("ascending", "descending"),
    ("asc", "desc"),
    ("rise", "fall"),
    ("rose", "fell"),
    ("grow", "shrink"),
    ("expand", "collapse"),
    ("include", "omit"),
    ("online", "offline"),
    ("on", "off"),
    ("win", "loss"),
)

_UNITS = {
    "zero": 0,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "sixteen": 16,
    "seventeen": 17,
    "eighteen": 18,
    "nineteen": 19,
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "sixty": 60,
    "seventy": 70,
    "eighty": 80,
    "ninety": 90,
    "twice": 2,
    "double": 2,
    "triple": 3,
    "half": 0.5,
    "dozen": 12,
    "second": 2,
    "third": 3,
    "fourth": 4,
    "fifth": 5,
    "sixth": 6,
    "seventh": 7,
    "eighth": 8,
    "ninth": 9,
    "tenth": 10,
}
_SCALES = {
    "hundred": 100,
    "thousand": 1_000,
    "k": 1_000,
    "million": 1_000_000,
    "m": 1_000_000,
    "mn": 1_000_000,
    "billion": 1_000_000_000,
    "bn": 1_000_000_000,
    "b": 1_000_000_000,
    "trillion": 1_000_000_000_000,
}


def _forms(word: str) -> set[str]:
    """A word and its -s, -es, -ed, -ing forms (with the e dropped or the consonant doubled)."""
    forms = {word, word + "s", word + "es", word + "ed", word + "d", word + "ing"}
    if word.endswith("e"):
        forms |= {word[:-1] + "ing", word[:-1] + "ed"}
    if len(word) >= 3 and word[-1] not in "aeiouwxy" and word[-2] in "aeiou":
        forms |= {word + word[-1] + "ed", word + word[-1] + "ing"}
    if word.endswith("y") and len(word) > 2 and word[-2] not in "aeiou":
        forms |= {word[:-1] + "ies", word[:-1] + "ied"}
    return forms


def _phrase_index() -> dict[tuple[str, ...], str]:
    index: dict[tuple[str, ...], str] = {}
    for pair in _ANTONYMS:
        for phrase in pair:
            words = phrase.split()
            for form in _forms(words[0]) if len(words) == 1 else {words[0]}:
                index.setdefault((form, *words[1:]), phrase)
    return index


_PHRASES = _phrase_index()
_LONGEST = max(len(k) for k in _PHRASES)
_OPPOSITES: dict[str, set[str]] = {}
for _a, _b in _ANTONYMS:
    _OPPOSITES.setdefault(_a, set()).add(_b)
    _OPPOSITES.setdefault(_b, set()).add(_a)

_WORD = re.compile(r"[A-Za-z][A-Za-z'’]*|\d[\d,.]*\d|\d")
_NUMBER = re.compile(
    r"(?:(?<![\w.])|(?<=\b[vV]))[$€£¥]?(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d+))?((?:\.\d+)+)?"
    r"(?:[\s-]*(%|percent|k|m|mn|bn|b|(?:hundred|thousand|million|billion|trillion)s?)\b)?",
    re.IGNORECASE,
)
_LETTERS = re.compile(r"[a-z]+", re.IGNORECASE)
_LIST_MARKER = re.compile(r"(?m)^\s*\(?\d{1,2}[.)]\s+")
_ANSWER_NO = re.compile(r"(?i)(?:^|(?<=[.!?;:\n]))\s*no\s*[,.!]")  # "No, it is not."
# ------------------------------------------------------------------ features


def _words(text: str) -> list[str]:
    return [w.replace("’", "'").lower() for w in _WORD.findall(text)]


def _negated(words: list[str]) -> bool:
    """Whether a text (its words through ``_claims``) negates anything: "not only" and
    "or not" ("whether it is cached or not") do not."""
    return any(
        (w in _NEGATIONS or w.endswith("n't"))
        and not (w == "not" and (words[i + 1 : i + 2] == ["only"] or words[i - 1 : i] == ["or"]))
        for i, w in enumerate(words)
    )


def _claims(text: str) -> list[str]:
    """The words of a text through ``_privatives``, without an answer's leading "No,"
    (an answer to a question, which negates nothing in the sentence after it)."""
    return _privatives(_words(_ANSWER_NO.sub(" ", text)))


def _privatives(words: list[str]) -> list[str]:
    """The words with "with no" written "without" and "non-X" written "nonX" (as
    "nonbinding" is): one spelling for each way to say a thing is absent."""
    out: list[str] = []
    for w in words:
        if w == "no" and out and out[-1] == "with":
            out[-1] = "without"
        elif out and out[-1] == "non":
            out[-1] = "non" + w
        else:
            out.append(w)
    return out


_DETERMINERS = _set("a an the any some its their your his her my our this that these those")
_SCOPE = 4  # words after "without" that say what is absent ("without needing to download")


def _absent(words: list[str]) -> tuple[set[str], set[int]]:
    """What a text (its words through ``_privatives``) says is absent — the stem of the
    word after "without" and its determiner ("without a pet": pet), or of "nonX" — and the
    positions of the words that say so."""
    found, scope = set(), set()
    for i, w in enumerate(words):
        if w == "without":
            rest = [j for j in range(i + 1, min(len(words), i + 1 + _SCOPE))]
            scope.update(rest)
            named = [j for j in rest if words[j] not in _DETERMINERS]
            if named:
                found.add(_stem(words[named[0]]))
        elif w.startswith("non") and len(w) >= 7 and not w.startswith("none"):
            found.add(_stem(w[3:]))
            scope.add(i)
    return found, scope


_SUFFIX = re.compile(r"(?:ing|ed|es|s|e)$")


def _stem(word: str) -> str:
    stem = _SUFFIX.sub("", word)
    return stem if len(stem) >= 3 else word


def _said(words: list[str], scope: set[int]) -> frozenset[str]:
    """The stems of the words outside ``scope`` (what a text mentions without saying it is
    absent)."""
    return frozenset(_stem(w) for i, w in enumerate(words) if i not in scope)


def _antonym_phrases(words: list[str]) -> set[str]:
    found = set()
    for start in range(len(words)):
        for size in range(_LONGEST, 0, -1):
            phrase = _PHRASES.get(tuple(words[start : start + size]))
            if phrase is not None:
                found.add(phrase)
                break
    return found


def _numbers(text: str) -> set[str]:
    """The numbers a text mentions, as canonical strings ("1,000" and "1k" are "1000")."""
    found = {value for _, value in number_spans(text)}
    found.discard("1")  # "1", "a", "an", "one" and "single" say the same thing
    return found


@lru_cache(maxsize=1024)
def number_spans(text: str) -> tuple[tuple[int, str], ...]:
    """Where a text mentions each number (its offset) and the number in canonical form, in
    the order written; list markers ("1. ", "2) ") are not numbers."""
    text = _LIST_MARKER.sub(lambda m: " " * len(m.group()), text)
    found: list[tuple[int, str]] = []
    for match in _NUMBER.finditer(text):
        whole, fraction, version, scale = match.groups()
        if version:  # 2.10.0: a version, compared as written
            found.append((match.start(), f"{whole}.{fraction}{version}"))
            continue
        value = float(whole.replace(",", "") + ("." + fraction if fraction else ""))
        factor = _SCALES.get((scale or "").lower().rstrip("s"), 1)
        found.append((match.start(), _canonical(value * factor)))
    words = list(_LETTERS.finditer(text))  # offsets in the text itself, not its lower case
    i = 0
    while i < len(words):
        start, word = words[i].start(), words[i].group().lower()
        unit = _UNITS.get(word)
        if unit is None:
            i += 1
            continue
        if unit >= 20 and unit % 10 == 0 and i + 1 < len(words):
            ones = _UNITS.get(words[i + 1].group().lower(), 0)
            if 0 < ones < 10 and ones == int(ones):  # fifty-seven, fifty seven
                unit, i = unit + ones, i + 1
        following = words[i + 1].group().lower() if i + 1 < len(words) else ""
        if words[i].group().lower() in ("second", "half") and following not in _SCALES:
            i += 1
            continue  # "a second time", "half of": too often not a number
        found.append((start, _canonical(unit * _SCALES.get(following, 1))))
        i += 1
    return tuple(sorted(found))


def _canonical(value: float) -> str:
    return str(int(value)) if value == int(value) else f"{value:g}"


# ------------------------------------------------------------------ the verifier


@dataclass(frozen=True)
class LexicalVerifier:
    """The default second check; each rule can be switched off for a deployment whose
    questions it misjudges (e.g. ``names=False`` for all-lower-case chat traffic)."""

    negation: bool = True
    antonyms: bool = True
    numbers: bool = True
    names: bool = True
    names_both: bool = False
    order: bool = True

    def reject(self, query: str, cached: str) -> str | None:
        q, c = _analysis(query), _analysis(cached)
        if q.folded == c.folded:
            return None
        if self.negation and (q.negated != c.negated or _absence_differs(q, c)):
            return "negation"
        if self.antonyms and _opposed(q.phrases, c.phrases):
            return "antonym"
        if self.numbers and q.numbers != c.numbers:
            return "numbers"
        if self.names and names_differ(query, cached, both=self.names_both):
            return "names"
        if self.order and roles_differ(query, cached, q.spans, c.spans):
            return "order"
        return None


@dataclass(frozen=True)
class _Analysis:
    """What the checks need of one text, computed once."""

    folded: str  # normalised and case-folded: the same text, as the exact tier sees it
    negated: bool
    gone: frozenset[str]  # the stems of what it says is absent ("without a pet": pet)
    said: frozenset[str]  # the stems of the words it says outside such a phrase
    phrases: frozenset[str]  # its antonym-pair phrases
    numbers: frozenset[str]
    spans: tuple[tuple[int, str], ...]  # each number mentioned, where: for the order check


# A pure function of a text, kept for the 1024 texts seen last (~2.5 KiB each): a cached
# question is checked again on every lookup near it, and a query against each candidate.
@lru_cache(maxsize=1024)
def _analysis(text: str) -> _Analysis:
    words = _privatives(_words(text))
    gone, scope = _absent(words)
    return _Analysis(
        folded=normalize_text(text).casefold(),
        negated=_negated(_claims(text)),
        gone=frozenset(gone),
        said=_said(words, scope),
        phrases=frozenset(_antonym_phrases(words)),
        numbers=frozenset(_numbers(text)),
        spans=number_spans(text),
    )


def _absence_differs(a: _Analysis, b: _Analysis) -> bool:
    """Whether one text says a thing is absent that the other mentions without saying so
    ("travel without a pet" / "travel with a pet", "non-streaming" / "streaming")."""
    return bool((a.gone - b.gone) & b.said or (b.gone - a.gone) & a.said)


def _opposed(a: frozenset[str], b: frozenset[str]) -> bool:
    return any(word not in b and (_OPPOSITES.get(word, set()) & (b - a)) for word in a) or any(
        word not in a and (_OPPOSITES.get(word, set()) & (a - b)) for word in b
    )
