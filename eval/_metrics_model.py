"""The built-in metrics that need a model: embedding similarity, citation support (both with
the run's embedder), and an LLM judge (a judge deployment, through the gateway).

Embedding is synchronous and CPU-bound: it runs in a worker thread (``asyncio.to_thread``).
Without an embedder in the :class:`~eval._metric.MetricEnv`, the bundled all-MiniLM-L6-v2
is used (loaded on first use, offline). The judge never raises and never returns NaN: a
judge that fails or answers garbage, after ``retries`` more tries, leaves the row
unmeasured with the last problem as the reason.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from eval._embed_batch import EmbedBatcher
from eval._metrics_text import TextMetric, unmeasurable
from eval._types import MetricKind, MetricValue, Sample
from genai.errors import ValidationError
from genai.validation import check_metric_name

if TYPE_CHECKING:
    from eval._metric import Judge, MetricEnv
    from genai.models import Embedder

__all__ = ["DEFAULT_RUBRIC", "CitationSupport", "EmbeddingSimilarity", "LLMJudge"]


@functools.cache
def _bundled_embedder() -> Embedder:
    from genai.models import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder()


def _embedder_factory(env: MetricEnv | None) -> Callable[[], Embedder]:
    if env is not None and env.embedder is not None:
        return env.embedder
    return _bundled_embedder


def _cosines(vectors: Any) -> list[list[float]]:
    """The cosine similarity of every pair of unit ``vectors`` (clipped to -1..1)."""
    import numpy as np

    similarity = np.clip(np.nan_to_num(vectors @ vectors.T), -1.0, 1.0)
    return [[float(x) for x in row] for row in similarity]


class EmbeddingSimilarity(TextMetric):
    """Cosine similarity of the output's and the reference's embeddings (-1..1; an empty
    output scores 0)."""

    default_name = "embedding_similarity"
    bounds = (-1.0, 1.0)

    def __init__(self, *, name: str | None = None, env: MetricEnv | None = None) -> None:
        super().__init__(name=name, env=env)
        self._batcher = EmbedBatcher(_embedder_factory(env))

    async def score(self, sample: Sample) -> MetricValue:
        problem = unmeasurable(sample, needs_reference=True)
        if problem is not None:
            return MetricValue.unmeasured(problem)
        output, reference = sample.answer.output, sample.row.reference or ""
        if not output.strip():
            return MetricValue.of(0.0)
        cosines = _cosines(await self._batcher.vectors([output, reference]))
        return MetricValue.of(cosines[0][1])


# ------------------------------------------------------------------ citations


_MARK = re.compile(r"\[(\d+)\]")
_MARKS = re.compile(r"\s*\[\d+\]")  # a mark with the space before it
_LEADING_MARKS = re.compile(r"\s*(?:\[\d+\]\s*)+")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")


def _unmarked(text: str) -> str:
    return " ".join(_MARKS.sub("", text).split())


def citing_sentences(text: str) -> dict[int, list[str]]:
    """For each ``[n]`` in ``text``, the sentences that carry it, without their marks. Marks
    after a sentence's full stop ("... in 1889. [2]", at the start of the next piece) belong
    to that sentence."""
    found: dict[int, list[str]] = {}
    previous = ""
    for piece in _SENTENCE_END.split(text):
        leading = _LEADING_MARKS.match(piece)
        rest = piece[leading.end() :] if leading else piece
        sentence = _unmarked(rest)
        if leading:
            _cite(found, _MARK.findall(leading.group()), previous or sentence)
        _cite(found, _MARK.findall(rest), sentence)
        previous = sentence or previous
    return found


def _cite(found: dict[int, list[str]], numbers: list[str], sentence: str) -> None:
    for number in numbers:
        sentences = found.setdefault(int(number), [])
        if sentence and sentence not in sentences:
            sentences.append(sentence)


class CitationSupport(TextMetric):
    """The fraction of the answer's citations that support what cites them (0..1).

    A citation ``[n]`` supports its text when the embedding cosine between the chunk and
    the best of the sentences carrying ``[n]`` is at least ``threshold`` (default 0.5); a
    citation the text never marks is compared with the whole answer, and a mark with no
    cited chunk behind it counts as unsupported. An answer with retrieved contexts but no
    citations scores 0; one with neither (not a knowledge bot's) is unmeasured.
    """

    default_name = "citation_support"
    needs_reference = False

    def __init__(
        self, *, threshold: float = 0.5, name: str | None = None, env: MetricEnv | None = None
    ) -> None:
        super().__init__(name=name, env=env)
        number = isinstance(threshold, int | float) and not isinstance(threshold, bool)
        if not (number and -1.0 <= threshold <= 1.0):
            raise ValidationError(
                f"threshold is a cosine similarity from -1 to 1, not {threshold!r}",
                field="threshold",
            )
        self.threshold = float(threshold)
        self._batcher = EmbedBatcher(_embedder_factory(env))

    async def score(self, sample: Sample) -> MetricValue:
        problem = unmeasurable(sample, needs_reference=False)
        if problem is not None:
            return MetricValue.unmeasured(problem)
        answer = sample.answer
        if not answer.citations:
            if answer.contexts:
                return MetricValue.of(0.0)
            return MetricValue.unmeasured("the answer has no citations")
        chunks = {c.number: c.text for c in answer.citations}
        marks = citing_sentences(answer.output)
        whole = _unmarked(answer.output)
        claims = {n: marks.get(n) or ([whole] if whole else []) for n in chunks}
        supported = await self._supported(chunks, claims)
        unbacked = len(set(marks) - set(chunks))  # marks no cited chunk stands behind
        return MetricValue.of(supported / (len(chunks) + unbacked))

    async def _supported(self, chunks: dict[int, str], claims: dict[int, list[str]]) -> int:
        texts = sorted({t for ts in claims.values() for t in ts} | set(chunks.values()))
        index = {text: i for i, text in enumerate(texts)}
        cosines = _cosines(await self._batcher.vectors(texts))
        return sum(
            1
            for number, chunk in chunks.items()
            if any(cosines[index[c]][index[chunk]] >= self.threshold for c in claims[number])
        )


# ------------------------------------------------------------------ the judge


DEFAULT_RUBRIC = """\
Grade the answer to the question below for correctness: does it say what the reference \
answer says (when one is given), without claims that contradict it or the contexts? \
Wording does not matter; facts do.

Question:
{question}

Reference answer:
{reference}

Contexts the answer was given:
{contexts}

Answer to grade:
{answer}"""

_SYSTEM = (
    "You are a strict, fair grader. Reply with one JSON object and nothing else: "
    '{{"score": <an integer from {low} to {high}, {high} best>, "reason": "<one sentence>"}}'
)
_PLACEHOLDER = re.compile(r"\{(\w+)\}")
_PLACEHOLDERS = ("question", "answer", "reference", "contexts")


class _Unparsed(ValueError):
    """The judge's reply holds no usable verdict (the message says why)."""


def _scale(scale: Sequence[int]) -> tuple[int, int]:
    values = list(scale) if isinstance(scale, list | tuple) else []
    if len(values) != 2 or any(isinstance(v, bool) or not isinstance(v, int) for v in values):
        raise ValidationError(
            f"scale is two integers [min, max] (e.g. [1, 5]), not {scale!r}", field="scale"
        )
    low, high = values
    if low >= high:
        raise ValidationError(f"scale's min must be below its max, not {scale!r}", field="scale")
    return low, high


def _check_rubric(rubric: str) -> str:
    unknown = sorted(set(_PLACEHOLDER.findall(rubric)) - set(_PLACEHOLDERS))
    if not rubric.strip() or unknown:
        raise ValidationError(
            f"the rubric's placeholders are {', '.join('{' + p + '}' for p in _PLACEHOLDERS)}; "
            + (f"unknown: {', '.join(unknown)}" if unknown else "it is empty"),
            field="rubric",
        )
    return rubric


def _pick_judge(judge: str, env: MetricEnv | None) -> Judge:
    judges = env.judges if env is not None else {}
    if judge not in judges:
        known = ", ".join(sorted(judges)) or "none are configured"
        raise ValidationError(f"unknown judge {judge!r}: the judges are {known}", field="judge")
    return judges[judge]


def _first_object(text: str) -> dict[str, Any] | None:
    """The first JSON object in ``text`` (after any leading text, or inside a fence) that
    has a ``score``; else the first JSON object; else None."""
    decoder = json.JSONDecoder()
    first: dict[str, Any] | None = None
    for brace in re.finditer(r"\{", text):
        try:
            value, _ = decoder.raw_decode(text, brace.start())
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            if "score" in value:
                return value
            first = first or value
    return first


def parse_verdict(text: str, scale: tuple[int, int]) -> int:
    """The score of a judge's reply, or :class:`_Unparsed` saying what is wrong with it."""
    verdict = _first_object(text)
    if verdict is None:
        raise _Unparsed("no JSON object in the reply")
    score = verdict.get("score")
    if isinstance(score, float) and score.is_integer():
        score = int(score)
    if isinstance(score, bool) or not isinstance(score, int):
        raise _Unparsed(f"the verdict has no integer score (score: {score!r})")
    if not scale[0] <= score <= scale[1]:
        raise _Unparsed(f"score {score} is outside the scale {scale[0]}..{scale[1]}")
    return score


class LLMJudge:
    """A judge deployment grades each answer with ``rubric`` on ``scale``; the score is
    normalised to 0..1, or (with ``pass_at``, on the judge's scale) is 1 when it reaches
    ``pass_at`` and 0 below. The rubric may use ``{question}``, ``{answer}``,
    ``{reference}`` and ``{contexts}``; another ``{word}`` is refused (a typo would reach
    the judge unnoticed), other braces (a JSON example) are left as they are."""

    higher_is_better = True
    bounds: tuple[float | None, float | None] = (0.0, 1.0)

    def __init__(
        self,
        *,
        judge: str,
        rubric: str = DEFAULT_RUBRIC,
        scale: Sequence[int] = (1, 5),
        retries: int = 2,
        pass_at: int | float | None = None,
        name: str | None = None,
        env: MetricEnv | None = None,
    ) -> None:
        self.name = "llm_judge" if name is None else check_metric_name(name)
        self.scale = _scale(scale)
        self.rubric = _check_rubric(rubric)
        self.judge = judge
        self._judge = _pick_judge(judge, env)
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ValidationError(f"retries is 0 or more, not {retries!r}", field="retries")
        self.retries = retries
        self.pass_at = _pass_at(pass_at, self.scale)
        self.kind: MetricKind = "continuous" if pass_at is None else "binary"

    def __repr__(self) -> str:
        return f"LLMJudge(name={self.name!r}, judge={self.judge!r}, scale={self.scale})"

    async def score(self, sample: Sample) -> MetricValue:
        problem = unmeasurable(sample, needs_reference=False)
        if problem is not None:
            return MetricValue.unmeasured(problem)
        messages = self.messages(sample)
        last = "the judge was not asked"
        for _ in range(self.retries + 1):
            try:
                reply = await self._judge(messages, self.response_format())
            except Exception as error:  # a judge failure is a reason, never a crash
                last = f"the judge failed: {_describe(error)}"
                continue
            try:
                return self._value(parse_verdict(str(reply), self.scale))
            except _Unparsed as error:
                last = f"the judge's answers did not parse: {error}"
        return MetricValue.unmeasured(last)

    def messages(self, sample: Sample) -> list[dict[str, str]]:
        low, high = self.scale
        return [
            {"role": "system", "content": _SYSTEM.format(low=low, high=high)},
            {"role": "user", "content": self._render(sample)},
        ]

    def response_format(self) -> dict[str, Any]:
        low, high = self.scale
        score = {"type": "integer", "minimum": low, "maximum": high}
        schema = {
            "type": "object",
            "properties": {"score": score, "reason": {"type": "string"}},
            "required": ["score", "reason"],
            "additionalProperties": False,
        }
        return {
            "type": "json_schema",
            "json_schema": {"name": "verdict", "schema": schema, "strict": True},
        }

    def _render(self, sample: Sample) -> str:
        contexts = sample.answer.contexts
        values = {
            "question": sample.row.prompt,
            "answer": sample.answer.output or "(empty)",
            "reference": sample.row.reference or "(none given)",
            "contexts": "\n".join(f"[{i}] {c}" for i, c in enumerate(contexts, 1)) or "(none)",
        }
        return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), self.rubric)

    def _value(self, score: int) -> MetricValue:
        if self.pass_at is not None:
            return MetricValue.of(1.0 if score >= self.pass_at else 0.0)
        low, high = self.scale
        return MetricValue.of((score - low) / (high - low))


def _pass_at(pass_at: int | float | None, scale: tuple[int, int]) -> float | None:
    if pass_at is None:
        return None
    if isinstance(pass_at, bool) or not isinstance(pass_at, int | float):
        raise ValidationError(f"pass_at is a number, not {pass_at!r}", field="pass_at")
    if not (math.isfinite(pass_at) and scale[0] < pass_at <= scale[1]):
        raise ValidationError(
            f"pass_at is a score on the judge's scale, above {scale[0]} and at most "
            f"{scale[1]}, not {pass_at!r}",
            field="pass_at",
        )
    return float(pass_at)


def _describe(error: Exception) -> str:
    text = str(error).strip().splitlines()[0][:300] if str(error).strip() else ""
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
