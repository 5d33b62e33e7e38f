"""The built-in metrics that need no model: text overlap, patterns, JSON, and the answer's
own latency, cost and tokens.

Each is a small class built with keyword-only options (``Cls(**options, env=env)``; these
ignore ``env``) and ``name=`` to use one metric twice in a suite under two names. Common
rules: a failed answer is unmeasured ("the target failed: ..."); a metric that compares
with the reference is unmeasured on a row without one ("row has no reference"; a blank
reference counts as none); an empty output is a valid, low score.

Text normalisation is SQuAD's (lower-case, drop ASCII punctuation and the articles
a/an/the, collapse whitespace). ROUGE-L and BLEU are written here (neither ``rouge_score``
nor ``sacrebleu`` is a dependency); the tests check them against NLTK where it is installed.
"""

from __future__ import annotations

import json
import math
import re
import string
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from eval._types import MetricKind, MetricValue, Sample
from genai.errors import MissingDependencyError, ValidationError
from genai.validation import check_metric_name

if TYPE_CHECKING:
    from eval._metric import MetricEnv

__all__ = [
    "Bleu",
    "Contains",
    "Cost",
    "ExactMatch",
    "JsonSchema",
    "JsonValid",
    "Latency",
    "Regex",
    "RougeL",
    "TextMetric",
    "TokenF1",
    "Tokens",
    "normalize_text",
    "unmeasurable",
]

NO_REFERENCE = "row has no reference"


def unmeasurable(sample: Sample, *, needs_reference: bool) -> str | None:
    """Why ``sample`` cannot be scored (a failed answer, a missing reference), or None."""
    if sample.answer.error is not None:
        return f"the target failed: {sample.answer.error}"
    if needs_reference and not (sample.row.reference or "").strip():
        return NO_REFERENCE
    return None


class TextMetric:
    """The shared shape of the built-ins: ``name``, ``kind``, ``higher_is_better``, and
    :meth:`score` = the common checks, then :meth:`measure`."""

    default_name: ClassVar[str]
    kind: MetricKind = "continuous"
    higher_is_better: bool = True
    bounds: tuple[float | None, float | None] = (0.0, 1.0)  # the values a score can take
    needs_reference: bool = True

    def __init__(self, *, name: str | None = None, env: MetricEnv | None = None) -> None:
        self.name = self.default_name if name is None else check_metric_name(name)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"

    async def score(self, sample: Sample) -> MetricValue:
        problem = unmeasurable(sample, needs_reference=self.needs_reference)
        if problem is not None:
            return MetricValue.unmeasured(problem)
        return self.measure(sample.answer.output, sample.row.reference or "", sample)

    def measure(self, output: str, reference: str, sample: Sample) -> MetricValue:
        raise NotImplementedError


# ------------------------------------------------------------------ overlap


_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)
_WORDS = re.compile(r"\w+")
_BLEU_TOKENS = re.compile(r"\w+|[^\w\s]")


def normalize_text(text: str) -> str:
    """SQuAD's answer normalisation: lower-case, no punctuation, no articles, single spaces."""
    text = text.lower().translate(_PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def _binary(passed: bool) -> MetricValue:
    return MetricValue.of(1.0 if passed else 0.0)


class ExactMatch(TextMetric):
    """1 when the output equals the reference: after SQuAD normalisation, or (with
    ``normalize=False``) after stripping surrounding whitespace only."""

    default_name = "exact_match"
    kind: MetricKind = "binary"

    def __init__(
        self, *, normalize: bool = True, name: str | None = None, env: MetricEnv | None = None
    ) -> None:
        super().__init__(name=name, env=env)
        self.normalize = normalize

    def measure(self, output: str, reference: str, sample: Sample) -> MetricValue:
        if self.normalize:
            return _binary(normalize_text(output) == normalize_text(reference))
        return _binary(output.strip() == reference.strip())


def token_f1(output: str, reference: str) -> float:
    """SQuAD's token F1 of normalised tokens (1.0 when both have none, else 0.0 if one)."""
    predicted, gold = normalize_text(output).split(), normalize_text(reference).split()
    if not predicted or not gold:
        return float(predicted == gold)
    common = sum((Counter(predicted) & Counter(gold)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(gold)
    return 2 * precision * recall / (precision + recall)


class TokenF1(TextMetric):
    """SQuAD token F1 between the output and the reference."""

    default_name = "token_f1"

    def measure(self, output: str, reference: str, sample: Sample) -> MetricValue:
        return MetricValue.of(token_f1(output, reference))


def _lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """The longest common subsequence's length, bit-parallel (Hyyrö 2004): one row of the
    dynamic programme is the bits of an integer, updated with a few big-integer operations
    per token of ``a`` instead of a Python loop over ``b``."""
    if len(a) < len(b):
        a, b = b, a
    masks: dict[str, int] = {}
    for j, token in enumerate(b):
        masks[token] = masks.get(token, 0) | (1 << j)
    full = (1 << len(b)) - 1
    row = full
    for token in a:
        matched = row & masks.get(token, 0)
        row = ((row + matched) | (row - matched)) & full
    return len(b) - row.bit_count()


def rouge_l(output: str, reference: str) -> float:
    """ROUGE-L F1 (as ``rouge_score`` computes it): the longest common subsequence of
    lower-cased word tokens, as precision over the output and recall over the reference."""
    predicted, gold = _WORDS.findall(output.lower()), _WORDS.findall(reference.lower())
    lcs = _lcs_length(predicted, gold) if predicted and gold else 0
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(predicted), lcs / len(gold)
    return 2 * precision * recall / (precision + recall)


class RougeL(TextMetric):
    """ROUGE-L F-measure between the output and the reference (hand-written, no stemmer)."""

    default_name = "rouge_l"

    def measure(self, output: str, reference: str, sample: Sample) -> MetricValue:
        return MetricValue.of(rouge_l(output, reference))


def _ngrams(tokens: Sequence[str], n: int) -> Counter[tuple[str, ...]]:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def bleu(output: str, reference: str, *, max_order: int = 4, lowercase: bool = False) -> float:
    """Sentence BLEU, hand-written: clipped n-gram precisions up to ``max_order``, add-one
    smoothing for n > 1 (Lin & Och's BLEU+1, NLTK's ``method2``), the brevity penalty, and
    sacrebleu's effective order (orders the output is too short to have are left out, so a
    one-word exact answer scores 1). Tokens are words and punctuation marks."""
    if lowercase:
        output, reference = output.lower(), reference.lower()
    hypothesis, gold = _BLEU_TOKENS.findall(output), _BLEU_TOKENS.findall(reference)
    order = min(max_order, len(hypothesis))
    if order == 0:
        return 0.0
    log_sum = 0.0
    for n in range(1, order + 1):
        candidates, references = _ngrams(hypothesis, n), _ngrams(gold, n)
        matches = sum((candidates & references).values())
        total = sum(candidates.values())
        if n == 1 and matches == 0:
            return 0.0
        smoothing = 0 if n == 1 else 1
        log_sum += math.log((matches + smoothing) / (total + smoothing))
    penalty = 1.0 if len(hypothesis) > len(gold) else math.exp(1 - len(gold) / len(hypothesis))
    return penalty * math.exp(log_sum / order)


class Bleu(TextMetric):
    """Sentence BLEU of the output against the reference (hand-written, see :func:`bleu`:
    up to 4-grams, BLEU+1 smoothing, brevity penalty); ``lowercase`` ignores case."""

    default_name = "bleu"

    def __init__(
        self, *, lowercase: bool = False, name: str | None = None, env: MetricEnv | None = None
    ) -> None:
        super().__init__(name=name, env=env)
        self.lowercase = lowercase

    def measure(self, output: str, reference: str, sample: Sample) -> MetricValue:
        return MetricValue.of(bleu(output, reference, lowercase=self.lowercase))


# ------------------------------------------------------------------ patterns


_FLAGS = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL, "x": re.VERBOSE, "a": re.ASCII}


def _compile(pattern: str, flags: str) -> re.Pattern[str]:
    bits = 0
    for letter in flags:
        if letter not in _FLAGS:
            raise ValidationError(
                f"unknown regex flag {letter!r} in {flags!r}: use letters of "
                f"{''.join(_FLAGS)!r} (i: ignore case, m: multiline, s: dot matches newline, "
                "x: verbose, a: ASCII)",
                field="flags",
            )
        bits |= _FLAGS[letter]
    try:
        return re.compile(pattern, bits)
    except re.error as error:
        raise ValidationError(
            f"invalid regular expression {pattern!r}: {error}", field="pattern"
        ) from None


class Regex(TextMetric):
    """1 when ``pattern`` is found anywhere in the output (``re.search``; anchor it with
    ``^``/``$`` or ``\\A``/``\\Z`` to match the whole); ``flags`` are letters of "imsxa"."""

    default_name = "regex"
    kind: MetricKind = "binary"
    needs_reference = False

    def __init__(
        self,
        *,
        pattern: str,
        flags: str = "",
        name: str | None = None,
        env: MetricEnv | None = None,
    ) -> None:
        super().__init__(name=name, env=env)
        self.pattern = _compile(pattern, flags)

    def measure(self, output: str, reference: str, sample: Sample) -> MetricValue:
        return _binary(self.pattern.search(output) is not None)


class Contains(TextMetric):
    """1 when the output contains ``text`` (or, without ``text``, the row's reference);
    ``ignore_case`` compares case-insensitively (Unicode case folding)."""

    default_name = "contains"
    kind: MetricKind = "binary"

    def __init__(
        self,
        *,
        text: str | None = None,
        ignore_case: bool = False,
        name: str | None = None,
        env: MetricEnv | None = None,
    ) -> None:
        super().__init__(name=name, env=env)
        if text is not None and not text:
            raise ValidationError(
                "contains needs a non-empty text (or no text: the row's reference)", field="text"
            )
        self.text = text
        self.ignore_case = ignore_case
        self.needs_reference = text is None

    def measure(self, output: str, reference: str, sample: Sample) -> MetricValue:
        needle = reference if self.text is None else self.text
        if self.ignore_case:
            return _binary(needle.casefold() in output.casefold())
        return _binary(needle in output)


# ------------------------------------------------------------------ JSON


_FENCE = re.compile(r"\A```[ \t]*(?:json)?[ \t]*\n(.*?)\n?```\Z", re.DOTALL | re.IGNORECASE)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_json(output: str, *, allow_fence: bool = True) -> Any:
    """The JSON value ``output`` holds, or ValueError. Surrounding whitespace is allowed,
    and (``allow_fence``) one Markdown code fence around the whole output (```` ```json ````
    or plain ```` ``` ````); text before or after the value is not. NaN and Infinity are
    refused (they are not JSON)."""
    text = output.strip()
    fenced = _FENCE.match(text) if allow_fence else None
    if fenced is not None:
        text = fenced.group(1).strip()
    return json.loads(text, parse_constant=_refuse_constant)


class JsonValid(TextMetric):
    """1 when the output is one JSON value (any type), optionally in a code fence."""

    default_name = "json_valid"
    kind: MetricKind = "binary"
    needs_reference = False

    def __init__(
        self, *, allow_fence: bool = True, name: str | None = None, env: MetricEnv | None = None
    ) -> None:
        super().__init__(name=name, env=env)
        self.allow_fence = allow_fence

    def measure(self, output: str, reference: str, sample: Sample) -> MetricValue:
        try:
            parse_json(output, allow_fence=self.allow_fence)
        except ValueError:
            return _binary(False)
        return _binary(True)


def _validator(schema: Any) -> Any:
    try:
        import jsonschema
    except ImportError:
        raise MissingDependencyError(
            "jsonschema", extra="eval", purpose="the json_schema metric"
        ) from None
    if not isinstance(schema, dict):
        raise ValidationError(
            f"json_schema needs a schema that is a JSON object, not {type(schema).__name__}",
            field="schema",
        )
    cls = jsonschema.validators.validator_for(schema)
    try:
        cls.check_schema(schema)
    except jsonschema.SchemaError as error:
        where = "/".join(str(p) for p in error.absolute_path) or "(the root)"
        raise ValidationError(
            f"invalid JSON schema at {where}: {error.message}", field="schema"
        ) from None
    return cls(schema)


class JsonSchema(TextMetric):
    """1 when the output is JSON (as :class:`JsonValid` reads it) valid against ``schema``
    (checked with ``jsonschema``, in the dialect its ``$schema`` names; 2020-12 without)."""

    default_name = "json_schema"
    kind: MetricKind = "binary"
    needs_reference = False

    def __init__(
        self,
        *,
        schema: dict[str, Any],
        allow_fence: bool = True,
        name: str | None = None,
        env: MetricEnv | None = None,
    ) -> None:
        super().__init__(name=name, env=env)
        self._validator = _validator(schema)
        self.allow_fence = allow_fence

    def measure(self, output: str, reference: str, sample: Sample) -> MetricValue:
        try:
            value = parse_json(output, allow_fence=self.allow_fence)
        except ValueError:
            return _binary(False)
        return _binary(bool(self._validator.is_valid(value)))


# ------------------------------------------------------------------ the answer's costs


class Latency(TextMetric):
    """The answer's latency in milliseconds (lower is better); unmeasured when unknown or
    when the answer came from the eval's own cache (its latency is not the target's)."""

    default_name = "latency"
    higher_is_better = False
    bounds = (0.0, None)
    needs_reference = False

    def measure(self, output: str, reference: str, sample: Sample) -> MetricValue:
        if sample.answer.cached:
            return MetricValue.unmeasured("the answer came from the eval's cache")
        if sample.answer.latency_ms is None:
            return MetricValue.unmeasured("the answer's latency is unknown")
        return MetricValue.of(sample.answer.latency_ms)


class Cost(TextMetric):
    """The answer's cost in US dollars (lower is better); unmeasured when unknown."""

    default_name = "cost"
    higher_is_better = False
    bounds = (0.0, None)
    needs_reference = False

    def measure(self, output: str, reference: str, sample: Sample) -> MetricValue:
        if sample.answer.cost_usd is None:
            return MetricValue.unmeasured("the answer's cost is unknown")
        return MetricValue.of(sample.answer.cost_usd)


class Tokens(TextMetric):
    """The answer's completion tokens (lower is better)."""

    default_name = "tokens"
    higher_is_better = False
    bounds = (0.0, None)
    needs_reference = False

    def measure(self, output: str, reference: str, sample: Sample) -> MetricValue:
        return MetricValue.of(float(sample.answer.completion_tokens))
