"""The sentence splitter and the ``<context>`` parser of the ``extractive`` backend."""

from __future__ import annotations

import pytest

from genai.models._extractive import parse_context, split_sentences


@pytest.mark.parametrize(
    ("text", "sentences"),
    [
        ("One. Two! Three? Four", ["One.", "Two!", "Three?", "Four"]),
        ("Use a tool, e.g. a hammer. Then stop.", ["Use a tool, e.g. a hammer.", "Then stop."]),
        ("Pick one, i.e. The First one. Done.", ["Pick one, i.e. The First one.", "Done."]),
        (
            "Pi is 3.14 roughly. The fee is $2.50 a month.",
            ["Pi is 3.14 roughly.", "The fee is $2.50 a month."],
        ),
        (
            "Version 2.0.1 is out. See example.com/docs for more.",
            ["Version 2.0.1 is out.", "See example.com/docs for more."],
        ),
        (
            "Dr. Smith met J. R. Tolkien. Mr. Brown left.",
            ["Dr. Smith met J. R. Tolkien.", "Mr. Brown left."],
        ),
        (
            "Open from 9 a.m. to 5 p.m. Central European Time. Closed on Sundays.",
            ["Open from 9 a.m. to 5 p.m. Central European Time.", "Closed on Sundays."],
        ),
        (
            "Offices in the U.S. and the U.K. are open. Others are not.",
            ["Offices in the U.S. and the U.K. are open.", "Others are not."],
        ),
        (
            "See Fig. 3 and No. 5 for details. Smith et al. agree.",
            ["See Fig. 3 and No. 5 for details.", "Smith et al. agree."],
        ),
        (
            "Steps: 1. Open the app. 2. Tap Settings.",
            ["Steps: 1. Open the app.", "2. Tap Settings."],
        ),
        ('He said "Go." Then he left.', ['He said "Go."', "Then he left."]),
        ("Fees apply (see the table.) Next, pay.", ["Fees apply (see the table.)", "Next, pay."]),
        ("Wait... then go. Really?! Yes.", ["Wait... then go.", "Really?!", "Yes."]),
        ("It works. 42 tests pass.", ["It works.", "42 tests pass."]),
        ("lower case. continues the sentence.", ["lower case. continues the sentence."]),
        ("Unicode works… Ça va. Ünïcödé too.", ["Unicode works…", "Ça va.", "Ünïcödé too."]),
        ("No final punctuation", ["No final punctuation"]),
        ("", []),
        ("  \n\n  ", []),
    ],
)
def test_splits_sentences(text: str, sentences: list[str]) -> None:
    assert split_sentences(text) == sentences


def test_lines_paragraphs_lists_and_headings_left_out() -> None:
    text = (
        "# Opening an account\n"
        "Accounts are opened in the app\n"
        "under Settings > Accounts.\n"
        "\n"
        "You need:\n"
        "- a valid ID document\n"
        "* a phone number. It must be yours.\n"
        "1. Open the app\n"
        "2) Tap Add account\n"
        "   and confirm.\n"
        "Paragraph one\n\nParagraph two"
    )
    assert split_sentences(text) == [  # the heading ends a sentence, and is no answer itself
        "Accounts are opened in the app under Settings > Accounts.",
        "You need:",
        "a valid ID document",
        "a phone number.",
        "It must be yours.",
        "Open the app",
        "Tap Add account and confirm.",  # a wrapped list item continues
        "Paragraph one",
        "Paragraph two",
    ]


def test_whitespace_is_collapsed() -> None:
    assert split_sentences("  Many\t spaces   here.\r\n  And\tthere.  ") == [
        "Many spaces here.",
        "And there.",
    ]


def test_parses_context_blocks() -> None:
    text = (
        "Answer from the context.\n<context>\n[doc-1] First passage\ncontinues here.\n"
        "[policy 7] Second passage.\n</context>\nQuestion: what?"
    )
    passages, rest = parse_context(text)
    assert [(p.id, p.text) for p in passages] == [
        ("doc-1", "First passage\ncontinues here."),
        ("policy 7", "Second passage."),
    ]
    assert rest == "Answer from the context.\n\nQuestion: what?"


def test_parses_several_blocks_in_any_case_and_unlabelled_paragraphs() -> None:
    passages, rest = parse_context(
        "<CONTEXT>[a] one</CONTEXT> middle <context>\npara one\n\npara two\n</context>"
    )
    assert [(p.id, p.text) for p in passages] == [
        ("a", "one"),
        ("1", "para one"),
        ("2", "para two"),
    ]
    assert rest == "middle"


def test_text_without_a_block_has_no_passages() -> None:
    assert parse_context("[doc-1] not in a block") == ([], "[doc-1] not in a block")
    assert parse_context("<context>[x] unclosed") == ([], "<context>[x] unclosed")


@pytest.mark.parametrize(
    "text",
    [
        "." * 200_000,
        " " * 200_000,
        "\n" * 200_000,
        "e.g. " * 40_000,
        "? " * 100_000,
        "1. " * 60_000,
        "<context>" * 20_000,
        "<context>[a] x</context>" * 10_000,
    ],
)
@pytest.mark.timeout(120)
def test_hostile_input_takes_linear_time(text: str) -> None:
    # ~0.4 s on a quiet 2-core machine; a quadratic scan of 200k characters takes many
    # minutes. Nothing is timed here: a quadratic scan would outlast the test's timeout
    # (a hang guard far above any busy machine's linear time); speed belongs in bench/.
    assert isinstance(split_sentences(text), list)
    parse_context(text)
