"""Training rows: formats, the validator's row reports, and golden loss masks — every
assistant token (end-of-turn marker included) is trained and no prompt token is, for every
format and a multi-turn chat with tools; packing keeps rows apart."""

from __future__ import annotations

import json
from typing import Any

import pytest

from finetune import IGNORE, Collator, Encoder, validate_rows
from finetune._data import to_example
from genai.errors import ValidationError


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    from transformers import AutoTokenizer

    from genai.testing import tiny_model

    path = tiny_model(tmp_path_factory.mktemp("tiny"), tools=True)
    return AutoTokenizer.from_pretrained(str(path))


def trained_text(tokenizer, encoded) -> list[str]:
    """The trained tokens, as the runs of text they form."""
    runs: list[list[int]] = []
    previous = False
    for token, label in zip(encoded.input_ids, encoded.labels, strict=True):
        trained = label != IGNORE
        if trained:
            assert label == token
            if not previous:
                runs.append([])
            runs[-1].append(token)
        previous = trained
    return [tokenizer.decode(r) for r in runs]


CHAT_WITH_TOOLS = {
    "messages": [
        {"role": "system", "content": "You answer about orders."},
        {"role": "user", "content": "Where is order 42?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "find_order", "arguments": '{"id": 42}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "shipped on Monday"},
        {"role": "assistant", "content": "It shipped on Monday."},
        {"role": "user", "content": "Thank you"},
        {"role": "assistant", "content": "You are welcome."},
    ],
    "tools": [
        {
            "type": "function",
            "function": {
                "name": "find_order",
                "description": "Find an order",
                "parameters": {"type": "object", "properties": {"id": {"type": "integer"}}},
            },
        }
    ],
}


def test_multi_turn_chat_with_tools_trains_every_assistant_turn_and_nothing_else(
    tokenizer,
) -> None:
    encoded = Encoder(tokenizer).encode(to_example(CHAT_WITH_TOOLS, "chat"))
    assert trained_text(tokenizer, encoded) == [
        '<tool_call>\n{"name": "find_order", "arguments": {"id": 42}}\n</tool_call><|im_end|>',
        "It shipped on Monday.<|im_end|>",
        "You are welcome.<|im_end|>",
    ]
    prompt = tokenizer.decode(
        [t for t, lab in zip(encoded.input_ids, encoded.labels, strict=True) if lab == IGNORE]
    )
    for text in ("Where is order 42?", "shipped on Monday", "Thank you", "You answer about"):
        assert text in prompt


def test_completion_only_trains_the_last_assistant_turn(tokenizer) -> None:
    encoded = Encoder(tokenizer, loss_on="completion").encode(to_example(CHAT_WITH_TOOLS, "chat"))
    assert trained_text(tokenizer, encoded) == ["You are welcome.<|im_end|>"]


def test_loss_on_all_trains_every_token_but_the_first(tokenizer) -> None:
    encoded = Encoder(tokenizer, loss_on="all").encode(to_example(CHAT_WITH_TOOLS, "chat"))
    assert encoded.labels[0] == IGNORE
    assert encoded.labels[1:] == encoded.input_ids[1:]


def test_alpaca_trains_the_output_with_its_end_of_turn(tokenizer) -> None:
    row = {"instruction": "Add the numbers.", "input": "2 and 3", "output": "5"}
    encoded = Encoder(tokenizer).encode(to_example(row, "alpaca"))
    assert trained_text(tokenizer, encoded) == ["5<|im_end|>"]
    text = tokenizer.decode(encoded.input_ids)
    assert "Add the numbers.\n\n2 and 3" in text


def test_prompt_completion_text_trains_the_completion_and_eos(tokenizer) -> None:
    row = {"prompt": "The capital of France is", "completion": " Paris."}
    encoded = Encoder(tokenizer).encode(to_example(row, "prompt_completion"))
    eos = tokenizer.eos_token
    assert trained_text(tokenizer, encoded) == [f" Paris.{eos}"]


def test_conversational_prompt_completion_trains_only_the_completion_turns(tokenizer) -> None:
    row = {
        "prompt": [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello."},
            {"role": "user", "content": "Yes?"},
        ],
        "completion": [{"role": "assistant", "content": "No."}],
    }
    encoded = Encoder(tokenizer).encode(to_example(row, "prompt_completion"))
    assert trained_text(tokenizer, encoded) == ["No.<|im_end|>"]


def test_text_rows_train_every_token(tokenizer) -> None:
    encoded = Encoder(tokenizer).encode(to_example({"text": "Hello world"}, "text"))
    assert encoded.labels[0] == IGNORE
    assert encoded.labels[1:] == encoded.input_ids[1:]
    assert encoded.input_ids[-1] == tokenizer.eos_token_id


def test_a_template_that_rewrites_history_is_refused_by_name(tokenizer) -> None:
    from copy import deepcopy

    odd = deepcopy(tokenizer)
    # drops earlier assistant turns when rendering a later one (as reasoning templates do)
    odd.chat_template = (
        "{% for m in messages %}{% if m.role != 'assistant' or loop.last %}"
        "<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endif %}{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    row = {
        "messages": [
            {"role": "user", "content": "a"},
            {"role": "assistant", "content": "b"},
            {"role": "user", "content": "c"},
            {"role": "assistant", "content": "d"},
        ]
    }
    with pytest.raises(ValueError, match="does not render message 2 as a continuation"):
        Encoder(odd).encode(to_example(row, "chat"))


# ------------------------------------------------------------------ the validator


def test_the_validator_reports_each_bad_row_with_its_number_and_fix(tokenizer) -> None:
    rows: list[dict[str, Any]] = [
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]},
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": " "}]},
        {"messages": [{"role": "user", "content": "only a question"}]},
        {"messages": [{"role": "robot", "content": "x"}]},
        {"messages": [{"role": "user", "content": "hi"}], "colour": "red"},
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]},
        {
            "messages": [
                {"role": "user", "content": "x " * 300},
                {"role": "assistant", "content": "y"},
            ]
        },
        {"messages": [{"role": "tool", "content": "42"}, {"role": "assistant", "content": "y"}]},
    ]
    report, examples = validate_rows(rows, encoder=Encoder(tokenizer), max_length=64)
    assert report.format == "chat" and report.rows == 8
    found = {p.row: (p.severity, p.message) for p in report.problems}
    assert found[2] == ("error", "messages[2] is an empty assistant turn")
    assert "no assistant turn" in found[3][1]
    assert "role 'robot'" in found[4][1]
    assert "unknown field colour" in found[5][1]
    assert found[6] == ("warning", "duplicates row 1")
    assert "over max_length 64" in found[7][1]
    assert "tool result with no tool call" in found[8][1]
    assert 1 not in found
    assert len(examples) == 2  # rows 1 and 6 (a duplicate warns, it is not dropped)
    with pytest.raises(ValidationError, match=r"has 6 problems: row 2: .*empty assistant turn"):
        report.raise_for_errors()


def test_format_detection_names_what_rows_need() -> None:
    with pytest.raises(ValidationError, match="rows need 'messages'"):
        validate_rows([{"question": "a", "answer": "b"}])
    report, _ = validate_rows([{"instruction": "a", "output": "b"}])
    assert report.format == "alpaca" and report.ok


def test_wrong_format_rows_are_errors_not_guesses() -> None:
    report, _ = validate_rows(
        [{"prompt": "a", "completion": "b"}, {"text": "c"}], fmt="prompt_completion"
    )
    assert [p.row for p in report.errors] == [2]
    assert "missing field completion, prompt" in report.errors[0].message


# ------------------------------------------------------------------ batches


def test_an_all_masked_batch_is_an_error() -> None:
    collate = Collator(pad_id=0, packing=False)
    with pytest.raises(ValueError, match="loss mask is all zero"):
        collate([{"input_ids": [5, 6, 7], "labels": [IGNORE, IGNORE, IGNORE]}])


def test_packing_restarts_positions_and_masks_each_rows_first_token() -> None:
    collate = Collator(pad_id=0, packing=True)
    batch = collate(
        [
            {"input_ids": [5, 6, 7], "labels": [IGNORE, 6, 7]},
            {"input_ids": [8, 9], "labels": [IGNORE, 9]},
        ]
    )
    assert batch["input_ids"].tolist() == [[5, 6, 7, 8, 9]]
    assert batch["position_ids"].tolist() == [[0, 1, 2, 0, 1]]
    assert batch["labels"].tolist() == [[IGNORE, 6, 7, IGNORE, 9]]
    assert "attention_mask" not in batch


def test_padding_masks_the_pad_tokens() -> None:
    batch = Collator(pad_id=0, packing=False)(
        [{"input_ids": [5, 6, 7], "labels": [IGNORE, 6, 7]}, {"input_ids": [8], "labels": [8]}]
    )
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert batch["labels"].tolist() == [[IGNORE, 6, 7], [8, IGNORE, IGNORE]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]


def test_rows_survive_a_json_round_trip_of_tool_arguments(tokenizer) -> None:
    example = to_example(json.loads(json.dumps(CHAT_WITH_TOOLS)), "chat")
    assert example.messages[2]["tool_calls"][0]["function"]["arguments"] == {"id": 42}
