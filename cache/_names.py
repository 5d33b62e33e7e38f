"""The names check of the cache's second check: does each text name something the other
does not ("Paris" / "London", "A100" / "H100", ``load_dataset`` / ``load_from_disk``)?

A name also matches its acronym ("HF" / "Hugging Face", "JS" / "JavaScript"), its spelling
spaces, a version with its word cut short ("v2.10.0" / "version 2.10.0") and its adjective
("Syria" / "Syrian"): other spellings of one name, recognised by their letters, never by a
list of words. Chosen, like the other checks, on the STS-B and MRPC training splits.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

__all__ = ["capitalised_keys", "name_keys", "names_differ", "token_offsets"]


def _set(words: str) -> frozenset[str]:
    return frozenset(words.split())


# Words that are capitalised at the start of a clause but name nothing.
_COMMON_CAPS = _set(
    """
    i i'm i've i'd i'll a an the this that these those it its is are was were be what which
    who whom whose when where why how can could should would will shall may might must do
    does did has have had please hi hello hey thanks thank yes no ok okay mr mrs ms dr mon
    tue wed thu fri sat sun monday tuesday wednesday thursday friday saturday sunday january
    february march april may june july august september october november december
    """
)


_SCALED = re.compile(r"^\d+(?:\.\d+)?(?:k|m|mn|b|bn)$")
_TOKEN = re.compile(r"`[^`]+`|[\w][\w.\-/+#’']*[\w+#)]|\w", re.UNICODE)
_CLAUSE_START = re.compile(r"(^|[.!?:;]\s+|\n\s*|[\"“(]\s*)$")
_DOTTED = re.compile(r"\b(?:[A-Z]\.){2,5}")
_VERSIONED = re.compile(r"([a-z]+)[.\-]?(\d+(?:\.\d+)*)")
_WORD_NUMBER = re.compile(r"([A-Za-z]+)[\s\-]+[vV]?(\d+(?:\.\d+)*)")
_CAMEL = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")
_NOT_KEY = re.compile(r"[^a-z0-9]")
_CODE_DOT = re.compile(r"[a-z]{2}\.[a-z]")
# Endings that make a name's adjective or inhabitant ("Syria" / "Syrian", "Japan" /
# "Japanese", "Mexico" / "Mexican"): the same name, not another one.
_NAME_ENDINGS = frozenset(("", "n", "an", "ian", "ese", "i", "ic", "a", "o", "y"))


def _key(word: str) -> str:
    """A word in lower case, letters and digits only: how names are compared."""
    return _NOT_KEY.sub("", word.lower())


@dataclass(frozen=True)
class _Name:
    raw: str  # as written, without surrounding punctuation
    key: str  # lower case, letters and digits only


# Both analyses are pure functions of a text, kept for the 1024 texts seen last (~2.5 KiB
# each, together): a cached question is checked again on every lookup near it, and a query
# against each of its candidates.
@lru_cache(maxsize=1024)
def _names(text: str) -> tuple[_Name, ...]:
    """What a text names: mid-clause capitalised words, CamelCase, ACRONYMS, words with
    digits (A100, gpt-4), and code (``load_dataset()``, snake_case, dotted.names).

    In a Title Case Headline capitals say nothing, so there only the other signs count; a
    long word in capitals is emphasis (INSTALLATION), not an acronym."""
    tokens = [
        (m.start(), part)
        for m in _TOKEN.finditer(text)
        for part in (m.group().split("/") if "/" in m.group() else [m.group()])
    ]
    alpha = [t for _, t in tokens if t[:1].isalpha()]
    title_case = len(alpha) >= 4 and sum(w[0].isupper() for w in alpha) > 0.6 * len(alpha)
    names = []
    for start, raw in tokens:
        token = raw.strip("`'’.-")
        if token.lower().endswith(("'s", "’s")):
            token = token[:-2]
        lower = token.lower()
        key = _key(lower)
        if len(key) < 2 or key.isdigit() or lower in _COMMON_CAPS or _SCALED.match(lower):
            continue  # "5k", "2.5bn": amounts, which the number check compares
        shouting = token.isupper() and token.isalpha() and len(token) > 5
        code = raw.startswith("`") or "_" in token or "()" in token
        dotted = bool(_CODE_DOT.search(lower))
        has_digit = any(c.isdigit() for c in token) and any(c.isalpha() for c in token)
        inner_caps = any(c.isupper() for c in token[1:]) and not token.isupper()
        acronym = token.isupper() and not shouting and sum(c.isalpha() for c in token) >= 2
        capital = (
            not title_case
            and not shouting
            and token[0].isupper()
            and not _CLAUSE_START.search(text[:start])
        )
        if code or dotted or has_digit or inner_caps or acronym or capital:
            names.append(_Name(token, key))
    return tuple(names)


def name_keys(text: str) -> frozenset[str]:
    """The keys (lower case, letters and digits) of what a text names."""
    return frozenset(n.key for n in _names(text))


@lru_cache(maxsize=1024)
def capitalised_keys(text: str) -> frozenset[str]:
    """The keys of the capitalised words of a text that do not open a clause, Title Case
    or not ("Does Alice pay Bob?": alice, bob): names, when the other text capitalises
    them too."""
    keys = set()
    for m in _TOKEN.finditer(text):
        token = m.group().strip("`'’.-")
        key = _key(token)
        capital = token[:1].isupper() and len(key) >= 2 and key not in _COMMON_CAPS
        if capital and not _CLAUSE_START.search(text[: m.start()]):
            keys.add(key)
    return frozenset(keys)


@lru_cache(maxsize=1024)
def token_offsets(text: str) -> dict[str, tuple[int, ...]]:
    """Where each token of a text starts, by key (as :func:`_names` keys a name, whether
    or not it is one here: "Alice" opening a sentence is keyed as "Bob" within one is)."""
    found: dict[str, list[int]] = {}
    for m in _TOKEN.finditer(text):
        offset = m.start()
        for part in m.group().split("/"):
            token = part.strip("`'’.-")
            if token.lower().endswith(("'s", "’s")):
                token = token[:-2]
            key = _key(token)
            if key:
                found.setdefault(key, []).append(offset)
            offset += len(part) + 1
    return {key: tuple(offsets) for key, offsets in found.items()}


@dataclass(frozen=True)
class _Text:
    """What the name check needs of the other text, computed once."""

    keys: frozenset[str]  # each token in lower case, letters and digits only
    compact: str  # the whole text so
    initials: str  # the first letter of each word
    acronyms: frozenset[str]  # its short words in capitals (NLP), in lower case


@lru_cache(maxsize=1024)
def _text(text: str) -> _Text:
    keys = {_key(m.group()) for m in _TOKEN.finditer(text)}
    words = re.findall(r"[a-z0-9]+", text.lower())
    keys.update(words)
    acronyms = {w.lower() for w in re.findall(r"\b[A-Z]{2,5}s?\b", text)}
    acronyms.update(w.replace(".", "").lower() for w in _DOTTED.findall(text))
    return _Text(
        frozenset(keys),
        "".join(words),
        "".join(w[0] for w in words if w[0].isalpha()),
        frozenset(a.rstrip("s") if a.endswith("s") else a for a in acronyms),
    )


def _mentions(name: _Name, other: _Text) -> bool:
    """Whether the other text names ``name``: the word itself, the same letters without
    spaces or dots ("HuggingFace" / "Hugging Face", "U.S." / "US"), a plural or singular of
    it, an acronym of consecutive words ("HF" / "Hugging Face"), each part of a dotted
    name ("datasets.Audio" / "the Audio class of datasets") or of a CamelCase name
    ("IterableDataset" / "a Dataset that is Iterable")."""
    key = name.key
    if key in other.keys or (len(key) >= 4 and key in other.compact):
        return True
    if (key.endswith("s") and key[:-1] in other.keys) or key + "s" in other.keys:
        return True
    if name.raw.isupper() and len(key) <= 6 and key.isalpha() and key in other.initials:
        return True
    dotted = name.raw.split(".")
    if len(dotted) > 1 and all(len(p) >= 2 and p[:1].isalpha() for p in dotted):
        return all(_mentions(_Name(p, _key(p)), other) for p in dotted)
    parts = _CAMEL.findall(name.raw)
    return len(parts) > 1 and all(p.lower() in other.keys for p in parts)


def _expanded(names: Sequence[_Name], text: str, other: _Text) -> list[_Name]:
    """The names left once runs of capitalised words that spell an acronym of the other
    text are taken as matched ("Natural Language Processing" / "NLP")."""
    if not other.acronyms:
        return list(names)
    matched: set[str] = set()
    for run in re.findall(r"\b[A-Z][a-z]+(?:\s+[A-Z][a-z]+)+\b", text):
        words = run.split()
        initials = "".join(w[0] for w in words).lower()
        if any(a in initials for a in other.acronyms):
            matched.update(w.lower() for w in words)
    return [n for n in names if n.key not in matched]


def names_differ(query: str, cached: str, *, both: bool) -> bool:
    q_text, c_text = _text(query), _text(cached)
    q_only = [n for n in _expanded(_names(query), query, c_text) if not _mentions(n, c_text)]
    c_only = [n for n in _expanded(_names(cached), cached, q_text) if not _mentions(n, q_text)]
    q_only = [n for n in q_only if not _abbreviated(n, cached, q_text)]
    c_only = [n for n in c_only if not _abbreviated(n, query, c_text)]
    return bool(q_only and c_only) if both else bool(q_only or c_only)


# ------------------------------------------------------------------ abbreviations


def _abbreviated(name: _Name, other: str, this: _Text) -> bool:
    """Whether ``name``, which the other text does not write, is there in another spelling
    of the same thing: a short form and its long form ("JS" / "JavaScript", "TV" /
    "television"), a version with its word cut short ("v2.10" / "version 2.10"), or the
    name's adjective or inhabitant ("Syria" / "Syrian"). Only words the other text has and
    this one lacks can be the other spelling: a name already matched explains nothing.

    A short form is an acronym: two to five capitals, the first letter of the long form
    and the rest in order (Schwartz & Hearst's rule), not merely its first letters ("JS" is
    not "JSON", "AI" not "airline"); where the long form is written in CamelCase, exactly
    its parts' initials."""
    key = name.key
    words = [w for w in re.findall(r"[A-Za-z]+", other) if w.lower() not in this.keys]
    versioned = _VERSIONED.fullmatch(key)
    if versioned and not key.isalpha():
        cut, number = versioned.groups()
        return any(
            number == n.replace(".", "") and _starts(cut, w.lower())
            for w, n in _WORD_NUMBER.findall(other)
        )
    if not key.isalpha():
        return False
    if _acronym(name.raw) and any(_short_for(key, w) for w in words):
        return True
    for w in words:
        if _acronym(w) and _short_for(w.lower(), name.raw):
            return True
        if len(w) >= 4 and _same_name(key, w.lower()):
            return True
    return False


def _acronym(word: str) -> bool:
    return 2 <= len(word) <= 5 and word.isalpha() and word.isupper()


def _short_for(short: str, long: str) -> bool:
    """Whether ``short`` (lower case) abbreviates the one word ``long`` (as written)."""
    lower = long.lower()
    if len(lower) < len(short) + 2 or lower[0] != short[0] or lower.startswith(short):
        return False
    parts = _CAMEL.findall(long)
    if len(parts) > 1:
        return "".join(p[0] for p in parts).lower() == short
    rest = iter(lower[1:])
    return all(letter in rest for letter in short[1:])


def _starts(cut: str, word: str) -> bool:
    """Whether ``cut`` is ``word`` cut short: its first letters, or its first letter and
    others in order ("v" / "version", "ver" / "version", "py" / "python")."""
    if not cut or cut == word or word[0] != cut[0] or len(word) <= len(cut):
        return False
    rest = iter(word[1:])
    return all(letter in rest for letter in cut[1:])


def _same_name(a: str, b: str) -> bool:
    """Whether two words are one name with another ending ("syria" / "syrian")."""
    if a == b:
        return False
    common = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        common += 1
    return common >= 4 and a[common:] in _NAME_ENDINGS and b[common:] in _NAME_ENDINGS
