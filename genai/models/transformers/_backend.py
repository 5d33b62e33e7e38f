"""``transformers``: a local Hugging Face causal LM with LoRA adapters chosen per request."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncGenerator, Callable, Mapping
from pathlib import Path
from typing import Any

from genai.errors import (
    BackendError,
    ConflictError,
    MissingDependencyError,
    NotFoundError,
    ValidationError,
)
from genai.models._adapter_chat import AdapterChat, read_adapter_chat, template_text
from genai.models._protocols import collect
from genai.models._text import IncrementalDetokenizer, StopMatcher
from genai.models._tools import (
    ToolParser,
    parser_for_template,
    template_messages,
    template_supports_tools,
    tool_call_stream,
)
from genai.models._types import (
    Generation,
    GenerationChunk,
    GenerationRequest,
    LoadedAdapter,
)
from genai.models.transformers._engine import BASE, Engine, Row
from genai.models.transformers._guided import Guides

__all__ = ["TransformersBackend"]

log = logging.getLogger(__name__)


class TransformersBackend:
    """Serves a local model directory; adapters load and unload at run time.

    Options are the constructor's keyword arguments: ``model`` (a directory), ``adapters``
    (name → directory, loaded at start), ``device`` (``auto``, ``cpu``, ``cuda``),
    ``dtype`` (``auto``, ``float32``, ``float16``, ``bfloat16``, ``float64``),
    ``max_batch_size``, ``max_wait_ms``, ``served_name``, ``chat_template`` (a Jinja
    template used when the tokenizer has none) and ``tool_parser`` (``hermes``,
    ``llama3_json`` or ``mistral``; by default the one whose format the template writes).

    An adapter directory that carries the tokenizer it was trained with (or a
    ``chat_template.jinja``) has requests to it rendered with that chat template, not the
    base's: training and serving see the same prompts. One whose tokenizer has another
    vocabulary than the base model's is refused.

    Beyond plain generation it honours ``response_format`` (JSON, JSON Schema) and forced
    tool calls by constrained decoding (:mod:`._guided`), ``tools`` through the chat
    template, log-probabilities (with ``echo``, the prompt's too) and token-id prompts.
    """

    def __init__(
        self,
        *,
        model: str | Path,
        adapters: Mapping[str, str | Path] | None = None,
        device: str = "auto",
        dtype: str = "auto",
        max_batch_size: int = 16,
        max_wait_ms: float = 5.0,
        served_name: str | None = None,
        chat_template: str | None = None,
        tool_parser: str | None = None,
        on_step: Callable[[int, float], None] | None = None,
    ) -> None:
        self._path = Path(model).expanduser()
        if not (self._path / "config.json").is_file():
            raise ValidationError(
                f"{self._path} is not a Hugging Face model directory (no config.json)",
                field="model",
            )
        if max_batch_size < 1:
            raise ValidationError("max_batch_size must be at least 1", field="max_batch_size")
        self._initial = {name: str(p) for name, p in (adapters or {}).items()}
        self._device_name = device
        self._dtype_name = dtype
        self._max_batch = max_batch_size
        self._max_wait_s = max_wait_ms / 1000
        self._served_name = served_name or _model_name(self._path)
        self._chat_template = chat_template
        self._tool_parser_name = tool_parser
        parser_for_template(None, tool_parser)  # an unknown name fails here, not per request
        self._on_step = on_step
        self._guides: Guides | None = None
        self._adapters: dict[str, LoadedAdapter] = {}
        self._chats: dict[str, AdapterChat] = {}  # adapters that carry their chat template
        self._engine: Engine | None = None
        self._tokenizer: Any = None
        self._window: int | None = None

    # ------------------------------------------------------------ lifecycle

    @property
    def model_id(self) -> str:
        return self._served_name

    @property
    def context_window(self) -> int | None:
        return self._window

    async def start(self) -> None:
        if self._engine is not None:
            return
        await asyncio.to_thread(self._load)
        for name, path in self._initial.items():
            await self.load_adapter(name, path)

    async def close(self) -> None:
        if self._engine is not None:
            await asyncio.to_thread(self._engine.stop)
            self._engine = None

    def _load(self) -> None:
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError as error:
            raise MissingDependencyError(
                error.name or "transformers", extra="llm", purpose="the transformers backend"
            ) from None
        device = torch.device(
            ("cuda" if torch.cuda.is_available() else "cpu")
            if self._device_name == "auto"
            else self._device_name
        )
        dtype = _dtype(torch, self._dtype_name, device)
        self._tokenizer = AutoTokenizer.from_pretrained(self._path)
        if self._chat_template:
            self._tokenizer.chat_template = self._chat_template
        model = AutoModelForCausalLM.from_pretrained(self._path, dtype=dtype)
        model.to(device)  # type: ignore[arg-type]
        model.eval()  # type: ignore[no-untyped-call]
        config = model.config
        self._window = int(getattr(config, "max_position_embeddings", 0) or 0) or None
        eos = model.generation_config.eos_token_id if model.generation_config else None
        eos_ids = {eos} if isinstance(eos, int) else set(eos or [])
        if self._tokenizer.eos_token_id is not None:
            eos_ids.add(self._tokenizer.eos_token_id)
        self._engine = Engine(
            model,
            eos_ids=eos_ids,
            max_batch_size=self._max_batch,
            max_wait_s=self._max_wait_s,
            device=device,
            vocab_size=int(config.vocab_size),
            on_step=self._on_step,
            token_text=self._token_text,
        )
        self._guides = Guides(self._tokenizer)
        self._engine.supports_joining = not getattr(config, "sliding_window", None)
        self._engine.start()
        log.info("loaded %s on %s (%s)", self._path, device, dtype)

    # ------------------------------------------------------------ generation

    async def count_tokens(self, request: GenerationRequest) -> int:
        return len(self._encode(request))

    async def generate(self, request: GenerationRequest) -> Generation:
        return await collect(self.stream(request))

    async def stream(self, request: GenerationRequest) -> AsyncGenerator[GenerationChunk, None]:
        engine = self._require_engine()
        parser = self._tool_parser(request)
        adapter = self._adapter_name(request.adapter)
        prompt_ids = self._encode(request)
        max_new = self._max_new(len(prompt_ids), request.params.max_tokens)
        guide = self._guides.for_request(request) if self._guides else None
        echo = self._echo(request, prompt_ids)
        if request.echo and request.logprobs is not None:
            top = request.logprobs
            echo["prompt_logprobs"] = await asyncio.wrap_future(
                engine.call(lambda: engine.score(prompt_ids, adapter, top))
            )
        if max_new == 0:  # the prompt scored, nothing generated (echo with max_tokens 0)
            yield GenerationChunk(
                finish_reason="length", prompt_tokens=len(prompt_ids), completion_tokens=0, **echo
            )
            return
        chunks = self._generate(engine, request, prompt_ids, adapter, max_new, guide)
        if parser is not None or (guide is not None and request.tools):
            chunks = tool_call_stream(chunks, request, parser)
        first = True
        try:
            async for chunk in chunks:
                yield chunk.model_copy(update=echo) if first and echo else chunk
                first = False
        finally:
            await chunks.aclose()

    def _echo(self, request: GenerationRequest, prompt_ids: list[int]) -> dict[str, Any]:
        if not request.echo:
            return {}
        text = request.prompt
        if text is None:
            text = self._require_tokenizer().decode(prompt_ids, skip_special_tokens=False)
        return {"prompt_text": text}

    def _tool_parser(self, request: GenerationRequest) -> ToolParser | None:
        """The parser of the request's tool calls (None when the model may not call tools,
        or must: a forced call is constrained JSON); a template without tools is a 400."""
        if not request.tools or request.tool_choice == "none":
            return None
        _, template = self._chat(request, tools=True)
        if request.messages is None:
            raise ValidationError(
                "tools need chat messages: use /v1/chat/completions", field="tools"
            )
        if not template_supports_tools(template):
            raise ValidationError(
                f"model {self.model_id}'s chat template does not render tools: serve a model "
                "trained for tool calling, or start the server with --chat-template FILE (a "
                "template that renders tools)",
                field="tools",
            )
        if request.tool_choice not in (None, "auto"):
            return None
        return parser_for_template(template, self._tool_parser_name)

    async def _generate(
        self,
        engine: Engine,
        request: GenerationRequest,
        prompt_ids: list[int],
        adapter: str,
        max_new: int,
        guide: Any,
    ) -> AsyncGenerator[GenerationChunk, None]:
        loop = asyncio.get_running_loop()
        chunks: asyncio.Queue[GenerationChunk] = asyncio.Queue()

        def emit(chunk: GenerationChunk) -> None:
            loop.call_soon_threadsafe(chunks.put_nowait, chunk)

        from genai.models.transformers._sampling import RowSampler

        row = Row(
            prompt_ids=prompt_ids,
            adapter=adapter,
            max_new=max_new,
            sampler=RowSampler(request.params, engine.vocab_size, engine.device),
            stops=StopMatcher(request.params.stop),
            detok=IncrementalDetokenizer(self._tokenizer, prompt_ids),
            emit=emit,
            guide=guide,
            logprobs=request.logprobs,
        )
        engine.submit(row)
        try:
            while True:
                chunk = await chunks.get()
                if chunk.finish_reason == "cancelled":
                    raise BackendError(
                        chunk.text or "generation was cancelled", backend="transformers"
                    )
                yield chunk
                if chunk.finish_reason is not None:
                    return
        finally:
            row.cancelled = True  # a no-op when finished; stops the row when the caller left

    def _token_text(self, token: int) -> str:
        return str(self._tokenizer.decode([token]))

    def _encode(self, request: GenerationRequest) -> list[int]:
        tokenizer = self._require_tokenizer()
        if request.prompt_ids is not None:
            size = len(tokenizer)
            bad = next((t for t in request.prompt_ids if not 0 <= t < size), None)
            if bad is not None:
                raise ValidationError(
                    f"token id {bad} is not in the vocabulary of {self.model_id} (0 to "
                    f"{size - 1}): token-id prompts must use this model's own tokenizer",
                    field="prompt",
                )
            if not request.prompt_ids:
                raise ValidationError("the token-id prompt is empty", field="prompt")
            return list(request.prompt_ids)
        if request.messages is None:
            assert request.prompt is not None
            return list(tokenizer(request.prompt)["input_ids"])
        tools = request.tools if request.tools and request.tool_choice != "none" else None
        tokenizer, template = self._chat(request, tools=bool(tools))
        if not template:
            raise ValidationError(
                f"model {self.model_id} has no chat template: use /v1/completions, or start "
                "the server with --chat-template FILE (a Jinja chat template)",
                field="messages",
            )
        text = tokenizer.apply_chat_template(
            template_messages(request.messages),
            tools=tools,
            chat_template=template,
            add_generation_prompt=True,
            tokenize=False,
        )
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])

    def _chat(self, request: GenerationRequest, *, tools: bool) -> tuple[Any, str | None]:
        """The tokenizer that renders the request's messages, and its template: the
        adapter's own where its directory carries one, else the base model's."""
        chat = self._chats.get(request.adapter or "")
        if chat is None:
            tokenizer = self._require_tokenizer()
            return tokenizer, template_text(tokenizer.chat_template, tools=tools)
        return chat.tokenizer or self._require_tokenizer(), chat.template_for(tools=tools)

    # ------------------------------------------------------------ tokenizer

    async def tokenize(
        self, request: GenerationRequest, *, add_special_tokens: bool = True
    ) -> list[int]:
        """The prompt's token ids (chat template applied), as vLLM's ``/tokenize``."""
        if request.prompt is not None and not add_special_tokens:
            tokenizer = self._require_tokenizer()
            return list(tokenizer(request.prompt, add_special_tokens=False)["input_ids"])
        return self._encode(request)

    async def detokenize(self, tokens: list[int]) -> str:
        return str(self._require_tokenizer().decode(tokens))

    def tokenizer_info(self) -> dict[str, Any]:
        """What vLLM's ``/tokenizer_info`` tells: the tokenizer's class, special tokens,
        size and chat template."""
        tokenizer = self._require_tokenizer()
        return {
            "tokenizer_class": type(tokenizer).__name__,
            "vocab_size": len(tokenizer),
            "model_max_length": self._window,
            "bos_token": tokenizer.bos_token,
            "eos_token": tokenizer.eos_token,
            "pad_token": tokenizer.pad_token,
            "unk_token": tokenizer.unk_token,
            "chat_template": tokenizer.chat_template,
        }

    def _max_new(self, prompt_tokens: int, max_tokens: int | None) -> int:
        window = self._window
        if window is None:
            return 256 if max_tokens is None else max_tokens
        room = window - prompt_tokens
        if max_tokens is None:
            if room <= 0:
                raise ValidationError(
                    f"the prompt has {prompt_tokens} tokens, which fills this model's context "
                    f"window of {window} tokens: shorten it",
                    field="messages",
                )
            return room
        if prompt_tokens + max_tokens > window:
            raise ValidationError(
                f"this model's context window is {window} tokens, but the request asks for "
                f"{prompt_tokens + max_tokens} ({prompt_tokens} in the prompt + {max_tokens} "
                "max_tokens): shorten the prompt or lower max_tokens",
                field="max_tokens",
            )
        return max_tokens

    # ------------------------------------------------------------ adapters

    def adapters(self) -> list[LoadedAdapter]:
        return sorted(self._adapters.values(), key=lambda a: a.name)

    async def load_adapter(self, name: str, path: str, *, replace: bool = False) -> LoadedAdapter:
        engine = self._require_engine()
        if not name or name in (self.model_id, BASE):
            raise ValidationError(f"adapter name {name!r} is reserved or empty", field="lora_name")
        if name in self._adapters and not replace:
            raise ValidationError(
                f"an adapter named {name!r} is already loaded: unload it first, or reload it "
                "with load_inplace",
                field="lora_name",
            )
        folder = Path(path).expanduser()
        _check_adapter_dir(folder, self._identities())
        chat = await asyncio.to_thread(read_adapter_chat, folder, self._tokenizer)
        reloading = name in self._adapters
        await asyncio.wrap_future(
            engine.call(lambda: self._attach(engine, name, folder, reloading))
        )
        info = LoadedAdapter(name=name, path=str(folder), base_model=self.model_id)
        self._adapters[name] = info
        if chat is None:
            self._chats.pop(name, None)
        else:
            self._chats[name] = chat
        return info

    async def unload_adapter(self, name: str) -> None:
        engine = self._require_engine()
        if name not in self._adapters:
            raise NotFoundError(f"no adapter named {name!r} is loaded")
        await asyncio.wrap_future(engine.call(lambda: self._detach(engine, name)))
        del self._adapters[name]
        self._chats.pop(name, None)

    def _attach(self, engine: Engine, name: str, folder: Path, reloading: bool) -> None:
        if reloading:
            self._check_idle(engine, name)
        engine.lora.load(name, folder)

    def _detach(self, engine: Engine, name: str) -> None:
        self._check_idle(engine, name)
        engine.lora.unload(name)

    @staticmethod
    def _check_idle(engine: Engine, name: str) -> None:
        rows = engine.active_rows() + engine.queued_rows()
        users = sum(1 for r in rows if r.adapter == name and not r.cancelled)
        if users:
            raise ConflictError(
                f"adapter {name!r} is generating for {users} requests: retry when they end"
            )

    def _adapter_name(self, adapter: str | None) -> str:
        if adapter is None or adapter == self.model_id:
            return BASE
        if adapter not in self._adapters:
            raise NotFoundError(f"the model {adapter!r} does not exist")
        return adapter

    def _identities(self) -> set[str]:
        names = {str(self._path.resolve()), self._path.name, self._served_name}
        try:
            config = json.loads((self._path / "config.json").read_text())
            if config.get("_name_or_path"):
                names.add(str(config["_name_or_path"]))
        except (OSError, json.JSONDecodeError):
            pass
        return names

    def _require_engine(self) -> Engine:
        if self._engine is None:
            raise ValidationError("the backend is not started: call start() first")
        return self._engine

    def _require_tokenizer(self) -> Any:
        self._require_engine()
        return self._tokenizer


def _check_adapter_dir(folder: Path, identities: set[str]) -> None:
    config_file = folder / "adapter_config.json"
    if not folder.is_dir() or not config_file.is_file():
        raise ValidationError(
            f"{folder} is not a LoRA adapter directory (no adapter_config.json)", field="lora_path"
        )
    try:
        config = json.loads(config_file.read_text())
    except json.JSONDecodeError as error:
        raise ValidationError(f"{config_file} is not JSON: {error}", field="lora_path") from None
    if str(config.get("peft_type", "")).upper() != "LORA":
        raise ValidationError(
            f"{folder} is a {config.get('peft_type') or 'unknown'} adapter, not LoRA",
            field="lora_path",
        )
    base = config.get("base_model_name_or_path")
    if base and base not in identities and Path(str(base)).name not in identities:
        raise ValidationError(
            f"adapter {folder} was trained on {base!r}, not on this server's base model "
            f"({sorted(identities)[0]}): serve it with its own base model",
            field="lora_path",
        )


def _model_name(path: Path) -> str:
    marker = path / "genai_model.json"
    if marker.is_file():
        try:
            return str(json.loads(marker.read_text())["name"])
        except (json.JSONDecodeError, KeyError):
            pass
    return path.name


def _dtype(torch: Any, name: str, device: Any) -> Any:
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    try:
        return getattr(torch, name)
    except AttributeError:
        raise ValidationError(
            f"unknown dtype {name!r}: use auto, float32, float16, bfloat16 or float64",
            field="dtype",
        ) from None
