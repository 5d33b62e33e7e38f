"""Which recorded shadow pairs ``eval.shadow`` can judge, and the questions it reads from
the request the gateway kept (``prompt_text``)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from eval._shadow import LOGGING_OFF, NO_QUESTION, SHADOW_FAILED, _pairs, messages_of
from genai.tenancy import ShadowRow


def _row(request_id: str, **values: Any) -> ShadowRow:
    fields: dict[str, Any] = {
        "request_id": request_id,
        "deployment": "chat",
        "ts": datetime(2026, 12, 7, tzinfo=UTC),
        "primary_target": "primary",
        "shadow_target": "candidate",
        "status": "ok",
        "similarity": 0.5,
        "prompt_text": json.dumps({"messages": [{"role": "user", "content": "hi?"}]}),
        "primary_text": "hello",
        "shadow_text": "hey",
        "shadow_tokens": 5,
        "shadow_cost_usd": 0.0,
        "shadow_latency_ms": 1.0,
    }
    return ShadowRow(**(fields | values))


@pytest.mark.parametrize(
    ("kept", "expected"),
    [
        ({"messages": [{"role": "user", "content": "hi?"}]}, [("user", "hi?")]),
        (
            {
                "messages": [
                    {"role": "system", "content": "be brief"},
                    {"role": "user", "content": [{"type": "text", "text": "a"}, "b"]},
                    {"role": "tool", "content": "42", "tool_call_id": "x"},
                    {"role": "assistant", "content": None},
                ]
            },
            [("system", "be brief"), ("user", "a\nb")],
        ),
        ({"prompt": "Write to <EMAIL_ADDRESS_1>"}, [("user", "Write to <EMAIL_ADDRESS_1>")]),
        ({"input": ["embed me"]}, []),
        ([], []),
    ],
)
def test_the_question_is_read_from_the_kept_request(kept: Any, expected: list[Any]) -> None:
    got = messages_of(json.dumps(kept))
    assert [(m["role"], m["content"]) for m in got] == expected


def test_unreadable_or_empty_requests_have_no_messages() -> None:
    assert messages_of("") == [] and messages_of("{not json") == []


def test_pairs_without_texts_or_answers_are_skipped_with_their_reason() -> None:
    recorded = [
        _row("a"),
        _row("b", prompt_text="", primary_text="", shadow_text=""),
        _row("c", status="error: upstream 500", primary_text="", shadow_text=""),
        _row("d", prompt_text=json.dumps({"input": "x"})),
        _row("e", shadow_text=""),  # an empty shadow answer is an answer
    ]
    pairs, skipped = _pairs(recorded)
    assert [p.row["id"] for p in pairs] == ["a", "e"]
    assert pairs[0].row == {
        "id": "a",
        "messages": [{"role": "user", "content": "hi?"}],
        "reference": "hello",
        "primary_target": "primary",
        "shadow_target": "candidate",
    }
    assert skipped == {LOGGING_OFF: 1, SHADOW_FAILED: 1, NO_QUESTION: 1}
