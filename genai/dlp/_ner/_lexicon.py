"""Common English words: a lexicon the NER's findings are checked against.

Why: the bundled NER learned from synthetic sentences in which nearly every capitalised
word is a name, a place or a company, so it calls capitalised ordinary words entities
("Tutorials", "Storage", "Spaces" in a technical answer). A span made only of common
English words is weak evidence of personal data (see :mod:`._evidence`).

The list ships as ``words/common_en.txt.gz``: the lower-case words of SCOWL's
``american-english-large`` list (Debian's ``wamerican-large``, size 70) that the list does
not also carry capitalised, so words that are also given names, surnames or places
("will", "rose", "baker", "paris") are left out; regular plurals of a listed word are
left out too (:func:`is_common` strips an ``s``). Rebuild it with::

    apt-get install wamerican-large
    python -m genai.dlp._ner._lexicon /usr/share/dict/american-english-large

SCOWL's copyright and permission notice are in ``words/SCOWL-LICENSE``.
"""

from __future__ import annotations

import functools
import gzip
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

__all__ = ["LEXICON_PATH", "build", "common_words", "is_common"]

#: The shipped lexicon (one word a line, gzip).
LEXICON_PATH = Path(__file__).resolve().parent / "words" / "common_en.txt.gz"
_HEADER = "# common English words (genai.dlp._ner._lexicon), from "


def build(lines: Iterable[str]) -> list[str]:
    """The lexicon's words from a SCOWL word list (one word a line)."""
    words = [w.strip() for w in lines if w.strip() and "'" not in w]
    lower = {w for w in words if w.islower()}
    proper = {w.lower() for w in words if w[:1].isupper()}
    common = lower - proper
    return sorted(w for w in common if not (w.endswith("s") and w[:-1] in common))


@functools.cache
def common_words() -> frozenset[str]:
    """The shipped lexicon, loaded once per process (~90k words, ~10 MB)."""
    with gzip.open(LEXICON_PATH, "rt", encoding="utf-8") as file:
        return frozenset(line.rstrip("\n") for line in file if not line.startswith("#"))


def is_common(word: str) -> bool:
    """Whether ``word`` (any case, a plural or possessive too) is a common English word."""
    w = word.lower().strip(".'’")
    for suffix in ("'s", "’s"):
        w = w.removesuffix(suffix)
    words = common_words()
    return w in words or (len(w) > 3 and w.endswith("s") and w[:-1] in words)


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        raise SystemExit("usage: python -m genai.dlp._ner._lexicon WORD_LIST")
    source = Path(args[0])
    words = build(source.read_text(encoding="utf-8", errors="replace").splitlines())
    LEXICON_PATH.parent.mkdir(exist_ok=True)
    body = "\n".join([_HEADER + source.name, *words]) + "\n"
    LEXICON_PATH.write_bytes(gzip.compress(body.encode("utf-8"), compresslevel=9, mtime=0))
    print(f"{len(words)} words -> {LEXICON_PATH}")


if __name__ == "__main__":
    main()
