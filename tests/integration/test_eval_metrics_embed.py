"""The embedding metrics with the real bundled all-MiniLM-L6-v2 (offline): a paraphrase
scores above an unrelated sentence, and a citation that supports its sentence counts where
one that does not, does not."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from eval._metric import METRICS, Metric, MetricEnv
from eval._types import Answer, Citation, EvalRow, Message, MetricValue, Sample

EIFFEL = "The Eiffel Tower was completed in 1889 for the World's Fair in Paris."
REFUNDS = "Refunds are processed within 14 days of the request."


def sample(output: str, reference: str | None = None, **answer: Any) -> Sample:
    row = EvalRow(
        index=0,
        id="r0",
        messages=(Message(role="user", content="What is the capital of France?"),),
        reference=reference,
    )
    return Sample(row=row, answer=Answer(output=output, **answer))


def measured(metric: Metric, item: Sample) -> float:
    value = asyncio.run(metric.score(item))
    assert value.value is not None, value.reason
    return value.value


@pytest.fixture
def env(embedder: Any) -> MetricEnv:
    return MetricEnv(embedder=lambda: embedder)


def test_a_paraphrase_is_closer_than_an_unrelated_sentence(env: MetricEnv) -> None:
    similarity = METRICS.create("embedding_similarity", env=env)
    reference = "The capital of France is Paris."
    paraphrase = measured(similarity, sample("Paris is the French capital city.", reference))
    unrelated = measured(similarity, sample("I had pasta for lunch yesterday.", reference))
    assert paraphrase > 0.8 > 0.3 > unrelated
    assert measured(similarity, sample(reference, reference)) == pytest.approx(1.0, abs=1e-5)
    assert measured(similarity, sample("", reference)) == 0.0


def test_without_an_embedder_the_bundled_model_is_used() -> None:
    similarity = METRICS.create("embedding_similarity", env=MetricEnv())
    same = "Refunds take two weeks."
    assert measured(similarity, sample(same, same)) == pytest.approx(1.0, abs=1e-5)


def _bot(output: str, *chunks: str) -> Sample:
    citations = tuple(Citation(number=n, text=t) for n, t in enumerate(chunks, 1))
    return sample(output, citations=citations, contexts=chunks)


def test_a_supporting_citation_counts_and_an_unrelated_one_does_not(env: MetricEnv) -> None:
    support = METRICS.create("citation_support", env=env)
    supported = _bot("The Eiffel Tower opened in 1889 [1].", EIFFEL)
    assert measured(support, supported) == 1.0
    unsupported = _bot("The Eiffel Tower opened in 1889 [1].", REFUNDS)
    assert measured(support, unsupported) == 0.0
    answer = "The Eiffel Tower opened in 1889. [1] You get your money back in 2 weeks [2]."
    both = _bot(answer, EIFFEL, "Bananas are rich in potassium.")
    assert measured(support, both) == 0.5


def test_citation_support_edges(env: MetricEnv) -> None:
    support = METRICS.create("citation_support", env=env)
    strict = METRICS.create("citation_support", env=env, threshold=0.99)
    item = _bot("The Eiffel Tower opened in 1889 [1].", EIFFEL)
    assert measured(strict, item) == 0.0
    no_marks = sample("It opened in 1889.", contexts=(EIFFEL,))
    assert measured(support, no_marks) == 0.0
    plain = asyncio.run(support.score(sample("Paris.")))
    assert plain == MetricValue.unmeasured("the answer has no citations")
