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


# ------------------------------------------------------------------ order and roles


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Is 3 greater than 7?", "Is 7 greater than 3?"),
        ("Is three greater than seven?", "Is 7 greater than 3?"),
        ("Is 1 greater than 3?", "Is 3 greater than 1?"),
        ("Subtract 4 from 9", "Subtract 9 from 4"),
        ("Subtract 4 from 9", "From 4 subtract 9"),  # in place, roles exchanged
        ("How many days are there from 4 to 9?", "How many days are there from 9 to 4?"),
        ("convert 5 USD to EUR", "convert 5 EUR to USD"),
        ("Convert 5 USD to EUR", "Convert 5 EUR into USD"),
        ("Alice pays Bob", "Bob pays Alice"),
        ("Does Alice pay Bob?", "Does Bob pay Alice?"),  # Title Case: capitals in both
        ("Transfer 5 from Alice to Bob", "Transfer 5 to Alice from Bob"),
        (
            "How long is the flight from Paris to London?",
            "How long is the flight from London to Paris?",
        ),
        ("Is Paris bigger than London?", "Is London bigger than Paris?"),
        ("What is 7 minus 3?", "What is 3 minus 7?"),
    ],
)
def test_the_same_operands_in_other_roles_are_rejected(a: str, b: str) -> None:
    """Every word, number and name in common, and an embedding similarity of 0.98 to 0.999
    with all-MiniLM-L6-v2: only the order and the role words tell them apart."""
    assert VERIFIER.reject(a, b) == "order"
    assert VERIFIER.reject(b, a) == "order"


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("What is 7 plus 3?", "what's 7 + 3"),
        ("Is 3 greater than 7?", "is 3 > 7"),
        ("Convert 5 USD to EUR", "Please convert 5 USD into EUR"),  # "to", "into": one role
        ("Convert 5 USD to EUR", "Convert USD 5 to EUR"),  # one amount, side by side
        ("How much is 5 USD in EUR?", "Convert 5 USD to EUR"),
        ("Subtract 4 from 9", "From 9, subtract 4"),  # moved, with its role word
        ("How many people lived in Paris in 2020?", "In 2020, how many people lived in Paris?"),
        ("Book a flight from Paris to London", "Book a flight to London from Paris"),
        ("What did Alice tell Bob?", "What did Alice say to Bob?"),
        (
            "Druce will face murder charges, Conte said.",
            "Conte said Druce will face murder charges.",
        ),
    ],
)
def test_operands_that_keep_their_roles_are_accepted(a: str, b: str) -> None:
    assert VERIFIER.reject(a, b) is None
    assert VERIFIER.reject(b, a) is None


def test_the_order_rule_can_be_switched_off() -> None:
    lenient = LexicalVerifier(order=False)
    assert lenient.reject("Is 3 greater than 7?", "Is 7 greater than 3?") is None
