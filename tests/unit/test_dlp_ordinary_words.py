"""Ordinary words are not personal data under the default policy (the demo project's too),
and real personal data still is: the real Detector (Presidio, the bundled NER) and Dlp.

The PII-free sample comes from ../shared/data/cache/gptcache_mock_data.json (technical
questions and answers, read in place, not copied); the test is skipped without it. The
benchmark `bench/dlp_quality.py` measures the whole corpus.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("presidio_analyzer")
pytest.importorskip("spacy")

from genai.dlp import Dlp, DlpKeys, Policy

#: 200 texts spread over the PII-free corpus (GPTCache's benchmark questions; its README)
SAMPLE_FILE = Path(__file__).resolve().parents[1] / "data" / "dlp" / "pii_free_sample.json"
#: The demo project's policy (``genai up`` sets ``Policy()``, see apps/cli/_up.py).
DEFAULT = Policy()


@pytest.fixture(scope="module")
def dlp() -> Dlp:
    dlp = Dlp(keys=DlpKeys(b"a test key that is long enough!!"))
    dlp.warm(DEFAULT)
    return dlp


def changed(dlp: Dlp, texts: list[str], policy: Policy = DEFAULT) -> list[list[str]]:
    """For each text, the values the policy would act on."""
    plans = dlp.plan(texts, policy)
    return [[t[p.start : p.end] for p in spans] for t, spans in zip(texts, plans, strict=True)]


ORDINARY = [
    # arithmetic
    "2 plus 9",
    "What is 2 plus 9?",
    "Subtract 4 from 9",
    "Is 3 greater than 7?",
    "what is 12 times 7",
    "What is 15 divided by 3?",
    "Multiply 6 by 8, then add 5 and 7.",
    "is 40 less than 41",
    # weather (tool results and questions)
    "sunny",
    "cloudy, 18 degrees",
    "Sunny, 24 degrees, light wind",
    "rainy",
    "overcast with showers later",
    '{"forecast": "sunny", "high": 21}',
    # single common nouns, capitalised or not
    "apple",
    "Table",
    "Question",
    "invoice",
    "Tutorials",
    "Weather",
    "Storage",
    # technical text
    "Set `streaming=True` in load_dataset() to avoid downloading everything.",
    "Use Dataset.map() to tokenize the column names in batches.",
    "Albumentations, imgaug and Kornia augment images; Dask runs it in parallel.",
    "Store the shards in Google Cloud Storage and process them with Apache Beam.",
]


@pytest.mark.parametrize("text", ORDINARY)
def test_ordinary_words_are_not_changed(dlp: Dlp, text: str) -> None:
    assert changed(dlp, [text]) == [[]]
    assert dlp.anonymize([text], DEFAULT).texts == [text]


def test_a_chat_with_a_tool_result_goes_out_unchanged(dlp: Dlp) -> None:
    texts = ["What is the weather in town today, and what is 2 plus 9?", "sunny", "11"]
    result = dlp.anonymize(texts, DEFAULT, session="s1")
    assert result.texts == texts and not result.mapping


@pytest.mark.parametrize(
    ("text", "entity", "value"),
    [
        ("Write to olga.brandt@example.org today", "EMAIL_ADDRESS", "olga.brandt@example.org"),
        ("Call me on +44 20 7946 0958 after lunch", "PHONE_NUMBER", "+44 20 7946 0958"),
        ("The office line is (212) 555-0147.", "PHONE_NUMBER", "(212) 555-0147"),
        ("My card 4111 1111 1111 1111 was declined", "CREDIT_CARD", "4111 1111 1111 1111"),
        ("My name is John Smith", "PERSON", "John Smith"),
        ("Hi, I'm Margarethe Olsson and I need help.", "PERSON", "Margarethe Olsson"),
        ("my name is john smith", "PERSON", "john smith"),
        ("Send it to 221 Elm Street, Springfield, IL 62704", "STREET_ADDRESS", "221 Elm Street"),
        ("I moved to Rotterdam last year.", "LOCATION", "Rotterdam"),
    ],
)
def test_personal_data_is_still_caught(dlp: Dlp, text: str, entity: str, value: str) -> None:
    spans = dlp.plan([text], DEFAULT)[0]
    found = {(p.entity_type, text[p.start : p.end]) for p in spans}
    assert any(e == entity and value in v for e, v in found), found
    assert value not in dlp.anonymize([text], DEFAULT).texts[0]


@pytest.fixture(scope="module")
def corpus_sample(dlp: Dlp) -> list[tuple[str, list[str]]]:
    """200 texts spread over the PII-free corpus, and what the default policy changes."""
    sample = json.loads(SAMPLE_FILE.read_text(encoding="utf-8"))
    assert len(sample) == 200
    return [(t, v) for t, v in zip(sample, changed(dlp, sample), strict=True) if v]


def test_a_pii_free_corpus_sample_is_almost_left_alone(
    corpus_sample: list[tuple[str, list[str]]],
) -> None:
    # Measured: 1 of these 200 ("Dataset Card Creation Guide"); 0.75% of the whole corpus
    # (README, DLP). Before the technical vocabulary: 6 (3.45%); before the
    # shape-and-context rules: 61%.
    assert len(corpus_sample) <= 8, corpus_sample


def test_a_pii_free_corpus_sample_is_left_alone(corpus_sample: list[tuple[str, list[str]]]) -> None:
    assert len(corpus_sample) <= 2, corpus_sample  # at most 1%
