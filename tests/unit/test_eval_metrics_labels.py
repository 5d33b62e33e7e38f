"""``label_match``: the first label an output names, against the reference label."""

from __future__ import annotations

import asyncio

import pytest

from eval import METRICS, Answer, EvalRow, Message, MetricEnv, MetricValue, Sample
from genai.errors import ValidationError

LABELS = ["yes", "no", "maybe"]


def _score(output: str, reference: str | None, **options: object) -> MetricValue:
    metric = METRICS.create("label_match", env=MetricEnv(), labels=LABELS, **options)
    row = EvalRow(
        index=0, id="r", messages=(Message(role="user", content="q"),), reference=reference
    )
    return asyncio.run(metric.score(Sample(row=row, answer=Answer(output=output))))


@pytest.mark.parametrize(
    ("output", "reference", "expected"),
    [
        ("Yes. The trial showed a benefit.", "yes", 1.0),
        ("No, not in this cohort (maybe later).", "no", 1.0),  # the first label counts
        ("Maybe: the evidence is mixed; no firm answer.", "no", 0.0),
        ("The answer is yes", "YES", 1.0),  # any case
        ("Nobody knows; yesterday it rained.", "no", 0.0),  # whole words only: none named
        ("", "maybe", 0.0),
    ],
)
def test_the_first_label_named_is_compared(output: str, reference: str, expected: float) -> None:
    assert _score(output, reference).value == expected


def test_a_reference_outside_the_labels_or_missing_is_unmeasured() -> None:
    assert (
        _score("yes", "perhaps").reason
        == "the reference 'perhaps' is not one of the labels yes, no, maybe"
    )
    assert _score("yes", None).reason == "row has no reference"


@pytest.mark.parametrize("labels", [[], "yes", ["yes", ""], [3]])
def test_bad_labels_are_refused_with_the_fix(labels: object) -> None:
    with pytest.raises(ValidationError, match=r"labels is a list of label words"):
        METRICS.create("label_match", env=MetricEnv(), labels=labels)


def test_labels_yaml_read_as_booleans_are_refused_with_the_fix() -> None:
    with pytest.raises(ValidationError, match="quote them in YAML"):
        METRICS.create("label_match", env=MetricEnv(), labels=[True, False, "maybe"])
