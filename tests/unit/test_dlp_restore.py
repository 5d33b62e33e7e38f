"""Restoring pseudonyms: whole texts, streams split anywhere, tool-call JSON, and the small
changes models make to a token."""

from __future__ import annotations

import json
import random

import pytest

from genai.dlp import Restorer, RestoringFilter, restore_response

MAPPING = {
    "EMAIL_ADDRESS_1": "alice@example.com",
    "EMAIL_ADDRESS_2": "bob@example.org",
    "CREDIT_CARD_1": "4111 1111 1111 1111",
    "PERSON_1": 'Seán "Ace" O\'Brien \\ Jr.',  # quotes and a backslash: JSON needs escapes
    "US_SSN_1": "078-05-1120",
    "PHONE_NUMBER_12": "+44 20 7946 0958",
}
R = Restorer(MAPPING)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mail <EMAIL_ADDRESS_1> now", "mail alice@example.com now"),
        ("<EMAIL_ADDRESS_1><EMAIL_ADDRESS_2>", "alice@example.combob@example.org"),
        ("lower <email_address_1>.", "lower alice@example.com."),
        ("spaced < EMAIL_ADDRESS_1 >!", "spaced alice@example.com!"),
        ("words <Email Address 1>", "words alice@example.com"),
        ("hyphens <EMAIL-ADDRESS-1>", "hyphens alice@example.com"),
        ("glued <EMAIL_ADDRESS1>", "glued alice@example.com"),
        ("square [EMAIL_ADDRESS_1]", "square alice@example.com"),
        ("curly {EMAIL_ADDRESS_1}", "curly alice@example.com"),
        ("guillemets «EMAIL_ADDRESS_1»", "guillemets alice@example.com"),
        ("html &lt;EMAIL_ADDRESS_1&gt;", "html alice@example.com"),
        ("markdown \\<EMAIL\\_ADDRESS\\_1\\>", "markdown alice@example.com"),
        ("bare EMAIL_ADDRESS_1, ok", "bare alice@example.com, ok"),
        ("bare lower email_address_1.", "bare lower alice@example.com."),
        ("(EMAIL_ADDRESS_1)", "(alice@example.com)"),
        ("**<EMAIL_ADDRESS_1>**", "**alice@example.com**"),
        ("no close <EMAIL_ADDRESS_1 and on", "no close alice@example.com and on"),
        ("at end <EMAIL_ADDRESS_1", "at end alice@example.com"),
        ("two digits <PHONE_NUMBER_12>", "two digits +44 20 7946 0958"),
        ("ssn <US_SSN_1>", "ssn 078-05-1120"),
    ],
)
def test_restore_tolerates_what_models_do_to_a_token(text: str, expected: str) -> None:
    assert R.text(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "<EMAIL_ADDRESS_3> is not in the session",
        "<EMAIL_ADDRESS> is a redaction, not a pseudonym",
        "<EMAIL_ADDRESS:3f9a2b1c4d5e6f70> is a hash",
        "<PHONE_NUMBER_1> and <PHONE_NUMBER_123> are other numbers",
        "xEMAIL_ADDRESS_1 and EMAIL_ADDRESS_1x are other words",
        "EMAIL_ADDRESS_10 is another token",
        "person 1 and email address 1 in prose stay prose",
        "<b>bold</b> & <i>a < b</i> {json} [link]",
        "",
    ],
)
def test_restore_leaves_everything_else_alone(text: str) -> None:
    assert R.text(text) == text


def test_an_empty_session_restores_nothing_and_holds_nothing_back() -> None:
    empty = RestoringFilter(Restorer({}))
    assert empty.feed("<EMAIL_ADDRESS_1") == "<EMAIL_ADDRESS_1"
    assert empty.flush() == ""


# --------------------------------------------------------------------------- streams

STREAMED = (
    "Dear <PERSON_1>, we wrote to <EMAIL_ADDRESS_1> and [email address 2]; the card "
    "<CREDIT_CARD_1> was declined. Call PHONE_NUMBER_12 or see US_SSN_1. "
    "<EMAIL_ADDRESS_1"
)


def _expected_spans(restored: str) -> list[tuple[int, int]]:
    spans = []
    for value in MAPPING.values():
        start = restored.find(value)
        while start >= 0:
            spans.append((start, start + len(value)))
            start = restored.find(value, start + 1)
    return spans


def _run(pieces: list[str], *, json_mode: bool = False) -> tuple[str, list[str]]:
    """Feed ``pieces``; what came out, and the output after each feed (cumulative)."""
    stream = RestoringFilter(R) if not json_mode else RestoringFilter(R).tool_arguments(0)
    out, sent = [], []
    for piece in pieces:
        out.append(stream.feed(piece))
        sent.append("".join(out))
    out.append(stream.flush())
    assert stream.pending == ""
    return "".join(out), sent


def _check_never_half(sent: list[str], restored: str) -> None:
    spans = _expected_spans(restored)
    for text in sent:
        # nothing wrong was ever sent: each moment's output is a prefix of the answer ...
        assert restored.startswith(text), text
        # ... and it never ends inside a restored value (no half-restored value)
        assert not any(start < len(text) < end for start, end in spans), text


def test_a_stream_split_at_every_character_boundary_restores_whole() -> None:
    restored = R.text(STREAMED)
    assert "<" not in restored and "_" not in restored
    for cut in range(len(STREAMED) + 1):
        text, sent = _run([STREAMED[:cut], STREAMED[cut:]])
        assert text == restored, cut
        _check_never_half(sent, restored)


def test_a_stream_of_single_characters_restores_whole() -> None:
    restored = R.text(STREAMED)
    text, sent = _run(list(STREAMED))
    assert text == restored
    _check_never_half(sent, restored)


def test_random_chunkings_restore_whole() -> None:
    rng = random.Random(7)
    restored = R.text(STREAMED)
    for _ in range(300):
        cuts = sorted(rng.sample(range(1, len(STREAMED)), rng.randint(1, 25)))
        pieces = [STREAMED[a:b] for a, b in zip([0, *cuts], [*cuts, len(STREAMED)], strict=True)]
        text, sent = _run(pieces)
        assert text == restored
        _check_never_half(sent, restored)


def test_a_token_split_across_three_chunks() -> None:
    stream = RestoringFilter(R)
    assert stream.feed("Write to <EMAIL_") == "Write to "
    assert stream.feed("ADDRE") == ""
    assert stream.feed("SS_1> today") == "alice@example.com today"
    assert stream.flush() == ""


def test_text_is_released_as_soon_as_it_cannot_be_a_token() -> None:
    stream = RestoringFilter(R)
    assert stream.feed("Hello there, ") == "Hello there, "
    assert stream.feed("a < b") == "a < b"  # "< b": b starts no token of this session
    assert stream.feed(" and <") == " and "
    assert stream.feed("p") == ""  # <p... could be <PERSON_1>
    assert stream.feed("re>") == "<pre>"
    assert stream.flush() == ""


def test_a_complete_bare_token_waits_for_the_next_character() -> None:
    stream = RestoringFilter(R)
    assert stream.feed("see PHONE_NUMBER_1") == "see "  # PHONE_NUMBER_12 may follow
    assert stream.feed("2") == ""
    assert stream.feed(".") == "+44 20 7946 0958."


def test_what_is_held_back_stays_short() -> None:
    stream = RestoringFilter(R)
    for word in ["<" + "EMAIL " * 3, "x" * 500, " <" + " " * 200]:
        stream.feed(word)
        assert len(stream.pending) <= max(map(len, MAPPING)) + 10
    stream.flush()


def test_the_end_of_the_stream_releases_the_rest() -> None:
    stream = RestoringFilter(R)
    assert stream.feed("ends with <EMAIL_ADDRESS_2") == "ends with "
    assert stream.flush() == "bob@example.org"
    stream = RestoringFilter(R)
    assert stream.feed("ends with <EMA") == "ends with "
    assert stream.flush() == "<EMA"


# --------------------------------------------------------------------------- tool calls

ARGUMENTS = json.dumps(
    {
        "to": "<EMAIL_ADDRESS_1>",
        "cc": ["[EMAIL_ADDRESS_2]", "EMAIL_ADDRESS_1"],
        "name": "<PERSON_1>",
        "note": "card <CREDIT_CARD_1>, line\nbreak \u003cEMAIL_ADDRESS_2\u003e",
        "<PERSON_1>": 1,
    }
)
ESCAPED = ARGUMENTS.replace("<", "\\u003c").replace(">", "\\u003e")  # Go-style encoders
WANTED = {
    "to": "alice@example.com",
    "cc": ["bob@example.org", "alice@example.com"],
    "name": MAPPING["PERSON_1"],
    "note": "card 4111 1111 1111 1111, line\nbreak bob@example.org",
    MAPPING["PERSON_1"]: 1,
}


@pytest.mark.parametrize("arguments", [ARGUMENTS, ESCAPED], ids=["plain", "u003c"])
def test_tool_call_arguments_restore_to_valid_json(arguments: str) -> None:
    assert json.loads(R.json(arguments)) == WANTED


@pytest.mark.parametrize("arguments", [ARGUMENTS, ESCAPED], ids=["plain", "u003c"])
def test_streamed_tool_call_arguments_split_everywhere(arguments: str) -> None:
    for cut in range(len(arguments) + 1):
        text, _ = _run([arguments[:cut], arguments[cut:]], json_mode=True)
        assert json.loads(text) == WANTED, cut
    text, _ = _run(list(arguments), json_mode=True)
    assert json.loads(text) == WANTED


def test_each_tool_call_has_its_own_filter() -> None:
    stream = RestoringFilter(R)
    first, second = stream.tool_arguments(0), stream.tool_arguments(1)
    assert stream.tool_arguments(0) is first
    assert first.feed('{"a": "<EMAIL_') == '{"a": "'
    person = json.dumps(MAPPING["PERSON_1"], ensure_ascii=False)[1:-1]
    assert second.feed('{"b": "<PERSON_1>"}') == '{"b": "' + person + '"}'
    assert first.feed('ADDRESS_1>"}') == 'alice@example.com"}'
    assert first.flush() == ""


# --------------------------------------------------------------------------- whole answers


def test_a_whole_chat_answer_is_restored_in_content_and_tool_calls() -> None:
    response = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "Sent to <EMAIL_ADDRESS_1>.",
                    "tool_calls": [
                        {
                            "id": "call_0",
                            "type": "function",
                            "function": {"name": "send", "arguments": ARGUMENTS},
                        }
                    ],
                },
                "finish_reason": "tool_calls",
            },
            {
                "index": 1,
                "message": {
                    "role": "assistant",
                    "content": [{"type": "text", "text": "<PERSON_1>"}],
                },
            },
        ],
    }
    original = json.dumps(response)
    restored = restore_response(response, R)
    assert json.dumps(response) == original  # the input is not changed
    first = restored["choices"][0]["message"]
    assert first["content"] == "Sent to alice@example.com."
    assert json.loads(first["tool_calls"][0]["function"]["arguments"]) == WANTED
    assert restored["choices"][1]["message"]["content"][0]["text"] == MAPPING["PERSON_1"]


def test_a_whole_completion_is_restored() -> None:
    response = {"object": "text_completion", "choices": [{"index": 0, "text": "<US_SSN_1>"}]}
    assert restore_response(response, R)["choices"][0]["text"] == "078-05-1120"


def test_a_restorer_never_shows_its_values() -> None:
    assert "alice" not in repr(R) and "alice" not in repr(RestoringFilter(R))
