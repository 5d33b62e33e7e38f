"""The PII Detector with its real parts: Presidio, the bundled NER, our patterns.

One Detector per module (loading Presidio and the model is the slow part). The sentences
here are written for these tests; none comes from the benchmark data set.
"""

from __future__ import annotations

import itertools
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("presidio_analyzer")
pytest.importorskip("spacy")

from genai.dlp import Detector, Finding
from genai.errors import ConfigError, ValidationError


@pytest.fixture(scope="module")
def detector() -> Detector:
    detector = Detector()
    detector.warm()
    return detector


def found(detector: Detector, text: str, **kwargs: object) -> set[tuple[str, str]]:
    return {(f.entity_type, text[f.start : f.end]) for f in detector.analyze(text, **kwargs)}  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "entity", "value"),
    [
        ("write to olga.brandt@example.org today", "EMAIL_ADDRESS", "olga.brandt@example.org"),
        ("card 4111 1111 1111 1111 was declined", "CREDIT_CARD", "4111 1111 1111 1111"),
        ("pay to DE89370400440532013000 please", "IBAN_CODE", "DE89370400440532013000"),
        ("call me on +44 20 7946 0958 after lunch", "PHONE_NUMBER", "+44 20 7946 0958"),
        ("the office line is (212) 555-0147", "PHONE_NUMBER", "(212) 555-0147"),
        ("requests came from 192.168.14.7 overnight", "IP_ADDRESS", "192.168.14.7"),
        ("my social security number is 536-22-8191", "US_SSN", "536-22-8191"),
        ("see https://docs.example.com/setup for steps", "URL", "https://docs.example.com/setup"),
    ],
)
def test_patterns(detector: Detector, text: str, entity: str, value: str) -> None:
    assert (entity, value) in found(detector, text)


def test_card_needs_a_valid_luhn_checksum(detector: Detector) -> None:
    assert ("CREDIT_CARD", "4111 1111 1111 1111") in found(detector, "card 4111 1111 1111 1111")
    bad = "card 4111 1111 1111 1112"
    assert not any(entity == "CREDIT_CARD" for entity, _ in found(detector, bad))


def test_a_card_number_is_not_also_a_phone_number(detector: Detector) -> None:
    text = "charge 5500 0000 0000 0004 now"
    assert found(detector, text) == {("CREDIT_CARD", "5500 0000 0000 0004")}


def test_an_address_does_not_swallow_the_phone_number_below_it(detector: Detector) -> None:
    text = "Send it to 221 Elm Street, Springfield, IL 62704\n(217) 555-0199 (mobile)"
    result = found(detector, text)
    assert ("PHONE_NUMBER", "(217) 555-0199") in result
    addresses = [value for entity, value in result if entity == "STREET_ADDRESS"]
    assert addresses and all("555" not in value for value in addresses)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Yesterday Margarethe Olsson flew from Lisbon to a workshop.",
            [("PERSON", "Margarethe Olsson"), ("LOCATION", "Lisbon")],
        ),
        (
            "Our new supplier, Nordvik Logistics, has a depot in Rotterdam.",
            [("ORGANIZATION", "Nordvik Logistics"), ("LOCATION", "Rotterdam")],
        ),
        (
            "Hi, this is Kwame Mensah from Brightwave Analytics, calling about your order.",
            [("PERSON", "Kwame Mensah"), ("ORGANIZATION", "Brightwave Analytics")],
        ),
    ],
)
def test_ner_finds_people_places_and_organisations(
    detector: Detector, text: str, expected: list[tuple[str, str]]
) -> None:
    """Each value is covered by a finding of its type (the benchmark's overlap rule)."""
    findings = detector.analyze(text)
    for entity, value in expected:
        start = text.index(value)
        end = start + len(value)
        assert any(f.entity_type == entity and f.start < end and start < f.end for f in findings), (
            entity,
            value,
            findings,
        )


def test_plain_numbers_and_amounts_are_not_people(detector: Detector) -> None:
    for text in (
        "I paid 45000 for 3 items, order 77812345, total $1,299.99.",
        "Invoice 2024-118 is 3 weeks overdue; 12 of 40 units shipped.",
        "Room 4, floor 12, 15 minutes late.",
    ):
        types = {f.entity_type for f in detector.analyze(text)}
        assert not types & {"PERSON", "LOCATION", "ORGANIZATION", "NRP", "TITLE"}, text


def test_question_and_greeting_words_are_not_people(detector: Detector) -> None:
    """The bundled model tagged the "How" of "How do I open an account?" as a PERSON (a
    capitalised first word): a span of English function words only is never a name, while
    a name next to them still is."""
    for text in (
        "How do I open an account?",
        "What is the fee if I miss a payment?",
        "Please, can you reset my password?",
        "Hi there, where is my card?",
    ):
        types = {f.entity_type for f in detector.analyze(text)}
        assert not types & {"PERSON", "LOCATION", "ORGANIZATION", "NRP", "TITLE"}, text
    found = detector.analyze("Hi, I am John Smith from Paris.")
    assert {("PERSON", "John Smith"), ("LOCATION", "Paris")} <= {
        (f.entity_type, "Hi, I am John Smith from Paris."[f.start : f.end]) for f in found
    }


def test_findings_are_sorted_and_do_not_overlap(detector: Detector) -> None:
    text = (
        "Hi, I'm Lena Fischer (lena.fischer@example.de), living at 12 Harbour Road, "
        "Bristol BS1 4DJ; my card is 4111111111111111 and my phone +49 30 901820."
    )
    findings = detector.analyze(text)
    assert findings and all(isinstance(f, Finding) for f in findings)
    assert [f.start for f in findings] == sorted(f.start for f in findings)
    assert all(a.end <= b.start for a, b in itertools.pairwise(findings))
    assert all(0.0 < f.score <= 1.0 and f.recognizer for f in findings)


def test_entities_and_threshold_filter(detector: Detector) -> None:
    text = "Mail Jonas Berg at jonas@example.com"
    assert {f.entity_type for f in detector.analyze(text, entities=["EMAIL_ADDRESS"])} == {
        "EMAIL_ADDRESS"
    }
    assert detector.analyze(text, threshold=1.0) == [
        f for f in detector.analyze(text) if f.score >= 1.0
    ]
    with pytest.raises(ValidationError, match="NOT_A_TYPE"):
        detector.analyze(text, entities=["NOT_A_TYPE"])
    with pytest.raises(ValidationError):
        detector.analyze(text, threshold=2)


def test_extra_recognizers_are_used() -> None:
    from presidio_analyzer import Pattern, PatternRecognizer

    employee_id = PatternRecognizer(
        supported_entity="EMPLOYEE_ID", patterns=[Pattern("emp", r"\bEMP-\d{6}\b", 0.9)]
    )
    detector = Detector(ner="none", extra_recognizers=[employee_id])
    assert "EMPLOYEE_ID" in detector.supported_entities
    assert found(detector, "badge EMP-123456 expired") == {("EMPLOYEE_ID", "EMP-123456")}


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    yield


def test_no_network_access(no_network: None) -> None:
    detector = Detector()  # a fresh one: loading must stay offline too
    text = "Contact anna.kowalska@firma.pl or visit https://firma.pl, Anna Kowalska"
    assert ("EMAIL_ADDRESS", "anna.kowalska@firma.pl") in found(detector, text)


def test_batch_equals_single(detector: Detector) -> None:
    texts = [
        "Send it to Piotr Nowak in Krakow.",
        "",
        "Card 4111111111111111, IBAN GB82WEST12345698765432.",
        "nothing to see here",
        "Dr. Amara Okafor joined Helix Biotech in 2019.",
    ]
    assert detector.analyze_batch(texts) == [detector.analyze(t) for t in texts]


def test_construction_is_cheap_and_checks_the_ner_path(tmp_path: Path) -> None:
    detector = Detector()
    assert detector._engine is None  # nothing loaded yet
    assert {"PERSON", "LOCATION", "ORGANIZATION", "STREET_ADDRESS"} <= detector.supported_entities
    with pytest.raises(ConfigError, match="does not exist"):
        Detector(ner="/nonexistent/model")
    with pytest.raises(ConfigError, match="neither"):
        Detector(ner=str(tmp_path))


def test_a_spacy_pipeline_directory_replaces_the_bundled_model() -> None:
    from genai.dlp._ner import MODEL_DIR

    detector = Detector(ner=str(MODEL_DIR))
    text = "Ask Ingrid Halvorsen about it."
    assert ("PERSON", "Ingrid Halvorsen") in found(detector, text)


def test_a_missing_extra_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    from genai.errors import MissingDependencyError

    real = importlib.util.find_spec

    def without_presidio(name: str, *args: object) -> object:
        return None if name == "presidio_analyzer" else real(name, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(importlib.util, "find_spec", without_presidio)
    with pytest.raises(MissingDependencyError, match=r"pip install 'genai-platform\[dlp\]'"):
        Detector()


def test_a_hugging_face_token_classification_directory_is_used(tmp_path: Path) -> None:
    """A tiny random BERT saved locally: loaded offline, its labels mapped to Presidio's."""
    transformers = pytest.importorskip("transformers")
    torch = pytest.importorskip("torch")

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "anna", "berg", "lives", "in", "oslo"]
    (tmp_path / "vocab.txt").write_text("\n".join(words) + "\n")
    labels = {0: "O", 1: "B-PER", 2: "I-PER", 3: "B-LOC"}
    config = transformers.BertConfig(
        vocab_size=len(words),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        id2label=labels,
        label2id={v: k for k, v in labels.items()},
    )
    torch.manual_seed(0)
    transformers.BertForTokenClassification(config).save_pretrained(tmp_path)
    transformers.BertTokenizerFast(vocab_file=str(tmp_path / "vocab.txt")).save_pretrained(tmp_path)

    detector = Detector(ner=str(tmp_path))
    assert {"PERSON", "LOCATION"} <= detector.supported_entities
    assert "STREET_ADDRESS" not in detector.supported_entities
    text = "Anna Berg lives in Oslo, anna@example.com"
    assert ("EMAIL_ADDRESS", "anna@example.com") in found(detector, text)
