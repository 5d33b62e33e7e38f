"""Technical vocabulary: words that name software, not people or places.

Why: in technical writing the bundled NER calls product names people, places or
companies ("Apache Beam", "Albumentations", "in PyTorch", "Dask is a library"): it
learned from synthetic sentences in which a capitalised word is nearly always an entity,
and nothing in a product name's shape tells it from a surname. A span made only of such
words (beside common English words and acronyms) is weak evidence of personal data, like
a span of common words (see :mod:`._evidence`): a context word ("my name is", "works at",
"lives in") still makes it one.

The list ships as ``words/tech_en.txt.gz``: the words of the names of the 15,000 most
downloaded PyPI projects (a monthly download ranking; names split at ``-``, ``_`` and
``.``), at least four letters long, that are not common English words (those are in
:mod:`._lexicon` already) and not a first name, surname, city, street word, country or
region in Faker's person and address data for the locales the NER was trained on, nor in
the hand-written lists of :mod:`._vocab` (cities, countries, regions, nationalities).
Words that are also names ("timm", "flink") are left out, so a span holding one of them
keeps the model's score. Rebuild it with::

    python -m genai.dlp._ner._techwords TOP_PYPI_NAMES_FILE   # one project name a line
"""

from __future__ import annotations

import functools
import gzip
import importlib
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

__all__ = ["TECH_PATH", "build", "is_technical", "name_words", "technical_words"]

#: The shipped vocabulary (one lower-case word a line, gzip).
TECH_PATH = Path(__file__).resolve().parent / "words" / "tech_en.txt.gz"
_HEADER = "# technical words (genai.dlp._ner._techwords), from "
_PART = re.compile(r"[a-z]{4,}")
_SPLIT = re.compile(r"[-_.\s]+")


def build(project_names: Iterable[str], exclude: Iterable[str]) -> list[str]:
    """The vocabulary: the words of ``project_names`` minus common English words and
    ``exclude`` (lower-case names and places)."""
    from ._lexicon import is_common

    excluded = {w.lower() for w in exclude}
    words: set[str] = set()
    for name in project_names:
        for part in _SPLIT.split(name.strip().lower()):
            if _PART.fullmatch(part) and part not in excluded and not is_common(part):
                words.add(part)
    return sorted(words)


def name_words() -> set[str]:
    """Lower-case words of the names and places the NER learned from: Faker's person and
    address data for the training locales, and :mod:`._vocab`'s cities, countries,
    regions and nationalities (build time only; needs Faker)."""
    from . import _vocab
    from ._fill import LOCALES, ROMANISED

    out: set[str] = set()

    def add(values: Iterable[object]) -> None:
        for value in values:
            if isinstance(value, str):
                out.update(w.lower() for w in _SPLIT.split(value) if w)

    for locale in (*LOCALES, *ROMANISED, "en"):
        for kind in ("person", "address"):
            try:
                module = importlib.import_module(f"faker.providers.{kind}.{locale}")
            except ModuleNotFoundError:
                continue
            provider = getattr(module, "Provider", None)
            for attr in dir(provider) if provider is not None else ():
                value = getattr(provider, attr, None)
                if attr.startswith("_") or not isinstance(value, (tuple, list, dict)):
                    continue
                add(value.keys() if isinstance(value, dict) else value)
    for listed in (_vocab.WORLD_CITIES, _vocab.COUNTRIES_EN, _vocab.REGIONS_EN):
        add(listed)
    add(_vocab.NATIONALITIES)
    return out


@functools.cache
def technical_words() -> frozenset[str]:
    """The shipped vocabulary, loaded once per process."""
    with gzip.open(TECH_PATH, "rt", encoding="utf-8") as file:
        return frozenset(line.rstrip("\n") for line in file if not line.startswith("#"))


def is_technical(word: str) -> bool:
    """Whether ``word`` (any case, a plural or possessive too) names software."""
    w = word.lower().strip(".'’")
    for suffix in ("'s", "’s"):
        w = w.removesuffix(suffix)
    words = technical_words()
    return w in words or (len(w) > 4 and w.endswith("s") and w[:-1] in words)


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        raise SystemExit("usage: python -m genai.dlp._ner._techwords TOP_PYPI_NAMES_FILE")
    source = Path(args[0])
    words = build(source.read_text(encoding="utf-8").splitlines(), name_words())
    TECH_PATH.parent.mkdir(exist_ok=True)
    body = "\n".join([_HEADER + source.name, *words]) + "\n"
    TECH_PATH.write_bytes(gzip.compress(body.encode("utf-8"), compresslevel=9, mtime=0))
    print(f"{len(words)} words -> {TECH_PATH}")


if __name__ == "__main__":
    main()
