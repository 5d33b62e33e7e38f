"""The verifier's other spellings of one name (abbreviations, versions, adjectives, dotted
parts) and of absence ("without X", "non-X", "with no X"), and words that negate nothing
("or not", an answer's "No,"): accepted as the same question, while a changed
polarity, an antonym, another number or another name is still turned away. No embedder."""

from __future__ import annotations

import pytest

from cache import LexicalVerifier

VERIFIER = LexicalVerifier()


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("What is new in v2.10.0?", "What is new in version 2.10.0?"),
        ("Which changes came with ver 3.1?", "Which changes came with version 3.1?"),
        ("How do I parse JSON in JS?", "How do I parse JSON in JavaScript?"),
        ("Which TV should I buy?", "Which television should I buy?"),
        ("What did US officials say?", "What did United States officials say?"),
        ("What did U.S. officials say?", "What did United States officials say?"),
        (
            "Which firms joined, IBM too?",
            "Which firms joined, International Business Machines, too?",
        ),
        ("Did Syria sign the treaty?", "Did the Syrian government sign the treaty?"),
        ("How do I use the non-streaming API?", "How do I use the API without streaming?"),
        ("Is there a nonbinding list?", "Is there a non-binding list?"),
        ("Can I pay with no card?", "Can I pay without a card?"),
        (
            "Can I work on it without needing to download it?",
            "Can I work on it without downloading it?",
        ),
        # "or not", "not only" and an answer's "No," negate nothing
        ("Is the reply cached or not?", "Is the reply cached?"),
        ("Does it cover not only cards but also loans?", "Does it cover cards and loans too?"),
        ("No, the API is free for students.", "The API is free for students."),
        # a dotted name is its parts
        ("What does datasets.Audio decode?", "What does the Audio feature of datasets decode?"),
    ],
)
def test_other_spellings_of_one_thing_are_accepted(a: str, b: str) -> None:
    assert VERIFIER.reject(a, b) is None
    assert VERIFIER.reject(b, a) is None


@pytest.mark.parametrize(
    ("a", "b", "reason"),
    [
        ("How do I open an account?", "How do I close an account?", "antonym"),
        ("How do I open an account?", "How do I not open an account?", "negation"),
        ("How do I use the non-streaming API?", "How do I use the streaming API?", "negation"),
        ("Can I travel without a pet?", "Can I travel with a pet?", "negation"),
        ("Can I travel with no pet?", "Can I travel with a pet?", "negation"),
        ("Can I deploy it without Docker?", "Can I deploy it on Docker?", "negation"),
        ("No fees apply to transfers.", "Fees apply to transfers.", "negation"),
        ("What does datasets.Audio decode?", "What does datasets.Image decode?", "names"),
        ("What is new in v2.10.0?", "What is new in version 2.9.0?", "numbers"),
        ("What is new in v2.10.0?", "What is new in v2.10.1?", "numbers"),
        ("How do I parse JSON in Java?", "How do I parse JSON in JavaScript?", "names"),
        ("How do I parse it in JS?", "How do I parse it in JSON?", "names"),
        ("What is AI used for here?", "What is Airflow used for here?", "names"),
        ("Does the A100 support FP8?", "Does the H100 support FP8?", "names"),
        ("Are flights to Austria cheap?", "Are flights to Australia cheap?", "names"),
        ("Is the Paris office open?", "Is the London office open?", "names"),
    ],
)
def test_what_asks_something_else_is_still_rejected(a: str, b: str, reason: str) -> None:
    assert VERIFIER.reject(a, b) == reason
    assert VERIFIER.reject(b, a) == reason


def test_a_short_form_needs_the_long_form_in_the_other_text() -> None:
    """An acronym no word of the other text spells stays a name the other lacks."""
    assert VERIFIER.reject("Which TV should I buy?", "Which tablet should I buy?") == "names"
    assert VERIFIER.reject("Is v2 stable?", "Is the second release stable?") is not None
