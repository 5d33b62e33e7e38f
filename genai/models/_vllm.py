"""``vllm``: vLLM's in-process async engine on CUDA GPUs, with LoRA adapters chosen per
request (``enable_lora``; each request names its adapter with a ``LoRARequest``).

The mappings between this platform's types and vLLM's are plain functions
(:func:`sampling_params`, :func:`output_chunk`, :func:`encode`), testable without vLLM.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import itertools
import logging
import os
import uuid
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from genai.errors import (
    BackendError,
    ConfigError,
    GenAIError,
    MissingDependencyError,
    NotFoundError,
    ValidationError,
)
from genai.models._adapter_chat import AdapterChat, read_adapter_chat, template_text
from genai.models._protocols import collect
from genai.models._tools import (
    parser_for_template,
    request_schema,
    template_messages,
    template_supports_tools,
    tool_call_stream,
)
from genai.models._types import (
    ChatMessage,
    FinishReason,
    Generation,
    GenerationChunk,
    GenerationRequest,
    LoadedAdapter,
    SamplingParams,
    TokenLogprob,
    TopLogprob,
)

__all__ = [
    "VLLMBackend",
    "chat_messages",
    "encode",
    "finish_reason",
    "output_chunk",
    "require_cuda",
    "sampling_params",
]

log = logging.getLogger(__name__)
T = TypeVar("T")
_NAME = "vllm"
_FINISH: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "abort": "cancelled",
    "error": "cancelled",
}


class VLLMBackend:
    """Serves ``model`` (a directory or a Hugging Face id) with vLLM on this machine's GPUs.

    ``adapters`` (name → LoRA directory) load at start; ``max_loras`` adapters fit in one
    batch, each of rank ≤ ``max_lora_rank``. ``gpu_memory_utilization``, ``max_model_len``
    and ``dtype`` are vLLM's engine arguments; ``served_name`` is the base model's name.

    A local adapter directory that carries the tokenizer it was trained with (or a
    ``chat_template.jinja``) has requests to it rendered with that chat template, as in
    training; one whose tokenizer has another vocabulary than the base's is refused.
    """

    def __init__(
        self,
        *,
        model: str,
        adapters: Mapping[str, str] | None = None,
        max_loras: int = 8,
        max_lora_rank: int = 64,
        gpu_memory_utilization: float = 0.9,
        max_model_len: int | None = None,
        dtype: str = "auto",
        served_name: str | None = None,
    ) -> None:
        if max_loras < 1 or max_lora_rank < 1:
            raise ValidationError(
                "max_loras and max_lora_rank must be at least 1", field="max_loras"
            )
        if not 0.0 < gpu_memory_utilization <= 1.0:
            raise ValidationError(
                f"gpu_memory_utilization must be in (0, 1], not {gpu_memory_utilization}",
                field="gpu_memory_utilization",
            )
        self._model = str(model)
        self._served = served_name or (
            os.path.basename(self._model.rstrip("/")) if os.path.isdir(self._model) else self._model
        )
        self._engine_args = {
            "model": self._model,
            "served_model_name": self._served,
            "enable_lora": True,
            "max_loras": max_loras,
            "max_lora_rank": max_lora_rank,
            "dtype": dtype,
            "gpu_memory_utilization": gpu_memory_utilization,
            "max_model_len": max_model_len,
        }
        self._initial = {name: str(path) for name, path in (adapters or {}).items()}
        self._window = max_model_len
        self._engine: Any = None
        self._tokenizer: Any = None
        self._sampling_cls: Any = None
        self._lora_cls: Any = None
        self._adapters: dict[str, tuple[int, LoadedAdapter]] = {}
        self._chats: dict[str, AdapterChat] = {}  # adapters that carry their chat template
        self._ids = itertools.count(1)

    @property
    def model_id(self) -> str:
        return self._served

    @property
    def context_window(self) -> int | None:
        return self._window

    async def start(self) -> None:
        """Build the engine (loads the weights on the GPUs), then the initial adapters."""
        if self._engine is not None:
            return
        vllm, self._lora_cls = _import_vllm()
        require_cuda()
        self._sampling_cls = vllm.SamplingParams
        try:
            args = vllm.AsyncEngineArgs(**self._engine_args)
            self._engine = vllm.AsyncLLMEngine.from_engine_args(args)
        except ValueError as exc:
            raise ConfigError(f"vLLM refused the engine options for {self._model}: {exc}") from exc
        except Exception as exc:
            raise BackendError(
                f"vLLM could not start {self._model}: {_first_line(exc)}", backend=_NAME
            ) from exc
        try:
            tokenizer = self._engine.get_tokenizer()  # a coroutine before vLLM's V1 engine
            self._tokenizer = await tokenizer if inspect.isawaitable(tokenizer) else tokenizer
            config = getattr(self._engine, "model_config", None)
            self._window = getattr(config, "max_model_len", None) or self._window
            for name, path in self._initial.items():
                await self.load_adapter(name, path)
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        engine, self._engine = self._engine, None
        if engine is not None:
            stop = getattr(engine, "shutdown", None) or getattr(
                engine, "shutdown_background_loop", None
            )
            if stop is not None:
                stop()

    async def count_tokens(self, request: GenerationRequest) -> int:
        self._require_engine()
        return len(encode(self._tokenizer, request, chat=self._chats.get(request.adapter or "")))

    async def generate(self, request: GenerationRequest) -> Generation:
        return await collect(self.stream(request))

    async def stream(self, request: GenerationRequest) -> AsyncGenerator[GenerationChunk, None]:
        """vLLM's generation, with the same tool calling (chat template, parsers, forced
        calls) and structured output (vLLM's own structured-output backend) as the
        transformers backend."""
        self._require_engine()
        calls = request.tools and request.tool_choice != "none"
        chat = self._chats.get(request.adapter or "")
        template = (
            chat.template_for(tools=True)
            if chat is not None
            else template_text(getattr(self._tokenizer, "chat_template", None), tools=True)
        )
        if calls and not template_supports_tools(template):
            raise ValidationError(
                f"model {self.model_id}'s chat template does not render tools: serve a model "
                "trained for tool calling",
                field="tools",
            )
        chunks = self._stream(request)
        if calls:
            auto = request.tool_choice in (None, "auto")
            parser = parser_for_template(template) if auto else None
            chunks = tool_call_stream(chunks, request, parser)
        try:
            async for chunk in chunks:
                yield chunk
        finally:
            await chunks.aclose()

    async def _stream(self, request: GenerationRequest) -> AsyncGenerator[GenerationChunk, None]:
        engine = self._require_engine()
        lora = self._lora(request.adapter)
        prompt_ids = encode(self._tokenizer, request, chat=self._chats.get(request.adapter or ""))
        params = sampling_params(
            request.params,
            self._sampling_cls,
            prompt_tokens=len(prompt_ids),
            context_window=self._window,
            extras=request_extras(request),
        )
        first = True
        scored = 0
        sent = ""
        outputs = engine.generate(
            {"prompt_token_ids": prompt_ids}, params, uuid.uuid4().hex, lora_request=lora
        )
        try:
            async for output in outputs:
                done = output.outputs[0]
                chunk = output_chunk(
                    sent=sent,
                    text=done.text,
                    finish=done.finish_reason,
                    prompt_tokens=len(prompt_ids),
                    completion_tokens=len(done.token_ids),
                )
                sent = done.text
                if request.logprobs is not None:
                    entries = token_logprobs(done.token_ids, done.logprobs, request.logprobs)
                    chunk.logprobs, scored = entries[scored:], len(entries)
                if first and request.echo:
                    chunk.prompt_text = self._tokenizer.decode(prompt_ids)
                    chunk.prompt_logprobs = prompt_logprobs(
                        prompt_ids, getattr(output, "prompt_logprobs", None), request
                    )
                first = False
                if chunk.finish_reason == "cancelled":
                    raise BackendError(
                        f"vLLM ended the request early ({done.finish_reason}): retry it",
                        backend=_NAME,
                        retryable=True,
                    )
                if chunk.text or chunk.finish_reason:
                    yield chunk
                if chunk.finish_reason:
                    return
        except GenAIError:
            raise
        except Exception as exc:
            if _is_bad_request(exc):
                raise ValidationError(f"vLLM refused the request: {_first_line(exc)}") from exc
            raise BackendError(
                f"vLLM failed: {_first_line(exc)}; check the server's log", backend=_NAME
            ) from exc
        finally:
            await outputs.aclose()  # aborts the request in the engine when the caller left
        raise BackendError(
            "vLLM's output ended without a finish reason: retry the request",
            backend=_NAME,
            retryable=True,
        )

    # ------------------------------------------------------------ adapters

    def adapters(self) -> list[LoadedAdapter]:
        return sorted((info for _, info in self._adapters.values()), key=lambda a: a.name)

    async def load_adapter(self, name: str, path: str, *, replace: bool = False) -> LoadedAdapter:
        engine = self._require_engine()
        if not name or name == self.model_id:
            raise ValidationError(f"adapter name {name!r} is reserved or empty", field="lora_name")
        if name in self._adapters and not replace:
            raise ValidationError(
                f"an adapter named {name!r} is already loaded: unload it first, or reload it "
                "with load_inplace",
                field="lora_name",
            )
        chat = None
        if os.path.isdir(path):  # vLLM resolves other paths (a hub id) itself
            chat = await asyncio.to_thread(read_adapter_chat, Path(path), self._tokenizer)
        lora_id = next(self._ids)
        try:
            await engine.add_lora(self._lora_cls(name, lora_id, str(path)))
        except Exception as exc:
            raise ValidationError(
                f"vLLM could not load adapter {name!r} from {path}: {_first_line(exc)}",
                field="lora_path",
            ) from exc
        old = self._adapters.get(name)
        info = LoadedAdapter(name=name, path=str(path), base_model=self.model_id)
        self._adapters[name] = (lora_id, info)
        if chat is None:
            self._chats.pop(name, None)
        else:
            self._chats[name] = chat
        if old is not None:  # requests now name the new id; the old one can go
            await engine.remove_lora(old[0])
        return info

    async def unload_adapter(self, name: str) -> None:
        engine = self._require_engine()
        if name not in self._adapters:
            raise NotFoundError(f"no adapter named {name!r} is loaded")
        lora_id, _ = self._adapters.pop(name)
        self._chats.pop(name, None)
        await engine.remove_lora(lora_id)

    def _lora(self, adapter: str | None) -> Any:
        if adapter is None or adapter == self.model_id:
            return None
        if adapter not in self._adapters:
            raise NotFoundError(f"the model {adapter!r} does not exist")
        lora_id, info = self._adapters[adapter]
        return self._lora_cls(info.name, lora_id, info.path)

    def _require_engine(self) -> Any:
        if self._engine is None:
            raise ValidationError("the backend is not started: call start() first")
        return self._engine


# ------------------------------------------------------------ pure mappings


def request_extras(request: GenerationRequest) -> dict[str, Any]:
    """vLLM's sampling parameters for what a request asks beyond sampling: a JSON schema to
    follow (structured output, forced tool calls) and log-probabilities."""
    extras: dict[str, Any] = {}
    wanted = request_schema(request)
    if wanted is not None:
        extras.update(structured_output(wanted[0]))
    if request.logprobs is not None:
        extras["logprobs"] = request.logprobs
        if request.echo:
            extras["prompt_logprobs"] = request.logprobs
    return extras


def structured_output(schema: dict[str, Any]) -> dict[str, Any]:
    """The keyword that asks vLLM for JSON valid against ``schema``: ``structured_outputs``
    (vLLM 0.10.2 and later) or ``guided_decoding`` (before)."""
    params = importlib.import_module("vllm.sampling_params")
    if hasattr(params, "StructuredOutputsParams"):
        return {"structured_outputs": params.StructuredOutputsParams(json=schema)}
    return {"guided_decoding": params.GuidedDecodingParams(json=schema)}


def _entry(token: int, scores: Mapping[int, Any] | None, top: int) -> TokenLogprob:
    """One token's entry from vLLM's ``{token id: Logprob(logprob, rank, decoded_token)}``."""
    scores = scores or {}
    chosen = scores.get(token)
    ranked = sorted(
        ((t, s) for t, s in scores.items() if getattr(s, "rank", None) is not None),
        key=lambda item: item[1].rank,
    )[:top]
    return TokenLogprob(
        token=str(getattr(chosen, "decoded_token", "") or ""),
        token_id=token,
        logprob=float(getattr(chosen, "logprob", float("-inf"))),
        top=[
            TopLogprob(token=str(s.decoded_token or ""), token_id=t, logprob=float(s.logprob))
            for t, s in ranked
        ],
    )


def token_logprobs(
    token_ids: Sequence[int], scores: Sequence[Mapping[int, Any]] | None, top: int
) -> list[TokenLogprob]:
    """The generated tokens' entries from vLLM's cumulative output."""
    return [_entry(t, s, top) for t, s in zip(token_ids, scores or [], strict=False)]


def prompt_logprobs(
    prompt_ids: Sequence[int],
    scores: Sequence[Mapping[int, Any] | None] | None,
    request: GenerationRequest,
) -> list[TokenLogprob | None] | None:
    """The prompt's entries (echo); the first token has none."""
    if request.logprobs is None or scores is None:
        return None
    top = request.logprobs
    return [
        None if i == 0 or s is None else _entry(t, s, top)
        for i, (t, s) in enumerate(zip(prompt_ids, scores, strict=False))
    ]


def sampling_params(
    params: SamplingParams,
    factory: Callable[..., T],
    *,
    prompt_tokens: int,
    context_window: int | None,
    extras: Mapping[str, Any] | None = None,
) -> T:
    """vLLM's ``SamplingParams`` (built by ``factory``) for ``params``; without
    ``max_tokens``, the generation may fill the rest of the context window."""
    max_tokens = params.max_tokens
    if context_window is not None:
        room = context_window - prompt_tokens
        if room <= 0:
            raise ValidationError(
                f"the prompt has {prompt_tokens} tokens, which fills this model's context "
                f"window of {context_window} tokens: shorten it",
                field="messages",
            )
        if max_tokens is not None and max_tokens > room:
            raise ValidationError(
                f"this model's context window is {context_window} tokens, but the request asks "
                f"for {prompt_tokens + max_tokens} ({prompt_tokens} in the prompt + {max_tokens} "
                "max_tokens): shorten the prompt or lower max_tokens",
                field="max_tokens",
            )
        max_tokens = max_tokens or room
    return factory(
        n=1,
        max_tokens=max_tokens,
        temperature=params.temperature,
        top_p=params.top_p,
        stop=list(params.stop),
        seed=params.seed,
        presence_penalty=params.presence_penalty,
        frequency_penalty=params.frequency_penalty,
        skip_special_tokens=True,
        **(extras or {}),
    )


def finish_reason(value: str) -> FinishReason:
    """This platform's finish reason for vLLM's (``stop``, ``length``, ``abort``, ``error``)."""
    return _FINISH.get(value, "stop")


def output_chunk(
    *, sent: str, text: str, finish: str | None, prompt_tokens: int, completion_tokens: int
) -> GenerationChunk:
    """The chunk for one of vLLM's cumulative outputs, given the text ``sent`` before it;
    the last one carries the finish reason and usage."""
    delta = text[len(sent) :]
    if finish is None:
        return GenerationChunk(text=delta)
    return GenerationChunk(
        text=delta,
        finish_reason=finish_reason(finish),
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
    )


def chat_messages(messages: Sequence[ChatMessage]) -> list[dict[str, str]]:
    """Messages as Hugging Face chat templates take them."""
    return [{"role": m.role, "content": m.text()} for m in messages]


def encode(
    tokenizer: Any, request: GenerationRequest, *, chat: AdapterChat | None = None
) -> list[int]:
    """The prompt's token ids: token ids as they are, a prompt as is, messages through the
    chat template (with the request's tools); ``chat``, the adapter's own tokenizer and
    template where the request's adapter carries one."""
    if request.prompt_ids is not None:
        return list(request.prompt_ids)
    if request.messages is None:
        return list(tokenizer.encode(request.prompt or ""))
    tools = request.tools if request.tools and request.tool_choice != "none" else None
    options: dict[str, Any] = {"tools": tools} if tools else {}
    if chat is not None:
        tokenizer = chat.tokenizer or tokenizer
        options["chat_template"] = chat.template_for(tools=bool(tools))
    try:
        text = tokenizer.apply_chat_template(
            template_messages(request.messages) if tools else chat_messages(request.messages),
            add_generation_prompt=True,
            **options,
            tokenize=False,
        )
    except ValueError as exc:  # transformers: the tokenizer has no chat template
        raise ValidationError(
            f"this model has no chat template ({_first_line(exc)}): use /v1/completions with "
            "a prompt",
            field="messages",
        ) from exc
    return list(tokenizer.encode(text, add_special_tokens=False))


# ------------------------------------------------------------ environment


def _import_vllm() -> tuple[Any, Any]:
    try:
        vllm = importlib.import_module("vllm")
    except ImportError:
        raise MissingDependencyError("vllm", extra="gpu", purpose="the vllm backend") from None
    try:
        lora_request = importlib.import_module("vllm.lora.request").LoRARequest
    except (ImportError, AttributeError) as exc:
        raise ConfigError(
            f"the installed vllm lacks LoRARequest ({exc}): install "
            "'genai-platform[gpu]' for a supported version"
        ) from exc
    return vllm, lora_request


def require_cuda() -> None:
    """Raise unless torch sees a CUDA GPU."""
    try:
        import torch
    except ImportError:
        raise MissingDependencyError("torch", extra="gpu", purpose="the vllm backend") from None
    if not torch.cuda.is_available():
        raise ConfigError(
            "the vllm backend needs a CUDA GPU, and torch sees none on this machine: use "
            "--backend transformers (runs on CPU), or --backend openai with a remote server"
        )


def _is_bad_request(error: Exception) -> bool:
    """vLLM's request validation errors (``VLLMValidationError`` is a ValueError in most
    versions, a ``VLLMClientError`` in others)."""
    names = {cls.__name__ for cls in type(error).__mro__}
    return isinstance(error, ValueError) or bool(names & {"VLLMValidationError", "VLLMClientError"})


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0][:300] if lines else type(error).__name__
