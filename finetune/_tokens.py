"""Rows to token ids and loss labels, and batches (padded, or packed without padding).

Transformers and TRL leave the loss mask to the chat template's ``{% generation %}``
markers, which most templates (SmolLM2's included) do not have; a missing marker silently
gives an all-zero mask (trl#4201). Here the mask comes from the template itself, for any
template: each assistant turn's characters are the difference between the conversation
rendered up to that turn and rendered up to the turn before with the generation prompt;
every token that starts inside one is trained, end-of-turn marker included. A template that
does not render turns as prefixes of each other is refused by name.

Packing concatenates the rows of a micro-batch into one sequence with positions restarting
at each row and no attention mask: transformers then builds a block-diagonal causal mask
from the positions (``masking_utils.find_packed_sequence_indices``), so no row attends to
another, and the loss equals the sum of the rows' losses; each row's first label is masked,
so no row is trained to predict the next row's first token.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from finetune._data import Example

__all__ = ["IGNORE", "Collator", "Encoded", "Encoder"]

IGNORE = -100


@dataclass(frozen=True)
class Encoded:
    input_ids: list[int]
    labels: list[int]

    @property
    def trained(self) -> int:
        """Tokens that carry a loss (the first never does: nothing predicts it)."""
        return sum(1 for label in self.labels[1:] if label != IGNORE)


class Encoder:
    """Renders examples with a tokenizer's chat template and masks the loss.

    ``loss_on``: ``auto`` (chat: every assistant turn of the trained part; text: the
    completion, or all of a ``text`` row), ``assistant`` (every assistant turn),
    ``completion`` (chat: the last assistant turn only), ``all`` (every token).
    """

    def __init__(self, tokenizer: Any, *, loss_on: str = "auto") -> None:
        self.tokenizer = tokenizer
        self.loss_on = loss_on

    def encode(self, example: Example) -> Encoded:
        if example.kind == "chat":
            return self._chat(example)
        return self._text(example)

    # ------------------------------------------------------------ chat

    def _render(self, messages: Sequence[dict[str, Any]], tools: Any, *, prompt: bool) -> str:
        try:
            text = self.tokenizer.apply_chat_template(
                list(messages),
                tools=list(tools) if tools else None,
                tokenize=False,
                add_generation_prompt=prompt,
            )
        except Exception as error:  # jinja2 raises template-specific errors
            raise ValueError(f"the chat template refused the row: {error}") from None
        return str(text)

    def _chat(self, example: Example) -> Encoded:
        if not getattr(self.tokenizer, "chat_template", None):
            raise ValueError(
                "the base model's tokenizer has no chat template: give chat rows to a model "
                "that has one, or use the prompt_completion or text format"
            )
        messages, tools = example.messages, example.tools
        full = self._render(messages, tools, prompt=False)
        spans = [(0, len(full))] if self.loss_on == "all" else self._spans(example, full)
        return self._labelled(full, spans)

    def _spans(self, example: Example, full: str) -> list[tuple[int, int]]:
        messages, tools = example.messages, example.tools
        turns = [
            i
            for i, m in enumerate(messages)
            if m["role"] == "assistant" and (self.loss_on == "assistant" or i >= example.train_from)
        ]
        if self.loss_on == "completion":
            turns = turns[-1:]
        spans = []
        for i in turns:
            before = self._render(messages[:i], tools, prompt=True) if i else ""
            after = self._render(messages[: i + 1], tools, prompt=False)
            if not (after.startswith(before) and full.startswith(after)):
                raise ValueError(
                    f"the chat template does not render message {i + 1} as a continuation of "
                    "the ones before it, so its tokens cannot be told from the prompt's"
                )
            end = len(after.rstrip())
            if end > len(before):
                spans.append((len(before), end))
        return spans

    def _labelled(self, text: str, spans: Sequence[tuple[int, int]]) -> Encoded:
        encoding = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        ids = list(encoding["input_ids"])
        labels = [IGNORE] * len(ids)
        for index, (start, _end) in enumerate(encoding["offset_mapping"]):
            if any(s <= start < e for s, e in spans):
                labels[index] = ids[index]
        if labels:
            labels[0] = IGNORE
        return Encoded(ids, labels)

    # ------------------------------------------------------------ text

    def _text(self, example: Example) -> Encoded:
        tokenizer = self.tokenizer
        head = tokenizer(example.prompt, add_special_tokens=True)["input_ids"]
        if head and tokenizer.eos_token_id is not None and head[-1] == tokenizer.eos_token_id:
            head = head[:-1]  # tokenizers that close every encoding with EOS
        tail = tokenizer(example.completion, add_special_tokens=False)["input_ids"]
        if tokenizer.eos_token_id is not None:
            tail = [*tail, tokenizer.eos_token_id]
        ids = [*head, *tail]
        if self.loss_on in ("all",) or not example.prompt:
            labels = list(ids)
        else:
            labels = [IGNORE] * len(head) + list(tail)
        if labels:
            labels[0] = IGNORE
        return Encoded(ids, labels)


class Collator:
    """Micro-batches for the Trainer: right-padded, or packed into one row."""

    def __init__(self, *, pad_id: int, packing: bool) -> None:
        self.pad_id = pad_id
        self.packing = packing

    def __call__(self, features: Sequence[dict[str, Any]]) -> dict[str, Any]:
        import torch

        rows = [(list(f["input_ids"]), list(f["labels"])) for f in features]
        if not any(label != IGNORE for _, labels in rows for label in labels[1:]):
            raise ValueError(
                "a training batch has no trained token (its loss mask is all zero): check the "
                "rows with `genai finetune validate` and the loss_on setting"
            )
        if self.packing:
            ids = [i for row, _ in rows for i in row]
            labels = [lab for _, row_labels in rows for lab in row_labels]
            positions = [p for row, _ in rows for p in range(len(row))]
            return {
                "input_ids": torch.tensor([ids]),
                "labels": torch.tensor([labels]),
                "position_ids": torch.tensor([positions]),
            }
        width = max(len(row) for row, _ in rows)
        input_ids, label_rows, mask = [], [], []
        for row, row_labels in rows:
            pad = width - len(row)
            input_ids.append(row + [self.pad_id] * pad)
            label_rows.append(row_labels + [IGNORE] * pad)
            mask.append([1] * len(row) + [0] * pad)
        return {
            "input_ids": torch.tensor(input_ids),
            "labels": torch.tensor(label_rows),
            "attention_mask": torch.tensor(mask),
        }
