"""What LLM backends take and give: requests, sampling parameters, generations, chunks."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "ChatMessage",
    "ContextPassage",
    "FinishReason",
    "Generation",
    "GenerationChunk",
    "GenerationRequest",
    "LoadedAdapter",
    "SamplingParams",
    "ToolCall",
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

    max_tokens: int | None = Field(default=None, ge=1)
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


class GenerationRequest(BaseModel):
    """One generation: a text ``prompt`` or chat ``messages``, for the base or an adapter."""

    prompt: str | None = None
    messages: list[ChatMessage] | None = None
    adapter: str | None = None
    params: SamplingParams = Field(default_factory=SamplingParams)
    tools: list[dict[str, Any]] | None = None
    context: list[ContextPassage] | None = None

    @model_validator(mode="after")
    def _one_input(self) -> GenerationRequest:
        if (self.prompt is None) == (self.messages is None):
            raise ValueError("give exactly one of prompt and messages")
        return self

    @property
    def is_chat(self) -> bool:
        return self.messages is not None


class Generation(BaseModel):
    text: str
    finish_reason: FinishReason
    prompt_tokens: int
    completion_tokens: int
    tool_calls: list[ToolCall] | None = None


class GenerationChunk(BaseModel):
    """A piece of a streamed generation; the last one carries ``finish_reason`` and usage."""

    text: str = ""
    finish_reason: FinishReason | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    tool_calls: list[ToolCall] | None = None


class LoadedAdapter(BaseModel):
    name: str
    path: str
    base_model: str
