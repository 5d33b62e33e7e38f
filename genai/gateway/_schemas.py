"""The ``/v1`` bodies as typed models: one source for the OpenAPI document and for the
gateway's checks of what callers send (:mod:`genai.gateway._checks` validates every body
against these models, so the document and the behaviour cannot drift apart).

Requests follow OpenAI's API: unknown top-level fields are refused, as OpenAI refuses them;
messages, content parts and tools may carry fields added after this was written (clients
and vendors attach their own), but the fields named here must have the shapes named here.
Numbers are strict: a boolean is not a number, a decimal is not an integer. Responses are
open (an upstream may add fields), with the fields every client reads.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "INT64_MAX",
    "INT64_MIN",
    "ChatCompletion",
    "ChatCompletionRequest",
    "CompletionRequest",
    "EmbeddingList",
    "EmbeddingRequest",
    "ErrorBody",
    "FeedbackAck",
    "FeedbackRequest",
    "Health",
    "ModelList",
    "TextCompletion",
]

INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)
MAX_TOKENS = 10_000_000


class _Closed(BaseModel):
    """A request body: strict types, no fields but these."""

    model_config = ConfigDict(extra="forbid", strict=True)


class _Open(BaseModel):
    """A nested object: strict types for the fields named, other fields allowed."""

    model_config = ConfigDict(extra="allow", strict=True)


# ------------------------------------------------------------------ content parts


class TextPart(_Open):
    type: Literal["text"]
    text: str


class ImageUrl(_Open):
    url: str
    detail: Literal["auto", "low", "high"] | None = None


class ImagePart(_Open):
    type: Literal["image_url"]
    image_url: ImageUrl


class InputAudio(_Open):
    data: str = Field(description="Base64-encoded audio.")
    format: str = Field(examples=["wav", "mp3"])


class AudioPart(_Open):
    type: Literal["input_audio"]
    input_audio: InputAudio


class FileRef(_Open):
    file_data: str | None = None
    file_id: str | None = None
    filename: str | None = None


class FilePart(_Open):
    type: Literal["file"]
    file: FileRef


class RefusalPart(_Open):
    type: Literal["refusal"]
    refusal: str


UserPart = Annotated[TextPart | ImagePart | AudioPart | FilePart, Field(discriminator="type")]
AssistantPart = Annotated[TextPart | RefusalPart, Field(discriminator="type")]
TextContent = str | list[TextPart]

# ------------------------------------------------------------------ messages


class FunctionCall(_Open):
    name: str
    arguments: str


class ToolCall(_Open):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class SystemMessage(_Open):
    role: Literal["system"]
    content: TextContent
    name: str | None = None


class DeveloperMessage(_Open):
    role: Literal["developer"]
    content: TextContent
    name: str | None = None


class UserMessage(_Open):
    role: Literal["user"]
    content: str | list[UserPart]
    name: str | None = None


class AssistantMessage(_Open):
    """``content`` may be null (or left out) only when the message calls tools
    (``tool_calls``) or a function (``function_call``)."""

    role: Literal["assistant"]
    content: str | list[AssistantPart] | None = None
    name: str | None = None
    refusal: str | None = None
    tool_calls: list[ToolCall] | None = None
    function_call: FunctionCall | None = None
    audio: dict[str, Any] | None = None


class ToolMessage(_Open):
    role: Literal["tool"]
    content: TextContent
    tool_call_id: str


class FunctionMessage(_Open):
    role: Literal["function"]
    content: str | None
    name: str


Message = Annotated[
    SystemMessage
    | DeveloperMessage
    | UserMessage
    | AssistantMessage
    | ToolMessage
    | FunctionMessage,
    Field(discriminator="role"),
]

# ------------------------------------------------------------------ tools and formats


class FunctionDef(_Open):
    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    description: str | None = None
    parameters: dict[str, Any] | None = Field(default=None, description="A JSON Schema.")
    strict: bool | None = None


class FunctionTool(_Open):
    type: Literal["function"]
    function: FunctionDef


class NamedFunction(_Open):
    name: str


class ToolChoice(_Open):
    type: str = Field(examples=["function"])
    function: NamedFunction | None = None


class JsonSchemaFormat(_Open):
    name: str
    description: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None


class ResponseFormat(_Open):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None


class StreamOptions(_Open):
    include_usage: bool | None = None


class Passage(_Open):
    id: str
    text: str


# ------------------------------------------------------------------ requests

Int64 = Annotated[int, Field(ge=INT64_MIN, le=INT64_MAX)]
Tokens = Annotated[int, Field(ge=1, le=MAX_TOKENS)]
Stop = str | Annotated[list[str], Field(max_length=4)]


class _Sampling(_Closed):
    """What chat and text completions share."""

    model: str = Field(min_length=1, description="A deployment of the project (or name:adapter).")
    stream: bool | None = Field(
        default=None, description="Answer as server-sent events (text/event-stream)."
    )
    stream_options: StreamOptions | None = None
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    top_p: Annotated[float, Field(ge=0, le=1)] | None = None
    n: Annotated[int, Field(ge=1, le=128)] | None = None
    stop: Stop | None = None
    seed: Int64 | None = None
    presence_penalty: Annotated[float, Field(ge=-2, le=2)] | None = None
    frequency_penalty: Annotated[float, Field(ge=-2, le=2)] | None = None
    logit_bias: dict[str, Annotated[float, Field(ge=-100, le=100)]] | None = None
    user: str | None = None
    max_tokens: Tokens | None = None
    context: list[Passage] | None = Field(
        default=None, description="Passages for grounded answers (a platform extension)."
    )


class ChatCompletionRequest(_Sampling):
    """``POST /v1/chat/completions``. ``messages`` may be left out when ``prompt`` names a
    registered prompt (a platform extension) that renders them."""

    messages: list[Message] | None = Field(
        default=None, description="At least one, unless 'prompt' renders them."
    )
    max_completion_tokens: Tokens | None = None
    logprobs: bool | None = None
    top_logprobs: Annotated[int, Field(ge=0, le=20)] | None = None
    tools: list[FunctionTool] | None = None
    tool_choice: Literal["none", "auto", "required"] | ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    service_tier: str | None = None
    store: bool | None = None
    metadata: dict[str, str] | None = None
    reasoning_effort: str | None = None
    modalities: list[Literal["text", "audio"]] | None = None
    functions: list[FunctionDef] | None = None
    function_call: Literal["none", "auto"] | NamedFunction | None = None
    audio: dict[str, Any] | None = None
    prediction: dict[str, Any] | None = None
    web_search_options: dict[str, Any] | None = None
    prompt: str | None = Field(
        default=None,
        min_length=1,
        description="A registered prompt of the project (e.g. qa@production) that renders "
        "the first messages (a platform extension).",
    )
    variables: dict[str, Any] | None = Field(
        default=None, description="The values the registered prompt's template takes."
    )


# token ids are not bounded one by one: a bound on each of a million ids costs ~20 ms a
# request, and the JSON parser already reads nothing past 64 bits as an integer
TokenIds = Annotated[list[int], Field(min_length=1)]


class CompletionRequest(_Sampling):
    """``POST /v1/completions``."""

    prompt: (
        str
        | Annotated[list[str], Field(min_length=1)]
        | TokenIds
        | Annotated[list[TokenIds], Field(min_length=1)]
    )
    max_tokens: Annotated[int, Field(ge=0, le=MAX_TOKENS)] | None = Field(
        default=None, description="0 with echo scores the prompt without generating."
    )
    logprobs: Annotated[int, Field(ge=0, le=20)] | None = None
    echo: bool | None = None
    suffix: str | None = None
    best_of: Annotated[int, Field(ge=0, le=20)] | None = None


class EmbeddingRequest(_Closed):
    """``POST /v1/embeddings``: text (or token ids, where the deployment takes them)."""

    model: str = Field(min_length=1)
    input: (
        str
        | Annotated[list[str], Field(min_length=1)]
        | TokenIds
        | Annotated[list[TokenIds], Field(min_length=1)]
    )
    encoding_format: Literal["float", "base64"] | None = None
    dimensions: Annotated[int, Field(ge=1, le=INT64_MAX)] | None = None
    user: str | None = None


class FeedbackRequest(_Closed):
    """``POST /v1/feedback``: a rating of one answer, named by its response id (or its
    x-request-id): a ``score`` from 0 (bad) to 1 (good), or a ``rating``."""

    response_id: str | None = Field(default=None, min_length=1, examples=["chatcmpl-3f2a9c"])
    request_id: str | None = Field(default=None, min_length=1)
    score: Annotated[float, Field(ge=0, le=1)] | None = None
    rating: str | None = Field(
        default=None,
        description="up, good, thumbs_up, positive; or down, bad, thumbs_down, negative.",
    )
    comment: str | None = Field(default=None, description="Kept up to 2000 characters.")


# ------------------------------------------------------------------ responses


class ErrorDetail(BaseModel):
    message: str
    type: str = Field(examples=["invalid_request_error"])
    param: str | None = Field(description="The offending field, e.g. messages[0].content.")
    code: str | None


class ErrorBody(BaseModel):
    """OpenAI's error shape, on every error of ``/v1`` and ``/api``."""

    error: ErrorDetail


class Usage(_Open):
    prompt_tokens: int
    completion_tokens: int | None = None
    total_tokens: int


class AnswerMessage(_Open):
    role: str
    content: str | None = None


class ChatChoice(_Open):
    index: int
    message: AnswerMessage
    finish_reason: str | None = None


class ChatCompletion(_Open):
    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage | None = None


class TextChoice(_Open):
    index: int
    text: str
    finish_reason: str | None = None


class TextCompletion(_Open):
    id: str
    object: Literal["text_completion"]
    created: int
    model: str
    choices: list[TextChoice]
    usage: Usage | None = None


class Embedding(_Open):
    object: Literal["embedding"]
    index: int
    embedding: list[float] | str = Field(description="Floats, or base64 of float32s.")


class EmbeddingList(_Open):
    object: Literal["list"]
    data: list[Embedding]
    model: str
    usage: Usage


class ModelCard(_Open):
    id: str
    object: Literal["model"]
    created: int
    owned_by: str


class ModelList(_Open):
    object: Literal["list"]
    data: list[ModelCard]


class FeedbackAck(_Open):
    object: Literal["feedback"]
    request_id: str
    recorded: bool


class Health(_Open):
    status: str = Field(examples=["ok"])
    ledger_pending: int = Field(description="Usage rows not yet written to the store.")
