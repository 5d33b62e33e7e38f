"""How much a NER span looks like personal data, beyond what the model says.

Why: the bundled NER learned from synthetic sentences in which a capitalised word is
nearly always a name, a place or a company and an address is any run of numbers and
words. On ordinary text it is confidently wrong: "2 plus 9" is a STREET_ADDRESS, a tool
result "sunny" a LOCATION, "Tutorials" or "Storage" a PERSON, ``load_dataset()`` an
ORGANIZATION, and its calibrated scores (~0.95 for every span of a label and shape) do
not tell these apart. :func:`judge` looks at the span's own shape and its neighbours:

* dropped (never personal data): code (``snake_case``, ``dotted.names``, ``calls()``,
  ``camelCase``, backticks, ``=``, emoji and other symbols, a word glued to any of them),
  and an "address" that is arithmetic (``2 plus 9``, ``3 greater than 7``);
* weak (reported at :data:`WEAK_SCORE`, below every default threshold): a lower-case span
  in a text that has capitals; and, unless a context word of the entity type is near
  (:data:`CONTEXT_BOOST` is added, as Presidio does for patterns): a lower-case word
  or part inside a capitalised span, a single letter, a span made only of common English
  words (the lexicon of :mod:`._lexicon`), names of software (the vocabulary of
  :mod:`._techwords`: "Apache Beam", "PyTorch") and acronyms, an acronym, a single word of an
  all-lower-case text, a camelCase organisation; an address with no number, with only
  acronyms beside its number (``500MB``), or lower-case and made of common words only;
* trimmed: lower-case words at the edges of a name in a cased text ("says Anna Berg",
  "Berg flew") are cut off.

Everything else keeps the model's calibrated score. The rules use the case and the
English lexicon only for English (``language="en"``); other languages get the code and
context rules.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from ._lexicon import is_common
from ._techwords import is_technical

__all__ = ["CONTEXT", "CONTEXT_BOOST", "WEAK_SCORE", "Judged", "judge"]

#: The score of a weak span (below the default policy's thresholds).
WEAK_SCORE = 0.3
#: What a context word near a weak span adds (Presidio's default for patterns).
CONTEXT_BOOST = 0.35
_BEFORE, _AFTER = 48, 24  # characters searched for context words on each side

_PARTICLES = frozenset(
    ("de", "da", "di", "du", "del", "della", "der", "den", "des", "van", "von", "la", "le",
     "el", "al", "bin", "ibn", "y", "e", "of", "the", "and", "&", "st", "st.", "u.", "ul.",
     "dos", "das", "do", "zu", "am")
)  # fmt: skip
_ARTICLES = frozenset(("a", "an"))
_WORD = re.compile(r"[^\W\d_][\w'’.-]*")
_CODE = re.compile(
    r"[`_={}\[\]@$%^~]"  # identifiers, markup, templates
    r"|\w\(|\(\)"  # calls
    r"|[^\W\d_]{2}\.[^\W\d_]{2}"  # dotted.names, file.ext
)
_CAMEL = re.compile(r"[a-z]{3}[A-Z]")  # camelCase (not "McDonald", "LeBlanc", "DeAngelo")
_HYPHEN_LOWER = re.compile(r"-(?!(?:al|el|ibn|bin|de|la|le|da|di|von|van|y)\b)[a-z]")
_ACRONYM = re.compile(r"[A-Z]{2,5}s?")
_NUMBER = r"\d+(?:[.,]\d+)?"
_ARITHMETIC = re.compile(
    rf"{_NUMBER}\s*(?:[-+*/x×÷^=<>]|plus|minus|times|over|and|by|from|to|equals?|"
    r"(?:divided|multiplied)\s+by|(?:greater|less|smaller|larger|bigger|more|fewer)\s+than)"
    rf"\s*{_NUMBER}",
    re.IGNORECASE,
)
#: Words that, near a weak span, make it personal data after all (per entity type).
CONTEXT: dict[str, tuple[str, ...]] = {
    "PERSON": (
        "my name", "name is", "name's", "names are", "full name", "first name", "last name",
        "maiden name", "surname", "named", "call me", "calls me", "i'm", "i am", "mr", "mrs",
        "ms", "miss", "dr", "prof", "dear", "hi", "hello", "hey", "regards", "sincerely",
        "signed", "says", "said", "told", "asked", "met", "born", "married", "wife",
        "husband", "son", "daughter", "mother", "father", "brother", "sister", "friend",
        "colleague", "customer", "patient", "guardian", "contact",
    ),
    "LOCATION": (
        "city", "town", "village", "country", "province", "region", "capital", "live",
        "lives", "lived", "living", "moved", "born", "visit", "visiting", "visited",
        "travel", "travelling", "traveling", "trip", "flew", "flight", "based in",
        "located", "address", "hometown",
    ),
    "ORGANIZATION": (
        "company", "employer", "employed", "works at", "work at", "works for", "work for",
        "worked at", "worked for", "working at", "working for", "firm", "corporation",
        "organisation", "organization", "agency", "startup", "vendor", "supplier",
        "subsidiary", "joined",
    ),
    "STREET_ADDRESS": (
        "address", "live", "lives", "living", "located", "deliver", "delivery", "ship to",
        "send it to", "send to", "mail to", "office", "street", "apartment", "apt", "suite",
    ),
}  # fmt: skip
_CONTEXT_RE = {
    label: re.compile(r"(?<![\w'])(?:" + "|".join(map(re.escape, words)) + r")(?![\w'])")
    for label, words in CONTEXT.items()
}


@dataclass(frozen=True)
class Judged:
    """A span after :func:`judge`: where it is now, its score, and why (for debugging)."""

    start: int
    end: int
    score: float
    reason: str


def judge(
    text: str, start: int, end: int, label: str, score: float, *, language: str = "en"
) -> Judged | None:
    """The span ``text[start:end]`` labelled ``label`` by the NER with ``score``, judged
    by its shape and context (see the module docstring); None when it is not an entity."""
    span = text[start:end]
    if _is_code(span, label) or _glued(text, start, end):
        return None
    english = language == "en"
    if label == "STREET_ADDRESS":
        return _address(text, start, end, score, english)
    cased = english and text != text.lower()
    words = list(_WORD.finditer(span))
    if cased and words:
        capitals = [i for i, w in enumerate(words) if w.group()[0].isupper()]
        if not capitals:  # no context word rescues it: "the split", "column names"
            return Judged(start, end, WEAK_SCORE, "lower case in a cased text")
        inner = words[capitals[0] : capitals[-1] + 1]
        if any(_lower_word(w.group()) for w in inner):
            return _weak(text, start, end, label, "lower-case word inside")
        if any(_HYPHEN_LOWER.search(w.group()) for w in inner):
            return _weak(text, start, end, label, "lower-case part inside")
        start, end = start + inner[0].start(), start + inner[-1].end()
        words = inner
    reason = _weakness(text, words, label, cased=cased, english=english)
    if reason:
        return _weak(text, start, end, label, reason)
    return Judged(start, end, score, "model")


def _weakness(
    text: str, words: list[re.Match[str]], label: str, *, cased: bool, english: bool
) -> str:
    names = [w.group() for w in words]
    if sum(ch.isalpha() for ch in "".join(names)) < 2:
        return "a letter"
    if english and names and all(_ordinary(w) for w in names):
        return "common or technical words only"
    if cased and text != text.upper() and names and all(_acronym(w) for w in names):
        return "acronym"
    if english and not cased and len(names) == 1:
        return "one word of a lower-case text"
    if label == "ORGANIZATION" and _CAMEL.search(" ".join(names)):
        return "camelCase organisation"  # a brand (LinkedIn) or an identifier (DatasetInfo)
    return ""


def _address(text: str, start: int, end: int, score: float, english: bool) -> Judged | None:
    span = text[start:end]
    if _ARITHMETIC.fullmatch(span.strip()):
        return None
    words = _WORD.findall(span)
    if not any(ch.isdigit() for ch in span):
        return _weak(text, start, end, "STREET_ADDRESS", "address without a number")
    if words and all(_ACRONYM.fullmatch(w) for w in words):
        return _weak(text, start, end, "STREET_ADDRESS", "a number and acronyms (500MB)")
    if english and not any(w[0].isupper() for w in words):
        if text != text.lower():
            return Judged(start, end, WEAK_SCORE, "lower case in a cased text")
        if all(is_common(w) or w.lower() in _PARTICLES for w in words):
            return _weak(text, start, end, "STREET_ADDRESS", "common words only")
    return Judged(start, end, score, "model")


def _is_code(span: str, label: str) -> bool:
    if _CODE.search(span) or any(unicodedata.category(ch) == "So" for ch in span):
        return True
    return label != "ORGANIZATION" and bool(_CAMEL.search(span))


def _glued(text: str, start: int, end: int) -> bool:
    """Whether the span is part of a longer token: an identifier, a path, code quotes."""
    before = text[max(0, start - 2) : start]
    after = text[end : end + 2]
    if (after[:1] == "." and after[1:].isalnum()) or (before[-1:] == "." and before[:1].isalnum()):
        return True  # Split.TRAIN, datasets.Audio
    return any(ch.isalnum() or ch in "_`=/\\" for ch in before[-1:] + after[:1])


def _ordinary(word: str) -> bool:
    """A common English word, an article or particle, a word that names software (the
    vocabulary of :mod:`._techwords`), or (beside such words) an acronym."""
    lower = word.lower()
    return (
        is_common(word)
        or lower in _PARTICLES
        or lower in _ARTICLES
        or is_technical(word)
        or _acronym(word)
    )


def _acronym(word: str) -> bool:
    """An upper-case word of 2-5 letters (a plural too); quotes around it do not count."""
    return bool(_ACRONYM.fullmatch(word.strip("'’")))


def _lower_word(word: str) -> bool:
    return word[0].islower() and word.lower() not in _PARTICLES


def _weak(text: str, start: int, end: int, label: str, reason: str) -> Judged:
    pattern = _CONTEXT_RE.get(label)
    near = text[_window_start(text, start) : start] + " | " + text[end : _window_end(text, end)]
    if pattern is not None and pattern.search(near.lower()):
        return Judged(start, end, WEAK_SCORE + CONTEXT_BOOST, f"{reason}, with context")
    return Judged(start, end, WEAK_SCORE, reason)


def _window_start(text: str, start: int) -> int:
    """Where the context before a span begins: :data:`_BEFORE` characters back, less the
    word that limit cuts (only whole words count: "me" of "name" is not a context word)."""
    at = max(0, start - _BEFORE)
    while 0 < at < start and text[at - 1].isalnum() and text[at].isalnum():
        at += 1
    return at


def _window_end(text: str, end: int) -> int:
    """Where the context after a span ends: :data:`_AFTER` characters on, less the word
    that limit cuts ("met" of "method" is not a context word)."""
    at = min(len(text), end + _AFTER)
    while end < at < len(text) and text[at].isalnum() and text[at - 1].isalnum():
        at -= 1
    return at
