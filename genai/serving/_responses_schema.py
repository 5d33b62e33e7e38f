"""OpenAI's Responses API (``POST /v1/responses``) as typed models: what a request may hold
here, and the shape of the answer (for the OpenAPI document).

A request is checked in two steps. :func:`refuse_unsupported` first refuses, by name, what
OpenAI's API has and this platform cannot honour (built-in tools such as ``web_search``,
``background``, ``conversation``, reasoning summaries, item types other than messages and
function calls): a clear 400 rather than a silent difference. Then the body is validated
against :class:`ResponsesRequest` in pydantic's strict mode, whose unknown top-level fields
are refused as OpenAI refuses them. Each server words pydantic's errors its own way (the
gateway as for chat, ``genai serve`` as vLLM does).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag

from genai.errors import ValidationError

__all__ = [
    "ResponseDeleted",
    "ResponseObject",
    "ResponsesRequest",
    "refuse_unsupported",
]

MAX_TOKENS = 10_000_000
_NAME = r"^[A-Za-z0-9_-]{1,64}$"


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class _Open(BaseModel):
    """Items and parts may carry fields of their own (ids and statuses of items a client
    sends back from an earlier answer)."""

    model_config = ConfigDict(extra="allow", strict=True)


# ------------------------------------------------------------------ content parts


class InputText(_Open):
    type: Literal["input_text"]
    text: str


class OutputText(_Open):
    type: Literal["output_text"]
    text: str


class InputRefusal(_Open):
    type: Literal["refusal"]
    refusal: str


class InputImage(_Open):
    """An image by URL (or a ``data:`` URL); uploaded files (``file_id``) are not served."""

    type: Literal["input_image"]
    image_url: str
    detail: Literal["auto", "low", "high"] | None = None


class InputFile(_Open):
    type: Literal["input_file"]
    file_data: str | None = None
    file_id: str | None = None
    filename: str | None = None


Part = Annotated[
    InputText | OutputText | InputRefusal | InputImage | InputFile, Field(discriminator="type")
]

# ------------------------------------------------------------------ input items


class MessageItem(_Open):
    """A message; ``type`` may be left out (OpenAI's "easy" input message)."""

    type: Literal["message"] | None = None
    role: Literal["user", "system", "developer", "assistant"]
    content: str | list[Part]


class FunctionCallItem(_Open):
    """A call the model made (sent back with its output, as the conversation so far)."""

    type: Literal["function_call"]
    call_id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    arguments: str


class FunctionCallOutputItem(_Open):
    """What the caller's function returned for the call ``call_id`` (text: a chat target's
    tool message holds no images)."""

    type: Literal["function_call_output"]
    call_id: str = Field(min_length=1)
    output: str | list[InputText]


def _item_kind(value: Any) -> str:
    if isinstance(value, dict):
        kind = value.get("type")
        return "message" if kind is None else str(kind)
    return "message"


InputItem = Annotated[
    Annotated[MessageItem, Tag("message")]
    | Annotated[FunctionCallItem, Tag("function_call")]
    | Annotated[FunctionCallOutputItem, Tag("function_call_output")],
    Discriminator(_item_kind),
]

# ------------------------------------------------------------------ tools and formats


class ResponsesTool(_Open):
    """A function the model may call (the Responses API's flat shape)."""

    type: Literal["function"]
    name: str = Field(pattern=_NAME)
    description: str | None = None
    parameters: dict[str, Any] | None = Field(default=None, description="A JSON Schema.")
    strict: bool | None = None


class FunctionChoice(_Closed):
    type: Literal["function"]
    name: str = Field(min_length=1)


class TextFormatText(_Closed):
    type: Literal["text"]


class TextFormatJsonObject(_Closed):
    type: Literal["json_object"]


class TextFormatJsonSchema(_Closed):
    type: Literal["json_schema"]
    name: str = Field(pattern=_NAME)
    schema_: dict[str, Any] = Field(alias="schema", description="A JSON Schema.")
    description: str | None = None
    strict: bool | None = None


TextFormat = Annotated[
    TextFormatText | TextFormatJsonObject | TextFormatJsonSchema, Field(discriminator="type")
]


class TextConfig(_Closed):
    format: TextFormat | None = None


class ReasoningConfig(_Closed):
    effort: Literal["none", "minimal", "low", "medium", "high"] | None = None


class ResponsesStreamOptions(_Closed):
    include_obfuscation: bool | None = None


Includable = Literal[
    "message.output_text.logprobs",
    "reasoning.encrypted_content",
    "message.input_image.image_url",
    "computer_call_output.output.image_url",
    "file_search_call.results",
    "web_search_call.results",
    "web_search_call.action.sources",
    "code_interpreter_call.outputs",
]
MetadataKey = Annotated[str, Field(max_length=64)]
MetadataValue = Annotated[str, Field(max_length=512)]

# ------------------------------------------------------------------ the request


class ResponsesRequest(_Closed):
    """``POST /v1/responses``. ``input`` may be left out only with ``previous_response_id``
    (the conversation goes on from a stored response)."""

    model: str = Field(min_length=1, description="A deployment of the project (or name:adapter).")
    input: str | list[InputItem] | None = Field(
        default=None, description="A user message as text, or a list of input items."
    )
    instructions: str | None = Field(default=None, description="Sent as a system message.")
    previous_response_id: str | None = Field(
        default=None,
        min_length=1,
        description="Go on from a stored response: its input and output come first.",
    )
    store: bool | None = Field(default=None, description="Keep this response (default true).")
    metadata: Annotated[dict[MetadataKey, MetadataValue], Field(max_length=16)] | None = None
    stream: bool | None = Field(default=None, description="Answer as server-sent events.")
    stream_options: ResponsesStreamOptions | None = None
    tools: list[ResponsesTool] | None = None
    tool_choice: Literal["none", "auto", "required"] | FunctionChoice | None = None
    parallel_tool_calls: bool | None = None
    text: TextConfig | None = None
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    top_p: Annotated[float, Field(ge=0, le=1)] | None = None
    max_output_tokens: Annotated[int, Field(ge=1, le=MAX_TOKENS)] | None = None
    top_logprobs: Annotated[int, Field(ge=0, le=20)] | None = None
    include: list[Includable] | None = None
    reasoning: ReasoningConfig | None = None
    service_tier: Literal["auto", "default", "flex", "scale", "priority"] | None = None
    truncation: Literal["disabled"] | None = None
    background: Literal[False] | None = None
    user: str | None = None
    safety_identifier: str | None = None
    prompt_cache_key: str | None = None


# ------------------------------------------------------------------ refusals by name

#: OpenAI's request fields this platform does not serve, and why.
_UNSUPPORTED_FIELDS = {
    "conversation": "conversations are not stored here; chain answers with "
    "'previous_response_id' instead",
    "prompt": "OpenAI's stored prompts are not served here",
    "max_tool_calls": "built-in tools are not run here, so there is nothing to limit",
    "context_management": "context compaction is not done here",
    "moderation": "moderation policies are not applied here",
    "prompt_cache_retention": "prompt caching is not configurable here",
    "prompt_cache_options": "prompt caching is not configurable here",
}
_BUILT_IN_TOOLS = {
    "web_search",
    "web_search_preview",
    "web_search_2025_08_26",
    "web_search_preview_2025_03_11",
    "file_search",
    "computer_use_preview",
    "computer_use",
    "code_interpreter",
    "image_generation",
    "mcp",
    "local_shell",
    "shell",
    "apply_patch",
    "custom",
    "tool_search",
}


def refuse_unsupported(body: dict[str, Any]) -> None:
    """Refuse, naming the field, what OpenAI's Responses API has and this platform does not
    do. Everything else is left to the model (:class:`ResponsesRequest`)."""
    for name, why in _UNSUPPORTED_FIELDS.items():
        if body.get(name) is not None:
            raise ValidationError(f"'{name}' is not supported: {why}", field=name)
    if body.get("background") is True:
        raise ValidationError(
            "'background' is not supported: responses are answered while the request waits "
            "(stream them with 'stream': true)",
            field="background",
        )
    if body.get("truncation") == "auto":
        raise ValidationError(
            "'truncation': 'auto' is not supported: the conversation is never cut here; "
            "send 'disabled' (the default)",
            field="truncation",
        )
    _refuse_tools(body)
    _refuse_text_and_reasoning(body)
    _refuse_items(body.get("input"))


def _refuse_tools(body: dict[str, Any]) -> None:
    tools = body.get("tools")
    for i, tool in enumerate(tools if isinstance(tools, list) else []):
        kind = tool.get("type") if isinstance(tool, dict) else None
        if isinstance(kind, str) and kind != "function":
            what = "a built-in tool" if kind in _BUILT_IN_TOOLS else "a tool type"
            raise ValidationError(
                f"'tools[{i}]' is {what} ({kind!r}) that this platform does not run: only "
                "function tools ({'type': 'function', 'name': ...}) are supported",
                field=f"tools[{i}].type",
            )
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") not in (None, "function"):
        raise ValidationError(
            f"'tool_choice' of type {choice.get('type')!r} is not supported: give 'none', "
            "'auto', 'required' or {'type': 'function', 'name': ...}",
            field="tool_choice",
        )


def _refuse_text_and_reasoning(body: dict[str, Any]) -> None:
    text = body.get("text")
    if isinstance(text, dict) and text.get("verbosity") is not None:
        raise ValidationError(
            "'text.verbosity' is not supported: the targets here answer at their own length",
            field="text.verbosity",
        )
    reasoning = body.get("reasoning")
    if isinstance(reasoning, dict):
        for name in ("summary", "generate_summary"):
            if reasoning.get(name) is not None:
                raise ValidationError(
                    f"'reasoning.{name}' is not supported: reasoning summaries are not "
                    "produced here",
                    field=f"reasoning.{name}",
                )


_ITEMS = ("message", "function_call", "function_call_output")
_KINDS = {dict: "an object", int: "an integer", float: "a number", bool: "a boolean"}


def _refuse_items(items: Any) -> None:
    if items is not None and not isinstance(items, str | list):
        given = _KINDS.get(type(items), type(items).__name__)
        raise ValidationError(
            f"'input' must be a string or an array of input items, not {given}", field="input"
        )
    for i, item in enumerate(items if isinstance(items, list) else []):
        kind = item.get("type") if isinstance(item, dict) else None
        if isinstance(kind, str) and kind not in _ITEMS:
            raise ValidationError(
                f"'input[{i}]' is an item of type {kind!r}, which is not supported here: "
                "input items are messages, 'function_call' and 'function_call_output'",
                field=f"input[{i}].type",
            )
        content = item.get("content") if isinstance(item, dict) else None
        for j, part in enumerate(content if isinstance(content, list) else []):
            if (
                isinstance(part, dict)
                and part.get("type") == "input_image"
                and part.get("image_url") is None
                and part.get("file_id") is not None
            ):
                raise ValidationError(
                    f"'input[{i}].content[{j}]' names an uploaded file (file_id), which "
                    "is not served here: give the image as 'image_url' (a URL or a data: "
                    "URL)",
                    field=f"input[{i}].content[{j}].file_id",
                )


# ------------------------------------------------------------------ answers (documented)


class ResponseUsage(_Open):
    input_tokens: int
    output_tokens: int
    total_tokens: int
    input_tokens_details: dict[str, int] | None = None
    output_tokens_details: dict[str, int] | None = None


class OutputMessage(_Open):
    type: Literal["message"]
    id: str
    role: Literal["assistant"]
    status: str
    content: list[dict[str, Any]] = Field(description="output_text and refusal parts.")


class OutputFunctionCall(_Open):
    type: Literal["function_call"]
    id: str
    call_id: str
    name: str
    arguments: str = Field(description="The arguments, as JSON text.")
    status: str


class ResponseObject(_Open):
    """A model response (``object: "response"``)."""

    id: str = Field(examples=["resp_3f2a9c"])
    object: Literal["response"]
    created_at: int
    status: Literal["completed", "incomplete", "failed", "in_progress"]
    model: str
    output: list[OutputMessage | OutputFunctionCall]
    usage: ResponseUsage | None = None
    error: dict[str, Any] | None = None
    incomplete_details: dict[str, Any] | None = None
    previous_response_id: str | None = None


class ResponseDeleted(_Open):
    id: str
    object: Literal["response.deleted"]
    deleted: bool
