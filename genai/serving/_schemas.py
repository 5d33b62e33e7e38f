"""OpenAI's request bodies, checked as OpenAI checks them, and turned into backend requests.

Unknown fields are refused with OpenAI's own wording; known fields that the server or its
backend cannot honour (logit bias, a suffix, JSON mode on a backend without constrained
decoding…) are refused by name instead of ignored.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic import ValidationError as PydanticError

from genai.errors import ValidationError
from genai.models import (
    ChatMessage,
    ContextPassage,
    FunctionChoice,
    GenerationRequest,
    ResponseFormat,
    SamplingParams,
    ToolChoice,
)

__all__ = [
    "ChatCompletionRequest",
    "CompletionRequest",
    "DetokenizeRequest",
    "LoadAdapterRequest",
    "TokenizeRequest",
    "UnloadAdapterRequest",
    "check_body",
    "parse_body",
]

MAX_N = 8


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    n: int = Field(default=1, ge=1, le=MAX_N)
    stop: str | list[str] | None = None
    seed: int | None = None
    presence_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    frequency_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    logit_bias: dict[str, float] | None = None
    logprobs: Any = None
    user: str | None = None
    context: list[ContextPassage] | None = None  # an extension: passages for grounded answers

    @field_validator("stop")
    @classmethod
    def _stops(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and len(value) > 4:
            raise ValueError("at most 4 stop sequences")
        return value

    def sampling(self, max_tokens: int | None, index: int = 0) -> SamplingParams:
        if self.logit_bias:
            raise ValidationError("logit_bias is not supported by this server", field="logit_bias")
        stops = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        return SamplingParams(
            max_tokens=max_tokens,
            temperature=1.0 if self.temperature is None else self.temperature,
            top_p=1.0 if self.top_p is None else self.top_p,
            stop=stops,
            seed=None if self.seed is None else self.seed + index,
            presence_penalty=self.presence_penalty or 0.0,
            frequency_penalty=self.frequency_penalty or 0.0,
        )

    @property
    def include_usage(self) -> bool:
        return bool((self.stream_options or {}).get("include_usage"))


class ChatCompletionRequest(_Body):
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    top_logprobs: int | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: Any = None
    parallel_tool_calls: bool | None = None
    response_format: dict[str, Any] | None = None
    service_tier: str | None = None
    store: bool | None = None
    metadata: dict[str, str] | None = None
    reasoning_effort: str | None = None
    modalities: list[str] | None = None

    def requests(self, adapter: str | None) -> list[GenerationRequest]:
        limit = self.max_completion_tokens or self.max_tokens
        if self.logprobs is not None and not isinstance(self.logprobs, bool):
            raise ValidationError("logprobs must be true or false", field="logprobs")
        if self.top_logprobs is not None and not 0 <= self.top_logprobs <= 20:
            raise ValidationError("top_logprobs must be from 0 to 20", field="top_logprobs")
        if self.top_logprobs and not self.logprobs:
            raise ValidationError("top_logprobs needs logprobs: true", field="top_logprobs")
        fmt = ResponseFormat.from_openai(self.response_format) if self.response_format else None
        choice = _tool_choice(self.tool_choice)
        return [
            GenerationRequest(
                messages=self.messages,
                adapter=adapter,
                params=self.sampling(limit, i),
                tools=self.tools,
                tool_choice=choice,
                parallel_tool_calls=self.parallel_tool_calls is not False,
                response_format=fmt,
                logprobs=(self.top_logprobs or 0) if self.logprobs else None,
                context=self.context,
            )
            for i in range(self.n)
        ]


class CompletionRequest(_Body):
    prompt: str | list[str] | list[int] | list[list[int]]
    max_tokens: int | None = Field(default=16, ge=0)  # OpenAI's default; 0 scores (echo)
    echo: bool = False
    suffix: str | None = None
    best_of: int | None = Field(default=None, ge=1)

    def requests(self, adapter: str | None) -> list[GenerationRequest]:
        if self.suffix:
            raise ValidationError("suffix is not supported by this server", field="suffix")
        if self.best_of not in (None, 1, self.n):
            raise ValidationError(
                "best_of other than n is not supported by this server", field="best_of"
            )
        prompts = _prompts(self.prompt)
        if not prompts:
            raise ValidationError("prompt must not be empty", field="prompt")
        wanted = self.logprobs is not None and self.logprobs is not False
        if wanted and (
            isinstance(self.logprobs, bool)
            or not isinstance(self.logprobs, int)
            or not 0 <= self.logprobs <= 20
        ):
            raise ValidationError("logprobs must be an integer from 0 to 20", field="logprobs")
        if self.max_tokens == 0 and not self.echo:
            raise ValidationError(
                "max_tokens 0 generates nothing: give echo: true (with logprobs) to score "
                "the prompt",
                field="max_tokens",
            )
        return [
            GenerationRequest(
                prompt=p if isinstance(p, str) else None,
                prompt_ids=None if isinstance(p, str) else p,
                adapter=adapter,
                params=self.sampling(self.max_tokens, i),
                logprobs=self.logprobs if wanted else None,
                echo=self.echo,
                context=self.context,
            )
            for p in prompts
            for i in range(self.n)
        ]


def _prompts(prompt: str | list[str] | list[int] | list[list[int]]) -> list[str | list[int]]:
    """One prompt per choice: a text, a list of texts, token ids, or lists of token ids."""
    if isinstance(prompt, str):
        return [prompt]
    if prompt and all(isinstance(p, int) for p in prompt):
        return [list(prompt)]  # type: ignore[arg-type]
    return list(prompt)  # type: ignore[arg-type]


def _tool_choice(raw: Any) -> ToolChoice | None:
    if raw is None or raw in ("auto", "none", "required"):
        return raw  # type: ignore[no-any-return]
    if isinstance(raw, dict) and isinstance((raw.get("function") or {}).get("name"), str):
        return FunctionChoice(name=raw["function"]["name"])
    raise ValidationError(
        "tool_choice must be auto, none, required or {'type': 'function', 'function': "
        "{'name': ...}}",
        field="tool_choice",
    )


class TokenizeRequest(BaseModel):
    """vLLM's ``/tokenize`` body (a prompt, or chat messages with the template applied)."""

    model_config = ConfigDict(extra="ignore")

    model: str | None = None  # vLLM's: the base model when left out
    prompt: str | None = None
    messages: list[ChatMessage] | None = None
    add_special_tokens: bool | None = None  # vLLM's default: yes for a prompt, no for chat
    return_token_strs: bool = False

    tools: list[dict[str, Any]] | None = None

    def generation(self, adapter: str | None) -> GenerationRequest:
        if (self.prompt is None) == (self.messages is None):
            raise ValidationError("give exactly one of prompt and messages", field="prompt")
        return GenerationRequest(
            prompt=self.prompt, messages=self.messages, adapter=adapter, tools=self.tools
        )


class DetokenizeRequest(BaseModel):
    """vLLM's ``/detokenize`` body."""

    model_config = ConfigDict(extra="ignore")

    model: str | None = None
    tokens: list[int]


class LoadAdapterRequest(BaseModel):
    """vLLM's ``/v1/load_lora_adapter`` body."""

    lora_name: str = Field(min_length=1)
    lora_path: str = Field(min_length=1)
    load_inplace: bool = False


class UnloadAdapterRequest(BaseModel):
    lora_name: str = Field(min_length=1)
    lora_int_id: int | None = None


def parse_body(raw: bytes, model: type[BaseModel]) -> Any:
    """Decode and check a JSON body, or raise a :class:`ValidationError` naming the field."""
    try:
        data = json.loads(raw or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValidationError(f"the request body is not valid JSON: {error}") from None
    return check_body(data, model)


def check_body(data: Any, model: type[BaseModel]) -> Any:
    """Check a decoded JSON body against ``model``, naming the offending field."""
    if not isinstance(data, dict):
        raise ValidationError("the request body must be a JSON object")
    try:
        return model.model_validate(data)
    except PydanticError as error:
        first = error.errors()[0]
        field = _field_path(data, first["loc"], missing=first["type"] == "missing")
        if first["type"] == "extra_forbidden":
            raise ValidationError(
                f"Unrecognized request argument supplied: {field}", field=field
            ) from None
        kind: Literal["missing", "other"] = "missing" if first["type"] == "missing" else "other"
        detail = "is required" if kind == "missing" else first["msg"]
        raise ValidationError(f"invalid request: '{field}' {detail}", field=field) from None


def _field_path(data: Any, loc: tuple[int | str, ...], *, missing: bool) -> str | None:
    """The dotted path of the offending field in the request (``messages.0.role``), without
    the member names pydantic adds to the location of a union's error (``prompt.str``)."""
    parts: list[str] = []
    node = data
    for part in loc:
        inside = (isinstance(node, dict) and part in node) or (
            isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        )
        if not inside:
            if missing and isinstance(node, dict):
                parts.append(str(part))  # the field that is absent
            break
        node = node[part]
        parts.append(str(part))
    return ".".join(parts) or None
