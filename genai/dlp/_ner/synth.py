"""The synthetic NER corpus: templates filled by Faker, with the noise real text has.

Each example is one to three template sentences joined the way chat turns, e-mails and
forms join them, with case noise (all lowercase, lowercase names, upper-case
addresses), list markers and stray spaces. Offsets are computed after the noise, so a
span always covers exactly its value. Same seed, same corpus (for a given Faker version
and ``PYTHONHASHSEED``: some Faker word lists are sets)::

    from genai.dlp._ner.synth import generate
    examples = generate(20_000, seed=1)
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from ._fill import Filler
from ._templates import GROUPS

_SLOT = re.compile(r"\{([A-Z_]+)\}")
_JOINERS = (" ", " ", "\n", "\n\n", "  ", " | ", "\n- ")
_LINE_PREFIXES = ("> ", ">", "| ", "- ", "• ", "* ", ">> ", "  ")
_DECORATIONS = ("", "", "", "", "", "> ", "- ", "* ", "1. ", "User: ", "Q: ", '"', "Re: ")


@dataclass(frozen=True)
class Example:
    """One training text and its entity spans ``(start, end, label)``."""

    text: str
    spans: tuple[tuple[int, int, str], ...]


class _Builder:
    """Accumulates segments so case noise never shifts an offset computed later."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.spans: list[tuple[int, int, str]] = []
        self.length = 0

    def add(self, text: str, label: str | None = None) -> None:
        if label is not None and text:
            self.spans.append((self.length, self.length + len(text), label))
        self.parts.append(text)
        self.length += len(text)

    def build(self) -> Example:
        return Example("".join(self.parts), tuple(self.spans))


def _case(text: str, mode: str) -> str:
    """Apply a case mode without changing the length (some lowercase forms grow)."""
    changed = text.lower() if mode == "lower" else text.upper() if mode == "upper" else text
    return changed if len(changed) == len(text) else text


def _fill(template: str, filler: Filler, out: _Builder, text_case: str) -> None:
    position = 0
    for match in _SLOT.finditer(template):
        out.add(_case(template[position : match.start()], text_case))
        value, label = getattr(filler, match.group(1))()
        value_case = text_case
        if text_case == "keep" and label in ("PERSON", "LOCATION", "ORGANIZATION"):
            roll = filler.rng.random()
            value_case = "lower" if roll < 0.05 else "upper" if roll < 0.07 else "keep"
        out.add(_case(value, value_case), label)
        position = match.end()
    out.add(_case(template[position:], text_case))


def _template(filler: Filler) -> str:
    groups = list(GROUPS.values())
    templates = filler.rng.choices([g[0] for g in groups], [g[1] for g in groups])[0]
    template = filler.pick(templates)
    if filler.p(0.25):
        template = template.rstrip(".!?")
    return template


def example(filler: Filler) -> Example:
    """One synthetic example: 1–3 filled templates, everyday sentences around, noise."""
    out = _Builder()
    roll = filler.rng.random()
    text_case = "lower" if roll < 0.06 else "upper" if roll < 0.08 else "keep"
    out.add(filler.pick(_DECORATIONS))
    if filler.p(0.10):  # nothing but ordinary text
        templates = ["{PROSE}"] * filler.rng.randint(1, 4)
    else:
        count = filler.rng.choices((1, 2, 3), (0.62, 0.28, 0.10))[0]
        templates = [_template(filler) for _ in range(count)]
        if filler.p(0.2):
            templates.insert(0, "{PROSE}")
        if filler.p(0.2):
            templates.append("{PROSE}")
    for i, template in enumerate(templates):
        if i:
            out.add(filler.pick(_JOINERS))
        _fill(template, filler, out, text_case)
    built = out.build()
    if "\n" in built.text and filler.p(0.15):
        return _quote_lines(built, filler.pick(_LINE_PREFIXES))
    return built


def _quote_lines(example: Example, prefix: str) -> Example:
    """Prefix every line (e-mail quoting, bullets); spans stay on their values."""
    text, spans = example.text, list(example.spans)
    out: list[str] = []
    shift = [0] * (len(text) + 1)  # characters inserted before each position
    added = 0
    for i, char in enumerate(text):
        if i == 0 or text[i - 1] == "\n":
            out.append(prefix)
            added += len(prefix)
        shift[i] = added
        out.append(char)
    shift[len(text)] = added
    moved = tuple((s + shift[s], e + shift[e - 1], label) for s, e, label in spans)
    return Example("".join(out), moved)


def generate(n: int, *, seed: int) -> list[Example]:
    """``n`` examples, reproducible from ``seed``."""
    filler = Filler(seed)
    return [example(filler) for _ in range(n)]


def iter_examples(n: int, *, seed: int) -> Iterator[Example]:
    filler = Filler(seed)
    for _ in range(n):
        yield example(filler)
