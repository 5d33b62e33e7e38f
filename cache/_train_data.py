"""The verifier's training and calibration pairs, read from the public paraphrase sets.

Labels ("the cached answer fits the new question"):

- MRPC (``paraphrase/mrpc/msr_paraphrase_train.txt``): its own label (1 = paraphrase). A
  fixed, seeded 10% of the training file is held out as "MRPC dev" (the set has no dev
  split here) and never trained on;
- STS-B (``sts-train.csv`` to train, ``sts-dev.csv`` held out): score >= 4.0 is the same
  question, score < 3.0 another one; pairs in [3, 4) are left out — the same rule the
  cache benchmark scores STS-B test with (``bench/_cache_data.py``), so the model learns
  the line it is measured on;
- hard negatives synthesised from the *training* positives only: the second sentence
  negated ("is" → "is not"), one of its numbers changed, or two of its numbers swapped.

Test splits and GPTCache's mock data are never read here: the benchmark measures on them.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path

from genai.errors import ConfigError

__all__ = ["DATA_DIR", "Pair", "hard_negatives", "mrpc_split", "stsb"]

DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "paraphrase"
STS_SAME, STS_OTHER = 4.0, 3.0
_AUX = re.compile(
    r"\b(is|are|was|were|can|will|would|should|could|does|do|did|has|have|had|must)\b",
    re.IGNORECASE,
)
_NUMBER = re.compile(r"\b\d+(?:\.\d+)?\b")


@dataclass(frozen=True)
class Pair:
    a: str
    b: str
    same: bool
    source: str


def _read(path: Path) -> list[list[str]]:
    if not path.is_file():
        raise ConfigError(
            f"training data missing: {path}; point --data at the folder holding mrpc/ and "
            "stsbenchmark/ (the project's ../shared/data/paraphrase)"
        )
    return [line.split("\t") for line in path.read_text(encoding="utf-8-sig").splitlines()]


def mrpc_split(data: Path, seed: int, held_out: float = 0.1) -> tuple[list[Pair], list[Pair]]:
    """MRPC's training file as (train, held-out dev), split by a seeded shuffle."""
    rows = _read(data / "mrpc" / "msr_paraphrase_train.txt")[1:]
    pairs = [Pair(r[3], r[4], r[0] == "1", "mrpc") for r in rows if len(r) >= 5]
    random.Random(seed).shuffle(pairs)
    cut = int(len(pairs) * held_out)
    return pairs[cut:], pairs[:cut]


def stsb(data: Path, split: str) -> list[Pair]:
    """STS-B ``train`` or ``dev``, binarised (score >= 4 same, < 3 other, else left out)."""
    if split == "test":
        raise ConfigError("the verifier never reads a test split")
    pairs = []
    for row in _read(data / "stsbenchmark" / f"sts-{split}.csv"):
        if len(row) < 7:
            continue
        score = float(row[4])
        if score >= STS_SAME or score < STS_OTHER:
            pairs.append(Pair(row[5], row[6], score >= STS_SAME, "stsb"))
    return pairs


def _negate(text: str) -> str | None:
    found = _AUX.search(text)
    if found is None or text[found.end() :].lstrip().lower().startswith("not"):
        return None
    return f"{text[: found.end()]} not{text[found.end() :]}"


def _renumber(text: str, rng: random.Random) -> str | None:
    numbers = list(_NUMBER.finditer(text))
    if not numbers:
        return None
    if len({n.group() for n in numbers}) >= 2 and rng.random() < 0.5:
        first, second = numbers[0], next(n for n in numbers if n.group() != numbers[0].group())
        return (
            text[: first.start()]
            + second.group()
            + text[first.end() : second.start()]
            + first.group()
            + text[second.end() :]
        )
    chosen = rng.choice(numbers)
    value = chosen.group()
    other = str(int(float(value)) + rng.randint(1, 9)) if "." not in value else f"{value}1"
    return text[: chosen.start()] + other + text[chosen.end() :]


def hard_negatives(positives: list[Pair], seed: int, limit: int) -> list[Pair]:
    """Negated and renumbered copies of training positives, labelled "another question"."""
    rng = random.Random(seed)
    made: list[Pair] = []
    for pair in positives:
        for kind, changed in (("negated", _negate(pair.b)), ("numbers", _renumber(pair.b, rng))):
            if changed is not None and changed != pair.b:
                made.append(Pair(pair.a, changed, False, f"synthetic-{kind}"))
    rng.shuffle(made)
    return made[:limit]


# ------------------------------------------------------------------ templated questions
# Paraphrase and news sets teach "same meaning", not "same question": they hold almost no
# pairs of two questions about one thing that ask different things ("How much does X
# cost?" / "How long does X take?"), nor a question with its operands swapped. These
# templates add them. Their objects and wording were chosen apart from the curated pairs
# the tests check (tests/integration/test_cache_verifier.py); a fifth of the objects is held
# out to measure the skill on objects never seen in training.

_OBJECTS = (
    "my order",
    "the invoice",
    "a refund",
    "my membership",
    "the warranty",
    "express delivery",
    "the mobile app",
    "my credit card",
    "the gift card",
    "parking",
    "the gym",
    "the library card",
    "a hotel room",
    "the train ticket",
    "my insurance policy",
    "the loan",
    "my phone plan",
    "the printer",
    "the VPN",
    "two-factor authentication",
    "the newsletter",
    "a table reservation",
    "the rental car",
    "my pension",
    "the tax return",
    "the visa application",
    "the laptop battery",
    "the guest Wi-Fi",
    "a passport",
    "the museum pass",
)
_INTENTS = (
    ("How much does {o} cost?", "What is the price of {o}?", "What does {o} cost?"),
    ("How long does {o} take?", "How much time does {o} take?"),
    ("How do I cancel {o}?", "How can I cancel {o}?", "What are the steps to cancel {o}?"),
    ("How do I change {o}?", "How can I modify {o}?"),
    ("Where can I find {o}?", "Where is {o} located?"),
    ("When is {o} available?", "At what time is {o} available?"),
    ("Why does {o} fail?", "What makes {o} fail?"),
    ("Who do I contact about {o}?", "Whom should I contact about {o}?"),
    ("How do I renew {o}?", "How can I renew {o}?"),
    ("What do I need for {o}?", "What is required for {o}?"),
)
_UNITS = (
    ("pounds", "yen"),
    ("miles", "kilometres"),
    ("Celsius", "Fahrenheit"),
    ("PDF", "Word"),
    ("JSON", "CSV"),
    ("litres", "gallons"),
    ("inches", "centimetres"),
    ("rupees", "francs"),
    ("PNG", "JPEG"),
    ("hours", "minutes"),
    ("ounces", "grams"),
    ("Markdown", "HTML"),
)
_ORDERED = (
    ("How do I convert {a} to {b}?", "What is the way to convert {a} to {b}?"),
    ("Is it cheaper to switch from {a} to {b}?", "Is switching from {a} to {b} cheaper?"),
)


def question_pairs(seed: int, *, held_out: bool = False) -> list[Pair]:
    """Templated question pairs: the same intent about the same object worded twice (same),
    another intent about it or the same intent about another object (other), and a
    conversion or switch with its operands swapped (other). ``held_out``: the pairs over
    the held-out fifth of the objects and units only (else the rest)."""
    rng = random.Random(seed)
    cut_o, cut_u = len(_OBJECTS) * 4 // 5, len(_UNITS) * 4 // 5
    objects = _OBJECTS[cut_o:] if held_out else _OBJECTS[:cut_o]
    units = _UNITS[cut_u:] if held_out else _UNITS[:cut_u]
    pairs: list[Pair] = []
    for o in objects:
        for i, forms in enumerate(_INTENTS):
            a, b = rng.sample(forms, 2)
            pairs.append(Pair(a.format(o=o), b.format(o=o), True, "questions"))
            other = rng.choice([f for j, f in enumerate(_INTENTS) if j != i])
            pairs.append(Pair(a.format(o=o), rng.choice(other).format(o=o), False, "questions"))
            if rng.random() < 0.4:
                o2 = rng.choice([x for x in objects if x != o])
                pairs.append(Pair(a.format(o=o), b.format(o=o2), False, "questions"))
    for x, y in units:
        for first, second in _ORDERED:
            pairs.append(Pair(first.format(a=x, b=y), second.format(a=x, b=y), True, "questions"))
            pairs.append(Pair(first.format(a=x, b=y), first.format(a=y, b=x), False, "questions"))
            pairs.append(Pair(second.format(a=x, b=y), first.format(a=y, b=x), False, "questions"))
    rng.shuffle(pairs)
    return pairs
