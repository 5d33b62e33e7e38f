"""The built-in eval metrics: known values (SQuAD F1, ROUGE-L, BLEU by hand, and against
NLTK where installed), unmeasured reasons, bad options, the registry, and the LLM judge
against a scripted judge callable (the protocol boundary: a judge deployment)."""

from __future__ import annotations

import asyncio
import math
import random
import re
from typing import Any

import pytest

from eval._metric import METRICS, Metric, MetricEnv
from eval._metrics_model import citing_sentences, parse_verdict
from eval._metrics_text import bleu, normalize_text, rouge_l, token_f1
from eval._types import Answer, Citation, EvalRow, Message, MetricValue, Sample
from genai.errors import UnknownBackendError, ValidationError
from genai.testing import FakeEmbedder

BUILTINS: dict[str, dict[str, Any]] = {
    "exact_match": {},
    "token_f1": {},
    "rouge_l": {},
    "bleu": {},
    "regex": {"pattern": "yes"},
    "contains": {"text": "yes"},
    "json_valid": {},
    "json_schema": {"schema": {"type": "object"}},
    "latency": {},
    "cost": {},
    "tokens": {},
    "embedding_similarity": {},
    "citation_support": {},
    "llm_judge": {"judge": "grader"},
}


def sample(output: str = "", reference: str | None = None, **answer: Any) -> Sample:
    row = EvalRow(
        index=0,
        id="r0",
        messages=(Message(role="user", content="What is the capital of France?"),),
        question="What is the capital of France?",
        reference=reference,
    )
    return Sample(row=row, answer=Answer(output=output, **answer))


def score(metric: Metric, item: Sample) -> MetricValue:
    return asyncio.run(metric.score(item))


def metric(registered: str, env: MetricEnv | None = None, /, **options: Any) -> Metric:
    return METRICS.create(registered, env=env or MetricEnv(), **options)


async def _never(messages: list[dict[str, str]], response_format: dict[str, Any] | None) -> str:
    raise AssertionError("not called")


# ------------------------------------------------------------------ known values


def test_normalisation_is_squads() -> None:
    assert normalize_text("  The  Eiffel-Tower, in PARIS!  ") == "eiffeltower in paris"
    assert normalize_text("an apple a day") == "apple day"


@pytest.mark.parametrize(
    ("output", "reference", "expected"),
    [
        ("the cat sat on the mat", "a cat sat on a mat", 1.0),  # articles dropped
        ("cat sat", "cat sat on mat", 2 / 3),  # P 1, R 1/2
        ("Hello, world!", "hello world", 1.0),
        ("cat cat cat", "cat", 0.5),  # P 1/3, R 1
        ("dog", "cat", 0.0),
        ("", "cat", 0.0),
        ("the", "a", 1.0),  # both normalise to nothing: SQuAD scores equality
    ],
)
def test_token_f1(output: str, reference: str, expected: float) -> None:
    assert token_f1(output, reference) == pytest.approx(expected)
    assert score(metric("token_f1"), sample(output, reference)).value == pytest.approx(expected)


@pytest.mark.parametrize(
    ("output", "reference", "expected"),
    [
        ("the cat sat on the mat", "the cat on the mat", 10 / 11),  # LCS 5: P 5/6, R 1
        ("a b c d", "a c e", 4 / 7),  # LCS 2: P 1/2, R 2/3
        ("The Cat.", "the cat", 1.0),
        ("x y", "a b", 0.0),
        ("", "a b", 0.0),
    ],
)
def test_rouge_l(output: str, reference: str, expected: float) -> None:
    assert rouge_l(output, reference) == pytest.approx(expected)
    assert score(metric("rouge_l"), sample(output, reference)).value == pytest.approx(expected)


def test_the_bit_parallel_lcs_agrees_with_the_dynamic_programme() -> None:
    from eval._metrics_text import _lcs_length

    def table(a: list[str], b: list[str]) -> int:
        previous = [0] * (len(b) + 1)
        for token in a:
            current = [0]
            for j, other in enumerate(b):
                current.append(
                    previous[j] + 1 if token == other else max(previous[j + 1], current[j])
                )
            previous = current
        return previous[-1]

    rng = random.Random(7)
    for _ in range(2000):
        words = ["a", "b", "c", "d"][: rng.randint(1, 4)]
        a = [rng.choice(words) for _ in range(rng.randint(0, 25))]
        b = [rng.choice(words) for _ in range(rng.randint(0, 25))]
        assert _lcs_length(a, b) == table(a, b), (a, b)


@pytest.mark.parametrize(
    ("output", "reference", "expected"),
    [
        ("the cat sat on the mat", "the cat sat on the mat", 1.0),
        # p1 5/6, p2 (3+1)/(5+1), p3 (2+1)/(4+1), p4 (1+1)/(3+1): product 1/6
        ("the cat sat on a mat", "the cat sat on the mat", (1 / 6) ** 0.25),
        # effective order 2, p1 = p2 = 1, brevity penalty exp(1 - 6/2)
        ("the cat", "the cat sat on the mat", math.exp(-2)),
        ("Paris", "Paris", 1.0),  # a one-word exact answer: effective order 1
        ("London", "Paris", 0.0),  # no unigram in common
        ("", "Paris", 0.0),
    ],
)
def test_bleu_by_hand(output: str, reference: str, expected: float) -> None:
    assert bleu(output, reference) == pytest.approx(expected)
    assert score(metric("bleu"), sample(output, reference)).value == pytest.approx(expected)


PAIRS = [
    ("the cat sat on the mat today", "the cat is sitting on the mat"),
    ("a quick brown fox jumps over the dog", "the quick brown fox jumped over the lazy dog"),
    ("Paris is the capital of France .", "The capital of France is Paris."),
    ("it is raining heavily in the north of the country", "heavy rain falls in the north"),
]


@pytest.mark.parametrize(("output", "reference"), PAIRS)
def test_bleu_agrees_with_nltk(output: str, reference: str) -> None:
    nltk_bleu = pytest.importorskip("nltk.translate.bleu_score")
    tokens = re.compile(r"\w+|[^\w\s]")
    expected = nltk_bleu.sentence_bleu(
        [tokens.findall(reference)],
        tokens.findall(output),
        smoothing_function=nltk_bleu.SmoothingFunction().method2,
    )
    assert bleu(output, reference) == pytest.approx(expected)


def test_bleu_lowercase_option() -> None:
    item = sample("THE CAT", "the cat")
    assert score(metric("bleu"), item).value == 0.0
    assert score(metric("bleu", lowercase=True), item).value == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("options", "output", "reference", "expected"),
    [
        ({}, "The Eiffel Tower!", "eiffel tower", 1.0),
        ({}, "Eiffel Tower in Paris", "eiffel tower", 0.0),
        ({"normalize": False}, " Paris \n", "Paris", 1.0),
        ({"normalize": False}, "paris", "Paris", 0.0),
        ({}, "", "Paris", 0.0),
    ],
)
def test_exact_match(options: dict[str, Any], output: str, reference: str, expected: float) -> None:
    value = score(metric("exact_match", **options), sample(output, reference))
    assert value.value == expected


@pytest.mark.parametrize(
    ("name", "options", "output", "expected"),
    [
        ("regex", {"pattern": r"^yes\b"}, "yes, it is", 1.0),
        ("regex", {"pattern": r"^yes\b"}, "Yes, it is", 0.0),
        ("regex", {"pattern": r"^yes\b", "flags": "i"}, "Yes, it is", 1.0),
        ("regex", {"pattern": r"^no$", "flags": "im"}, "well\nNO\n", 1.0),
        ("regex", {"pattern": "x"}, "", 0.0),
        ("contains", {"text": "Paris"}, "It is Paris.", 1.0),
        ("contains", {"text": "Paris"}, "it is paris.", 0.0),
        ("contains", {"text": "PARIS", "ignore_case": True}, "it is paris.", 1.0),
        ("json_valid", {}, '{"a": 1}', 1.0),
        ("json_valid", {}, "  [1, 2]\n", 1.0),
        ("json_valid", {}, '```json\n{"a": 1}\n```', 1.0),
        ("json_valid", {}, '```\n{"a": 1}\n```', 1.0),
        ("json_valid", {"allow_fence": False}, '```json\n{"a": 1}\n```', 0.0),
        ("json_valid", {}, 'Here it is: {"a": 1}', 0.0),
        ("json_valid", {}, '{"a": NaN}', 0.0),
        ("json_valid", {}, "{'a': 1}", 0.0),
        ("json_valid", {}, "", 0.0),
        ("json_schema", {"schema": {"type": "object", "required": ["a"]}}, '{"a": 1}', 1.0),
        ("json_schema", {"schema": {"type": "object", "required": ["a"]}}, '{"b": 1}', 0.0),
        ("json_schema", {"schema": {"type": "object"}}, '```json\n{"a": 1}\n```', 1.0),
        ("json_schema", {"schema": {"type": "object"}}, "not json", 0.0),
    ],
)
def test_pattern_and_json_metrics(
    name: str, options: dict[str, Any], output: str, expected: float
) -> None:
    assert score(metric(name, **options), sample(output)).value == expected


def test_contains_uses_the_reference_without_text() -> None:
    contains = metric("contains", ignore_case=True)
    assert score(contains, sample("I think PARIS.", "Paris")).value == 1.0
    assert score(contains, sample("I think Lyon.", "Paris")).value == 0.0
    assert score(contains, sample("Paris")).reason == "row has no reference"
    assert score(metric("contains", text="Paris"), sample("Paris")).value == 1.0


@pytest.mark.parametrize(
    ("name", "answer", "expected"),
    [
        ("latency", {"latency_ms": 120.5}, 120.5),
        ("cost", {"cost_usd": 0.002}, 0.002),
        ("tokens", {"completion_tokens": 17}, 17.0),
        ("tokens", {}, 0.0),
    ],
)
def test_cost_metrics(name: str, answer: dict[str, Any], expected: float) -> None:
    built = metric(name)
    assert built.kind == "continuous" and built.higher_is_better is False
    assert score(built, sample("x", **answer)).value == pytest.approx(expected)


@pytest.mark.parametrize(
    ("name", "answer", "reason"),
    [
        ("latency", {}, "the answer's latency is unknown"),
        ("latency", {"latency_ms": 5.0, "cached": True}, "the answer came from the eval's cache"),
        ("cost", {}, "the answer's cost is unknown"),
    ],
)
def test_cost_metrics_unmeasured(name: str, answer: dict[str, Any], reason: str) -> None:
    assert score(metric(name), sample("x", **answer)) == MetricValue.unmeasured(reason)


# ------------------------------------------------------------------ common rules


def _judge_env() -> MetricEnv:
    return MetricEnv(embedder=lambda: FakeEmbedder(words=True), judges={"grader": _never})


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_a_failed_answer_is_unmeasured(name: str) -> None:
    built = metric(name, _judge_env(), **BUILTINS[name])
    failed = sample("", "Paris", error="upstream timed out", latency_ms=3.0, cost_usd=0.1)
    assert score(built, failed) == MetricValue.unmeasured("the target failed: upstream timed out")


NEEDS_REFERENCE = ["exact_match", "token_f1", "rouge_l", "bleu", "contains", "embedding_similarity"]


@pytest.mark.parametrize("name", NEEDS_REFERENCE)
@pytest.mark.parametrize("reference", [None, "  "])
def test_a_row_without_reference_is_unmeasured(name: str, reference: str | None) -> None:
    built = metric(name, _judge_env())
    assert score(built, sample("Paris", reference)).reason == "row has no reference"


@pytest.mark.parametrize("name", sorted(set(BUILTINS) - {"llm_judge", "citation_support"}))
@pytest.mark.parametrize("output", ["", "Paris", "{}", "\x00 \u2028 ]]["])
def test_values_are_finite_or_unmeasured(name: str, output: str) -> None:
    built = metric(name, _judge_env(), **BUILTINS[name])
    value = score(built, sample(output, "Paris", latency_ms=1.0, cost_usd=0.0))
    assert value.measured, value.reason  # an empty output is a low score, not unmeasured
    assert value.value is not None and math.isfinite(value.value)
    if built.kind == "binary":
        assert value.value in (0.0, 1.0)


# ------------------------------------------------------------------ options and registry


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_the_registry_builds_every_builtin(name: str) -> None:
    built = metric(name, _judge_env(), **BUILTINS[name])
    assert isinstance(built, Metric)
    assert built.name == name
    assert built.kind in ("binary", "continuous")
    renamed = metric(name, _judge_env(), name=f"{name}/2", **BUILTINS[name])
    assert renamed.name == f"{name}/2"


def test_an_unknown_metric_lists_the_known_ones() -> None:
    with pytest.raises(UnknownBackendError) as caught:
        metric("exakt_match")
    assert "exakt_match" in str(caught.value)
    for known in ("exact_match", "rouge_l", "llm_judge"):
        assert known in str(caught.value)


@pytest.mark.parametrize(
    ("name", "options", "field", "words"),
    [
        ("regex", {"pattern": "(unclosed"}, "pattern", ["(unclosed", "invalid regular"]),
        ("regex", {"pattern": "x", "flags": "iq"}, "flags", ["'q'", "imsxa"]),
        ("contains", {"text": ""}, "text", ["non-empty"]),
        ("json_schema", {"schema": {"type": "objekt"}}, "schema", ["objekt", "type"]),
        ("json_schema", {"schema": {"required": "a"}}, "schema", ["required"]),
        ("json_schema", {"schema": ["type"]}, "schema", ["JSON object", "list"]),
        ("exact_match", {"name": "bad name!"}, "metrics", ["bad name!"]),
        ("llm_judge", {"judge": "nobody"}, "judge", ["nobody", "grader"]),
        ("llm_judge", {"judge": "grader", "scale": [5, 1]}, "scale", ["[5, 1]"]),
        ("llm_judge", {"judge": "grader", "scale": [1]}, "scale", ["two integers"]),
        ("llm_judge", {"judge": "grader", "retries": -1}, "retries", ["-1"]),
        ("llm_judge", {"judge": "grader", "pass_at": 6}, "pass_at", ["at most 5"]),
        ("llm_judge", {"judge": "grader", "rubric": "Is {answr} right?"}, "rubric", ["answr"]),
        ("llm_judge", {"judge": "grader", "rubric": " "}, "rubric", ["empty"]),
        ("citation_support", {"threshold": 2}, "threshold", ["-1 to 1", "2"]),
        ("citation_support", {"threshold": "high"}, "threshold", ["'high'"]),
    ],
)
def test_bad_options_are_refused(
    name: str, options: dict[str, Any], field: str, words: list[str]
) -> None:
    with pytest.raises(ValidationError) as caught:
        metric(name, _judge_env(), **options)
    assert caught.value.field == field
    for word in words:
        assert word in str(caught.value)


def test_a_judge_without_judges_says_none_are_configured() -> None:
    with pytest.raises(ValidationError, match="none are configured"):
        metric("llm_judge", judge="grader")


def test_an_unknown_option_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        metric("exact_match", normalise=True)


# ------------------------------------------------------------------ citations (fake embedder)


def test_citing_sentences_attach_marks_to_their_sentence() -> None:
    text = "Paris is the capital [1]. It has the Eiffel Tower. [2][3]\nSee also [1]."
    assert citing_sentences(text) == {
        1: ["Paris is the capital.", "See also."],
        2: ["It has the Eiffel Tower."],
        3: ["It has the Eiffel Tower."],
    }
    assert citing_sentences("It opened in 1889. [1] Refunds take 2 weeks [2].") == {
        1: ["It opened in 1889."],
        2: ["Refunds take 2 weeks."],
    }
    assert citing_sentences("[4] A mark first. Then [5]") == {4: ["A mark first."], 5: ["Then"]}
    assert citing_sentences("no marks at all") == {}


def _bot(output: str, *chunks: tuple[int, str], contexts: bool = True) -> Sample:
    citations = tuple(Citation(number=n, text=t) for n, t in chunks)
    texts = tuple(t for _, t in chunks) if contexts else ()
    return sample(output, citations=citations, contexts=texts)


def test_citation_support_counts_supported_citations() -> None:
    built = metric("citation_support", MetricEnv(embedder=lambda: FakeEmbedder(words=True)))
    answer = "paris is the capital of france [1]. bananas grow on trees [2]."
    good, bad = (1, "paris is the capital of france"), (2, "the moon orbits the earth")
    assert score(built, _bot(answer, good)).value == pytest.approx(0.5)  # [2] backs nothing
    assert score(built, _bot(answer, good, bad)).value == pytest.approx(0.5)
    assert score(built, _bot("paris is the capital of france", good)).value == 1.0  # no mark


def test_citation_support_without_citations() -> None:
    built = metric("citation_support", MetricEnv(embedder=lambda: FakeEmbedder(words=True)))
    assert score(built, sample("Paris.", contexts=("Paris is...",))).value == 0.0
    unmeasured = score(built, sample("Paris."))
    assert unmeasured == MetricValue.unmeasured("the answer has no citations")


# ------------------------------------------------------------------ the LLM judge


class ScriptedJudge:
    """A judge deployment that replies from a script (a str, or an exception to raise)."""

    def __init__(self, *replies: str | Exception) -> None:
        self.replies = list(replies)
        self.calls: list[tuple[list[dict[str, str]], dict[str, Any] | None]] = []

    async def __call__(
        self, messages: list[dict[str, str]], response_format: dict[str, Any] | None
    ) -> str:
        self.calls.append((messages, response_format))
        reply = self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]
        if isinstance(reply, Exception):
            raise reply
        return reply


def judged(judge: ScriptedJudge, **options: Any) -> MetricValue:
    built = metric("llm_judge", MetricEnv(judges={"grader": judge}), judge="grader", **options)
    return score(built, sample("It is Paris.", "Paris", contexts=("France's capital: Paris",)))


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ('{"score": 5, "reason": "right"}', 1.0),
        ('{"score": 1, "reason": "wrong"}', 0.0),
        ('{"score": 4.0, "reason": "close"}', 0.75),
        ('```json\n{"score": 3, "reason": "partly"}\n```', 0.5),
        ('Sure! Here is my verdict: {"score": 2, "reason": "mostly wrong"} Hope it helps.', 0.25),
        ('{"reason": "no {braces} here"} then {"score": 4, "reason": "ok"}', 0.75),
    ],
)
def test_the_judge_score_is_normalised(reply: str, expected: float) -> None:
    judge = ScriptedJudge(reply)
    assert judged(judge).value == pytest.approx(expected)
    assert len(judge.calls) == 1


def test_the_judge_is_asked_with_the_schema_and_the_rubric() -> None:
    judge = ScriptedJudge('{"score": 5, "reason": "ok"}')
    judged(judge, rubric="Q: {question} A: {answer} R: {reference} C: {contexts} {x y}")
    messages, response_format = judge.calls[0]
    assert messages[-1] == {
        "role": "user",
        "content": "Q: What is the capital of France? A: It is Paris. R: Paris "
        "C: [1] France's capital: Paris {x y}",
    }
    assert "from 1 to 5" in messages[0]["content"]
    assert response_format is not None and response_format["type"] == "json_schema"
    spec = response_format["json_schema"]
    assert spec["name"] == "verdict" and spec["strict"] is True
    assert spec["schema"]["properties"]["score"] == {"type": "integer", "minimum": 1, "maximum": 5}
    assert spec["schema"]["required"] == ["score", "reason"]


def test_garbage_then_good_is_retried() -> None:
    judge = ScriptedJudge("I think it's fine", '{"score": 4, "reason": "ok"}')
    assert judged(judge).value == pytest.approx(0.75)
    assert len(judge.calls) == 2


def test_always_garbage_is_unmeasured_after_the_retries() -> None:
    judge = ScriptedJudge("no idea")
    value = judged(judge, retries=3)
    assert value == MetricValue.unmeasured(
        "the judge's answers did not parse: no JSON object in the reply"
    )
    assert len(judge.calls) == 4


def test_a_failing_judge_is_unmeasured() -> None:
    judge = ScriptedJudge(RuntimeError("gateway said 503\nmore lines"))
    value = judged(judge)
    assert value == MetricValue.unmeasured("the judge failed: RuntimeError: gateway said 503")
    assert len(judge.calls) == 3


def test_a_judge_exception_then_a_verdict_scores() -> None:
    judge = ScriptedJudge(TimeoutError(), '{"score": 5, "reason": "ok"}')
    assert judged(judge, retries=1).value == 1.0


def test_an_out_of_scale_score_is_retried_then_unmeasured() -> None:
    judge = ScriptedJudge('{"score": 7, "reason": "great"}', '{"score": 9, "reason": "x"}')
    value = judged(judge, retries=1)
    assert value.reason == "the judge's answers did not parse: score 9 is outside the scale 1..5"
    assert len(judge.calls) == 2
    assert judged(ScriptedJudge('{"score": 7}', '{"score": 5}')).value == 1.0


@pytest.mark.parametrize(
    ("reply", "problem"),
    [
        ('{"score": "4"}', "no integer score"),
        ('{"score": true}', "no integer score"),
        ('{"score": 3.5}', "no integer score"),
        ('{"verdict": 3}', "no integer score"),
        ("[3]", "no JSON object"),
        ('{"score": 0}', "outside the scale"),
    ],
)
def test_bad_verdicts(reply: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_verdict(reply, (1, 5))


def test_pass_at_makes_the_judge_binary() -> None:
    env = MetricEnv(judges={"grader": ScriptedJudge('{"score": 4, "reason": "ok"}')})
    built = metric("llm_judge", env, judge="grader", pass_at=4)
    assert built.kind == "binary"
    assert metric("llm_judge", env, judge="grader").kind == "continuous"
    assert judged(ScriptedJudge('{"score": 4}'), pass_at=4).value == 1.0
    assert judged(ScriptedJudge('{"score": 3}'), pass_at=4).value == 0.0
    assert judged(ScriptedJudge('{"score": 7}'), scale=[0, 10], pass_at=7).value == 1.0


def test_another_scale() -> None:
    assert judged(ScriptedJudge('{"score": 3}'), scale=[0, 10]).value == pytest.approx(0.3)
