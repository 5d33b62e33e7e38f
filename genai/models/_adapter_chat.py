"""The chat template an adapter was trained with, served with it (train/serve parity).

A fine-tuned adapter directory holds, beside its weights, the tokenizer it was trained with
(``tokenizer.save_pretrained(adapter_dir)``: ``tokenizer.json``, ``tokenizer_config.json``
and the chat template as ``chat_template.jinja`` or inside the config). A chat template at
serving time that differs from the one in training collapses the adapter's quality, so the
backends render requests to such an adapter with its own tokenizer and template. A
tokenizer with another vocabulary than the base model's cannot be served on that base at
all: its token ids mean other tokens there.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genai.errors import MissingDependencyError, ValidationError

__all__ = ["AdapterChat", "read_adapter_chat", "template_text"]

#: Files of a saved tokenizer (any of them means the directory carries one).
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")


@dataclass(frozen=True)
class AdapterChat:
    """How requests to one adapter render their messages: with the tokenizer it was trained
    with (its template, its special tokens), or, where the directory holds a template file
    alone, the base's tokenizer with that template."""

    template: str | dict[str, str]  # a Jinja template, or named templates ("default", ...)
    tokenizer: Any = None  # the adapter's tokenizer (the base's vocabulary); None: the base's

    def template_for(self, *, tools: bool) -> str | None:
        """The template text a request renders with (``tool_use`` for tools, if named)."""
        return template_text(self.template, tools=tools)


def template_text(template: str | dict[str, str] | None, *, tools: bool) -> str | None:
    """The text of a tokenizer's ``chat_template`` for a request: of named templates,
    ``tool_use`` for a request with tools (where there is one), else ``default``."""
    if not isinstance(template, dict):
        return template
    if tools and "tool_use" in template:
        return template["tool_use"]
    return template.get("default")


def read_adapter_chat(folder: Path, base_tokenizer: Any) -> AdapterChat | None:
    """The chat template ``folder`` carries (None: none, requests use the base's).

    Raises :class:`ValidationError` when the directory's tokenizer cannot be read, or has a
    vocabulary other than ``base_tokenizer``'s (compared where the base tokenizer tells its
    vocabulary, as Hugging Face tokenizers do).
    """
    if any((folder / name).is_file() for name in _TOKENIZER_FILES):
        tokenizer = _load_tokenizer(folder)
        _check_vocabulary(folder, tokenizer, base_tokenizer)
        template = getattr(tokenizer, "chat_template", None)
        if template:
            return AdapterChat(template=template, tokenizer=tokenizer)
    template = _template_file(folder)
    return AdapterChat(template=template) if template else None


def _load_tokenizer(folder: Path) -> Any:
    try:
        from transformers import AutoTokenizer
    except ImportError as error:
        raise MissingDependencyError(
            error.name or "transformers", extra="llm", purpose="reading an adapter's tokenizer"
        ) from None
    try:
        return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError, TypeError, KeyError, json.JSONDecodeError) as error:
        first = (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
        raise ValidationError(
            f"adapter {folder} carries a tokenizer that cannot be read ({first}): save the "
            "training tokenizer there with tokenizer.save_pretrained(adapter_dir), or remove "
            "its files",
            field="lora_path",
        ) from None


def _check_vocabulary(folder: Path, tokenizer: Any, base_tokenizer: Any) -> None:
    base_vocab = getattr(base_tokenizer, "get_vocab", None)
    if base_vocab is None:
        return
    ours: dict[str, int] = tokenizer.get_vocab()
    theirs: dict[str, int] = base_vocab()
    if ours == theirs:
        return
    differs = next((t for t in sorted(ours) if theirs.get(t) != ours[t]), None)
    if differs is None:
        detail = "the base's has tokens it lacks"
    else:
        there = f"id {theirs[differs]}" if differs in theirs else "absent"
        detail = f"token {differs!r} is id {ours[differs]} there, {there} in the base's"
    raise ValidationError(
        f"adapter {folder} was trained with another tokenizer: its vocabulary has {len(ours)} "
        f"tokens, the base model's {len(theirs)} ({detail}); serve it on the base model whose "
        "tokenizer it was trained with",
        field="lora_path",
    )


def _template_file(folder: Path) -> str | None:
    jinja = folder / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text(encoding="utf-8") or None
    legacy = folder / "chat_template.json"  # {"chat_template": "..."}, as processors saved it
    if legacy.is_file():
        try:
            value = json.loads(legacy.read_text(encoding="utf-8")).get("chat_template")
        except (json.JSONDecodeError, AttributeError):
            raise ValidationError(
                f"{legacy} is not a JSON object with a chat_template", field="lora_path"
            ) from None
        return str(value) if value else None
    return None
