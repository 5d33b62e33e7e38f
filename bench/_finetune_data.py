"""The benchmark's training rows: chat Q/A about this project's README, and the batches each
trainer will see.

Answers are spans of the README's prose (code blocks left out) cut to a target number of
tokens of the model's own tokenizer; the question names the section the span comes from.

- ``uniform``: answers of similar length (a target drawn uniformly from a narrow range);
- ``skewed``: lognormal answer lengths, most short and a few long (clipped so that every row
  fits max_length): the case where padding wastes most and packing matters.

Rows go through ``finetune._data.validate_rows`` with ``finetune._tokens.Encoder`` (the
assistant turns trained, end-of-turn marker included), as a real run does.
"""

from __future__ import annotations

import hashlib
import math
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _provenance import ROOT

SYSTEM = "You answer questions about the genai-platform README."
QUESTIONS = [
    "What does the README say about {title}?",
    "Summarise the part of the README on {title}.",
    "Explain {title}, as the README does.",
    "What should I know about {title}?",
]


@dataclass(frozen=True)
class Shape:
    """How long the answers are, in tokens of the model's tokenizer."""

    kind: str  # uniform | skewed
    low: int = 40  # uniform: answer tokens drawn from [low, high]
    high: int = 56
    median: float = 24.0  # skewed: lognormal median and sigma, clipped to [floor, ceiling]
    sigma: float = 1.1
    floor: int = 8


def readme_prose(path: Path = ROOT / "README.md") -> tuple[str, list[tuple[int, str]], str]:
    """The README without code blocks, the (offset, title) of each section, and a hash of
    the text (the README changes; the hash names the version the rows came from)."""
    text = path.read_text()
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    out: list[str] = []
    sections: list[tuple[int, str]] = []
    fenced = False
    length = 0
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
            continue
        if fenced or not line.strip() or line.lstrip().startswith("|"):
            continue
        heading = re.match(r"^#{2,3} (.+)", line)
        if heading:
            sections.append((length, heading.group(1).strip()))
            continue
        if line.startswith("# "):
            continue
        piece = line.strip() + " "
        out.append(piece)
        length += len(piece)
    return "".join(out), sections or [(0, "the platform")], digest


def chat_rows(tokenizer: Any, shape: Shape, n: int, seed: int, max_length: int) -> list[dict]:
    """``n`` chat rows whose answers have the shape's token lengths (clipped so that the
    whole row fits ``max_length``)."""
    prose, sections, _ = readme_prose()
    encoding = tokenizer(prose, add_special_tokens=False, return_offsets_mapping=True)
    offsets = encoding["offset_mapping"]
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        if shape.kind == "uniform":
            length = rng.randint(shape.low, shape.high)
        else:
            drawn = math.exp(rng.gauss(math.log(shape.median), shape.sigma))
            length = int(max(drawn, shape.floor))
        start = rng.randrange(0, len(offsets) - min(length, len(offsets) - 1))
        title = next((t for at, t in reversed(sections) if at <= offsets[start][0]), sections[0][1])
        prompt = [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": QUESTIONS[i % len(QUESTIONS)].format(title=title)},
        ]
        asked = tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
        room = max_length - len(tokenizer(asked, add_special_tokens=False)["input_ids"]) - 8
        length = max(1, min(length, room, len(offsets) - start))
        begin, end = offsets[start][0], offsets[start + length - 1][1]
        answer = prose[begin:end].strip()
        rows.append({"messages": [*prompt, {"role": "assistant", "content": answer}]})
    return rows


def encode(tokenizer: Any, rows: list[dict], max_length: int) -> list[dict[str, list[int]]]:
    """The rows validated and encoded as a run encodes them (errors are fatal here)."""
    from finetune._data import validate_rows
    from finetune._tokens import Encoder

    encoder = Encoder(tokenizer)
    report, examples = validate_rows(rows, encoder=encoder, max_length=max_length)
    report.raise_for_errors("the benchmark's rows")
    out = []
    for example in examples:
        encoded = encoder.encode(example)
        out.append({"input_ids": encoded.input_ids, "labels": encoded.labels})
    return out


def batch_plan(
    rows: list[dict[str, list[int]]],
    order: list[int],
    batch_size: int,
    accumulation: int,
    steps: int,
) -> list[dict[str, int]]:
    """Per optimizer step: input tokens, trained tokens, and the tokens a padded batch
    holds (rows x the longest row, per micro-batch)."""
    plan = []
    for step in range(steps):
        tokens = trained = padded = 0
        for m in range(accumulation):
            first = (step * accumulation + m) * batch_size
            group = [rows[j] for j in order[first : first + batch_size]]
            if not group:
                raise ValueError("the dataset has fewer rows than the steps need")
            lengths = [len(r["input_ids"]) for r in group]
            tokens += sum(lengths)
            padded += len(group) * max(lengths)
            trained += sum(1 for r in group for x in r["labels"][1:] if x != -100)
        plan.append({"tokens": tokens, "trained": trained, "padded": padded})
    return plan


def describe(rows: list[dict[str, list[int]]]) -> dict[str, Any]:
    lengths = sorted(len(r["input_ids"]) for r in rows)
    n = len(lengths)
    return {
        "rows": n,
        "tokens_mean": round(sum(lengths) / n, 1),
        "tokens_p50": lengths[n // 2],
        "tokens_p90": lengths[min(n - 1, int(n * 0.9))],
        "tokens_max": lengths[-1],
        "tokens_min": lengths[0],
    }
