"""What LLM backends take and give: requests, sampling parameters, generations, chunks."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from genai.errors import ValidationError

__all__ = [
    "ChatMessage",
    "ContextPassage",
    "FinishReason",
    "FunctionChoice",
    "Generation",
    "GenerationChunk",
    "GenerationRequest",
    "LoadedAdapter",
    "ResponseFormat",
    "SamplingParams",
    "TokenLogprob",
    "ToolCall",
    "ToolChoice",
    "TopLogprob",
]

FinishReason = Literal["stop", "length", "tool_calls", "cancelled"]


class ToolCall(BaseModel):
    id: str
    type: Literal["function"] = "function"
    function: dict[str, Any]


class ChatMessage(BaseModel):
    """One message of a conversation, as OpenAI's chat API has it."""

    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None

    def text(self) -> str:
        """The text of the message (text parts of a multi-part content joined)."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(str(p.get("text", "")) for p in self.content if p.get("type") == "text")


class SamplingParams(BaseModel):
    """Sampling as OpenAI defines it: ``temperature`` 0 is greedy decoding."""

    max_tokens: int | None = Field(default=None, ge=0)  # 0: score the prompt only (echo)
    temperature: float = Field(default=1.0, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    stop: list[str] = Field(default_factory=list, max_length=4)
    seed: int | None = None
    presence_penalty: float = Field(default=0.0, ge=-2.0, le=2.0)
    frequency_penalty: float = Field(default=0.0, ge=-2.0, le=2.0)

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


class ContextPassage(BaseModel):
    """A passage a request carries for grounded answers (the ``extractive`` backend)."""

    id: str
    text: str


class ResponseFormat(BaseModel):
    """What the text of a generation must be: free ``text``, any JSON object
    (``json_object``), or JSON valid against ``json_schema`` (a JSON Schema)."""

    type: Literal["text", "json_object", "json_schema"] = "text"
    json_schema: dict[str, Any] | None = None
    name: str | None = None
    strict: bool | None = None

    @model_validator(mode="after")
    def _schema(self) -> ResponseFormat:
        if self.type == "json_schema" and self.json_schema is None:
            raise ValueError("a json_schema response format needs its schema")
        return self

    @property
    def constrained(self) -> bool:
        return self.type != "text"

    @classmethod
    def from_openai(cls, raw: dict[str, Any]) -> ResponseFormat:
        """OpenAI's ``response_format`` (``json_schema`` nests its schema under
        ``json_schema.schema``); a malformed one is a 400 naming the field."""
        kind = raw.get("type", "text")
        if kind not in ("text", "json_object", "json_schema"):
            raise ValidationError(
                f"response_format type {kind!r} is not one of text, json_object, json_schema",
                field="response_format.type",
            )
        if kind != "json_schema":
            return cls(type=kind)
        spec = raw.get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("schema", {}), dict):
            raise ValidationError(
                "response_format json_schema needs {'name': ..., 'schema': {...}}",
                field="response_format.json_schema",
            )
        return cls(
            type="json_schema",
            json_schema=spec.get("schema") or {"type": "object"},
            name=spec.get("name"),
            strict=spec.get("strict"),
        )

    def to_openai(self) -> dict[str, Any]:
        """The inverse of :meth:`from_openai`: OpenAI's ``response_format``."""
        if self.type != "json_schema":
            return {"type": self.type}
        spec: dict[str, Any] = {"name": self.name or "response", "schema": self.json_schema}
        if self.strict is not None:
            spec["strict"] = self.strict
        return {"type": "json_schema", "json_schema": spec}


class FunctionChoice(BaseModel):
    """``tool_choice`` naming one function the model must call."""

    name: str


ToolChoice = Literal["auto", "none", "required"] | FunctionChoice


class TopLogprob(BaseModel):
    token: str
    token_id: int | None = None  # None where an upstream sends the text alone
    logprob: float


class TokenLogprob(BaseModel):
    """One token's log-probability, with the most likely alternatives at its position."""

    token: str
    token_id: int | None = None  # None where an upstream sends the text alone
    logprob: float
    top: list[TopLogprob] = Field(default_factory=list)


class GenerationRequest(BaseModel):
    """One generation: a text ``prompt``, token ids (``prompt_ids``) or chat ``messages``,
    for the base model or an adapter.

    ``response_format``, ``tools`` with ``tool_choice``, ``logprobs`` (the number of top
    alternatives per token, 0 for the chosen token's alone) and ``echo`` (the prompt's own
    log-probabilities too) are honoured by the backends that can; the others refuse them
    by name, never ignore them.
    """

    prompt: str | None = None
    prompt_ids: list[int] | None = None
    messages: list[ChatMessage] | None = None
    adapter: str | None = None
    params: SamplingParams = Field(default_factory=SamplingParams)
    tools: list[dict[str, Any]] | None = None
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool = True
    response_format: ResponseFormat | None = None
    logprobs: int | None = Field(default=None, ge=0, le=20)
    echo: bool = False
    context: list[ContextPassage] | None = None

    @model_validator(mode="after")
    def _one_input(self) -> GenerationRequest:
        given = [x is not None for x in (self.prompt, self.prompt_ids, self.messages)]
        if sum(given) != 1:
            raise ValueError("give exactly one of prompt, prompt_ids and messages")
        return self

    @property
    def constrained(self) -> bool:
        """Whether the text must follow a format (JSON, or a forced tool call)."""
        forced = self.tools and self.tool_choice not in (None, "auto", "none")
        return bool(forced or (self.response_format and self.response_format.constrained))

    @property
    def is_chat(self) -> bool:
        return self.messages is not None


class Generation(BaseModel):
    text: str
    finish_reason: FinishReason
    prompt_tokens: int
    completion_tokens: int
    tool_calls: list[ToolCall] | None = None
    logprobs: list[TokenLogprob] | None = None
    prompt_logprobs: list[TokenLogprob | None] | None = None  # echo: the first is None
    prompt_text: str | None = None  # echo: the prompt as text (token-id prompts decoded)


class GenerationChunk(BaseModel):
    """A piece of a streamed generation; the last one carries ``finish_reason`` and usage."""

    text: str = ""
    finish_reason: FinishReason | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    tool_calls: list[ToolCall] | None = None
    logprobs: list[TokenLogprob] | None = None  # the tokens of this chunk's text
    prompt_logprobs: list[TokenLogprob | None] | None = None  # on the first chunk (echo)
    prompt_text: str | None = None  # on the first chunk (echo)


class LoadedAdapter(BaseModel):
    name: str
    path: str
    base_model: str
