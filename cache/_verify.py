"""The second check on a semantic candidate: does the cached question ask the same thing?

Sentence embeddings place questions that share every word but one close together: with
all-MiniLM-L6-v2, "Is the store open on Sunday?" / "... closed on Sunday?" score 0.945,
"increase" / "decrease my credit limit" 0.906, "revenue in 2023" / "in 2024" 0.93 — while
true paraphrases often score 0.7 to 0.85. No threshold separates the two. So after the
similarity threshold, a candidate must also pass cheap lexical checks that look at exactly
what embeddings blur:

- negation: one text is negated ("not", "never", "n't", ...) and the other is not, or one
  says a thing is absent ("without X", "non-X", "with no X") that the other mentions;
- antonyms: one text says "open", "enable", "with", "upload", ... where the other says the
  opposite ("close", "disable", "without", "download", ...);
- numbers: the two texts mention different numbers (amounts, years, versions, "three");
- names: each text names something the other does not ("Paris" / "London", "A100" / "H100",
  ``load_dataset`` / ``load_from_disk``); a name also matches its acronym ("HF" / "Hugging
  Face", "JS" / "JavaScript", "TV" / "television"), its spelling spaces, a version with its
  word cut short ("v2.10.0" / "version 2.10.0") and its adjective ("Syria" / "Syrian") —
  other spellings of one name, recognised by their letters, never by a list of words.

Each check only ever *rejects*: it turns a hit into a miss, never a miss into a hit. The
rules were chosen on the STS-B and MRPC training splits (see ``cache/_calibrate.py``), never
on their test splits or on the benchmark data.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

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
_SCALED = re.compile(r"^\d+(?:\.\d+)?(?:k|m|mn|b|bn)$")
_LIST_MARKER = re.compile(r"(?m)^\s*\(?\d{1,2}[.)]\s+")
_TOKEN = re.compile(r"`[^`]+`|[\w][\w.\-/+#’']*[\w+#)]|\w", re.UNICODE)
_CLAUSE_START = re.compile(r"(^|[.!?:;]\s+|\n\s*|[\"“(]\s*)$")
_DOTTED = re.compile(r"\b(?:[A-Z]\.){2,5}")
_VERSIONED = re.compile(r"([a-z]+)[.\-]?(\d+(?:\.\d+)*)")
_WORD_NUMBER = re.compile(r"([A-Za-z]+)[\s\-]+[vV]?(\d+(?:\.\d+)*)")
_CAMEL = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")
# Endings that make a name's adjective or inhabitant ("Syria" / "Syrian", "Japan" /
# "Japanese", "Mexico" / "Mexican"): the same name, not another one.
_NAME_ENDINGS = frozenset(("", "n", "an", "ian", "ese", "i", "ic", "a", "o", "y"))


# ------------------------------------------------------------------ features


def _words(text: str) -> list[str]:
    return [w.replace("’", "'").lower() for w in _WORD.findall(text)]


def _negated(words: list[str]) -> bool:
    return any(w in _NEGATIONS or w.endswith("n't") for w in words)


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


def _stem(word: str) -> str:
    stem = re.sub(r"(?:ing|ed|es|s|e)$", "", word)
    return stem if len(stem) >= 3 else word


def _absence_differs(a: list[str], b: list[str]) -> bool:
    """Whether one text says a thing is absent that the other mentions without saying so
    ("travel without a pet" / "travel with a pet", "non-streaming" / "streaming")."""
    gone_a, scope_a = _absent(a)
    gone_b, scope_b = _absent(b)
    said_a = {_stem(w) for i, w in enumerate(a) if i not in scope_a}
    said_b = {_stem(w) for i, w in enumerate(b) if i not in scope_b}
    return bool((gone_a - gone_b) & said_b or (gone_b - gone_a) & said_a)


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
    text = _LIST_MARKER.sub(" ", text)
    found: set[str] = set()
    for match in _NUMBER.finditer(text):
        whole, fraction, version, scale = match.groups()
        if version:  # 2.10.0: a version, compared as written
            found.add(f"{whole}.{fraction}{version}")
            continue
        value = float(whole.replace(",", "") + ("." + fraction if fraction else ""))
        factor = _SCALES.get((scale or "").lower().rstrip("s"), 1)
        found.add(_canonical(value * factor))
    words = re.findall(r"[a-z]+", text.lower())
    i = 0
    while i < len(words):
        unit = _UNITS.get(words[i])
        if unit is None:
            i += 1
            continue
        if unit >= 20 and unit % 10 == 0 and i + 1 < len(words):
            ones = _UNITS.get(words[i + 1], 0)
            if 0 < ones < 10 and ones == int(ones):  # fifty-seven, fifty seven
                unit, i = unit + ones, i + 1
        following = words[i + 1] if i + 1 < len(words) else ""
        if words[i] in ("second", "half") and following not in _SCALES:
            i += 1
            continue  # "a second time", "half of": too often not a number
        found.add(_canonical(unit * _SCALES.get(following, 1)))
        i += 1
    found.discard("1")  # "1", "a", "an", "one" and "single" say the same thing
    return found


def _canonical(value: float) -> str:
    return str(int(value)) if value == int(value) else f"{value:g}"


@dataclass(frozen=True)
class _Name:
    raw: str  # as written, without surrounding punctuation
    key: str  # lower case, letters and digits only


def _names(text: str) -> list[_Name]:
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
        key = re.sub(r"[^a-z0-9]", "", lower)
        if len(key) < 2 or key.isdigit() or lower in _COMMON_CAPS or _SCALED.match(lower):
            continue  # "5k", "2.5bn": amounts, which the number check compares
        shouting = token.isupper() and token.isalpha() and len(token) > 5
        code = raw.startswith("`") or "_" in token or "()" in token
        dotted = bool(re.search(r"[a-z]{2}\.[a-z]", lower))
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
    return names


@dataclass(frozen=True)
class _Text:
    """What the name check needs of the other text, computed once."""

    keys: frozenset[str]  # each token in lower case, letters and digits only
    compact: str  # the whole text so
    initials: str  # the first letter of each word
    acronyms: frozenset[str]  # its short words in capitals (NLP), in lower case

    @classmethod
    def of(cls, text: str) -> _Text:
        keys = {re.sub(r"[^a-z0-9]", "", m.group().lower()) for m in _TOKEN.finditer(text)}
        words = re.findall(r"[a-z0-9]+", text.lower())
        keys.update(words)
        acronyms = {w.lower() for w in re.findall(r"\b[A-Z]{2,5}s?\b", text)}
        acronyms.update(w.replace(".", "").lower() for w in _DOTTED.findall(text))
        return cls(
            frozenset(keys),
            "".join(words),
            "".join(w[0] for w in words if w[0].isalpha()),
            frozenset(a.rstrip("s") if a.endswith("s") else a for a in acronyms),
        )


def _mentions(name: _Name, other: _Text) -> bool:
    """Whether the other text names ``name``: the word itself, the same letters without
    spaces or dots ("HuggingFace" / "Hugging Face", "U.S." / "US"), a plural or singular of
    it, an acronym of consecutive words ("HF" / "Hugging Face"), or each part of a
    CamelCase name ("IterableDataset" / "a Dataset that is Iterable")."""
    key = name.key
    if key in other.keys or (len(key) >= 4 and key in other.compact):
        return True
    if (key.endswith("s") and key[:-1] in other.keys) or key + "s" in other.keys:
        return True
    if name.raw.isupper() and len(key) <= 6 and key.isalpha() and key in other.initials:
        return True
    parts = re.findall(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+", name.raw)
    return len(parts) > 1 and all(p.lower() in other.keys for p in parts)


def _expanded(names: list[_Name], text: str, other: _Text) -> list[_Name]:
    """The names left once runs of capitalised words that spell an acronym of the other
    text are taken as matched ("Natural Language Processing" / "NLP")."""
    if not other.acronyms:
        return names
    matched: set[str] = set()
    for run in re.findall(r"\b[A-Z][a-z]+(?:\s+[A-Z][a-z]+)+\b", text):
        words = run.split()
        initials = "".join(w[0] for w in words).lower()
        if any(a in initials for a in other.acronyms):
            matched.update(w.lower() for w in words)
    return [n for n in names if n.key not in matched]


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

    def reject(self, query: str, cached: str) -> str | None:
        if normalize_text(query).casefold() == normalize_text(cached).casefold():
            return None
        qw, cw = _privatives(_words(query)), _privatives(_words(cached))
        if self.negation and (_negated(qw) != _negated(cw) or _absence_differs(qw, cw)):
            return "negation"
        if self.antonyms and _opposed(_antonym_phrases(qw), _antonym_phrases(cw)):
            return "antonym"
        if self.numbers and _numbers(query) != _numbers(cached):
            return "numbers"
        if self.names and _names_differ(query, cached, both=self.names_both):
            return "names"
        return None


def _opposed(a: set[str], b: set[str]) -> bool:
    return any(word not in b and (_OPPOSITES.get(word, set()) & (b - a)) for word in a) or any(
        word not in a and (_OPPOSITES.get(word, set()) & (a - b)) for word in b
    )


def _names_differ(query: str, cached: str, *, both: bool) -> bool:
    q_text, c_text = _Text.of(query), _Text.of(cached)
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
