"""Cache keys: which partition a request belongs to, and what of it is compared.

A request is split into

- its **context**: everything that changes the answer besides the question itself — the
  system prompt, earlier turns (user, assistant and tool messages), message names, images.
  It is hashed into the *scope*, so the semantic tier only ever compares questions asked
  after the very same context ("And in Paris?" after a talk about hotels is not "And in
  Paris?" after a talk about flights);
- its **question**: the last user message's text, the only part that is embedded and
  compared by similarity.

A prompt (a completions request) and chat messages never share a key, even with the same
text: their answers have other shapes (``text_completion`` and ``chat.completion``).

The exact tier hashes the whole normalised request (context and question) with the
partition. Every hash starts from the partition, which starts from the project id: no key
of one project can equal a key of another.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from cache._verify import normalize_text
from genai.errors import ValidationError

__all__ = ["ChatRequest", "Partition", "RequestKey", "output_params", "request_key"]

#: A request: a prompt (completions) or OpenAI chat messages.
ChatRequest = str | Sequence[Mapping[str, Any]]


@dataclass(frozen=True)
class Partition:
    """The hard boundary of the cache: entries are stored and found within one partition
    only, however similar a question of another partition is.

    ``params`` is the canonical text of the parameters that change the answer or its
    shape — sampling, ``response_format``, ``tools`` and ``tool_choice`` among them (see
    :func:`cache.output_params`); ``revision`` the deployment's revision (a new revision
    may route to another model); ``endpoint`` the API the answer is shaped for (``chat``,
    ``completions``: one endpoint's body never answers the other). Changing any field
    starts an empty partition: that is how a new prompt version, adapter or knowledge base
    invalidates the old answers.
    """

    project_id: int
    deployment: str
    adapter: str = ""
    prompt_version: str = ""
    params: str = ""
    kb_version: str = ""
    revision: str = ""
    endpoint: str = ""

    def __post_init__(self) -> None:
        if isinstance(self.project_id, bool) or not isinstance(self.project_id, int):
            raise ValidationError(
                f"Partition.project_id must be the project's integer id, not {self.project_id!r}",
                field="project_id",
            )
        if not self.deployment:
            raise ValidationError(
                "Partition.deployment must name the deployment (or model) that answers",
                field="deployment",
            )

    @property
    def key(self) -> str:
        """A hash of every field: equal keys, equal partitions."""
        return _digest("partition", asdict(self))


@dataclass(frozen=True)
class RequestKey:
    """What the cache keys one request by."""

    scope: str  # partition + context: the semantic tier compares within it only
    exact: str  # partition + the whole normalised request
    question: str | None  # the text to embed; None when only the exact tier applies


def request_key(
    partition: Partition,
    request: ChatRequest,
    *,
    session: str | None = None,
    max_question_chars: int = 1000,
) -> RequestKey:
    """The keys of ``request`` in ``partition``.

    ``session`` joins the scope when the request's answers belong to one conversation only
    (e.g. pseudonymised text, whose tokens stand for other values in another session).
    A question longer than ``max_question_chars`` is left to the exact tier: the embedding
    model reads only its beginning, so two long prompts sharing a preamble would look alike.
    """
    question: str | None
    kind = "prompt" if isinstance(request, str) else "messages"
    if isinstance(request, str):
        context: list[Any] = []
        question = normalize_text(request)
        whole: Any = {"prompt": question.casefold()}
    else:
        messages = [_message(m) for m in request]
        if not messages:
            raise ValidationError("a chat request needs at least one message", field="messages")
        last = messages[-1]
        plain = last["role"] == "user" and isinstance(last["content"], str) and len(last) == 2
        context = messages[:-1] if plain else messages
        question = last["content"] if plain else None
        whole = [_folded(m) for m in messages]
    if question is not None and (not question or len(question) > max_question_chars):
        question = None
    base = partition.key
    scope = _digest("scope", [base, kind, [_folded(m) for m in context], session or ""])
    exact = _digest("exact", [base, kind, whole, session or ""])
    return RequestKey(scope=scope, exact=exact, question=question)


#: Request fields that never change the answer (or are keyed elsewhere): everything else of
#: a body — temperature, top_p, seed, max_tokens, stop, n, tools, tool_choice,
#: response_format (its JSON schema included), logprobs, penalties, and any parameter
#: added later — is part of the partition.
_NOT_OUTPUT = frozenset(
    {
        "messages",
        "prompt",
        "model",
        "stream",
        "stream_options",
        "user",
        "metadata",
        "store",
        "service_tier",
        "timeout",
        "extra_headers",
    }
)


def output_params(body: Mapping[str, Any]) -> str:
    """The canonical text of the parameters of an OpenAI request body that change its
    answer (for :attr:`Partition.params`). Unknown parameters count: a parameter the cache
    does not know may change the answer, so it separates partitions rather than merge them.
    """
    kept = {k: v for k, v in body.items() if k not in _NOT_OUTPUT and v is not None}
    return json.dumps(kept, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)


def _message(message: Mapping[str, Any]) -> dict[str, Any]:
    """A message in canonical form: text normalised, every other field kept as it is."""
    if not isinstance(message, Mapping) or "role" not in message:
        raise ValidationError("each chat message must be an object with a 'role'", field="messages")
    out: dict[str, Any] = {}
    for key, value in message.items():
        if value is not None:
            out[key] = _content(value) if key == "content" else value
    out.setdefault("content", "")
    return out


def _content(content: Any) -> Any:
    if isinstance(content, str):
        return normalize_text(content)
    if isinstance(content, list):
        parts = [p for p in content if isinstance(p, Mapping)]
        if len(parts) == len(content) and all(p.get("type") == "text" for p in parts):
            return normalize_text(" ".join(str(p.get("text", "")) for p in parts))
        return content  # images, audio: compared exactly, never embedded
    return content


def _folded(message: Any) -> Any:
    if isinstance(message, dict) and isinstance(message.get("content"), str):
        return {**message, "content": message["content"].casefold()}
    return message


def _digest(kind: str, value: Any) -> str:
    text = json.dumps([kind, value], sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]
