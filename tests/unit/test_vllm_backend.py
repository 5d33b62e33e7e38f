"""The ``vllm`` backend without vLLM: its pure mappings, its start on a machine without vLLM
or CUDA, and its glue against a stand-in for vLLM's engine (vLLM cannot run here)."""

from __future__ import annotations

import importlib.util
import sys
import types
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pytest

from genai.errors import (
    BackendError,
    ConfigError,
    MissingDependencyError,
    ValidationError,
)
from genai.models import (
    ChatMessage,
    GenerationChunk,
    GenerationRequest,
    LLMBackend,
    SamplingParams,
    _vllm,
    create_backend,
)
from genai.models._vllm import (
    VLLMBackend,
    chat_messages,
    encode,
    finish_reason,
    output_chunk,
    sampling_params,
)
from genai.testing import LLMBackendSuite

VLLM_INSTALLED = importlib.util.find_spec("vllm") is not None


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class StandInSamplingParams:
    """Takes the keyword arguments of vllm.SamplingParams that the backend uses."""

    n: int
    max_tokens: int | None
    temperature: float
    top_p: float
    stop: list[str]
    seed: int | None
    presence_penalty: float
    frequency_penalty: float
    skip_special_tokens: bool


# ------------------------------------------------------------------ sampling


def test_every_sampling_parameter_is_mapped() -> None:
    params = SamplingParams(
        max_tokens=20,
        temperature=0.0,
        top_p=0.9,
        stop=["\n\n", "END"],
        seed=3,
        presence_penalty=0.5,
        frequency_penalty=-1.0,
    )
    mapped = sampling_params(params, StandInSamplingParams, prompt_tokens=10, context_window=100)
    assert mapped == StandInSamplingParams(
        n=1,
        max_tokens=20,
        temperature=0.0,
        top_p=0.9,
        stop=["\n\n", "END"],
        seed=3,
        presence_penalty=0.5,
        frequency_penalty=-1.0,
        skip_special_tokens=True,
    )


def test_defaults_are_openais() -> None:
    mapped = sampling_params(
        SamplingParams(), StandInSamplingParams, prompt_tokens=10, context_window=100
    )
    assert (mapped.temperature, mapped.top_p, mapped.stop, mapped.seed) == (1.0, 1.0, [], None)
    assert (mapped.presence_penalty, mapped.frequency_penalty) == (0.0, 0.0)


@pytest.mark.parametrize(
    ("max_tokens", "prompt", "window", "expected"),
    [
        (None, 10, 100, 90),  # no max_tokens: the rest of the window
        (90, 10, 100, 90),  # exactly fills it
        (5, 10, None, 5),  # window unknown: as asked
        (None, 10, None, None),  # neither: vLLM's own default
    ],
)
def test_max_tokens(
    max_tokens: int | None, prompt: int, window: int | None, expected: int | None
) -> None:
    mapped = sampling_params(
        SamplingParams(max_tokens=max_tokens),
        StandInSamplingParams,
        prompt_tokens=prompt,
        context_window=window,
    )
    assert mapped.max_tokens == expected


def test_a_request_past_the_window_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"asks for 101 \(10 in the prompt \+ 91") as caught:
        sampling_params(
            SamplingParams(max_tokens=91),
            StandInSamplingParams,
            prompt_tokens=10,
            context_window=100,
        )
    assert caught.value.field == "max_tokens"
    with pytest.raises(ValidationError, match="fills this model's context window of 100"):
        sampling_params(
            SamplingParams(), StandInSamplingParams, prompt_tokens=100, context_window=100
        )


# ------------------------------------------------------------------ outputs


@pytest.mark.parametrize(
    ("vllm_reason", "ours"),
    [
        ("stop", "stop"),
        ("length", "length"),
        ("abort", "cancelled"),
        ("error", "cancelled"),
        ("something-new", "stop"),
    ],
)
def test_finish_reasons(vllm_reason: str, ours: str) -> None:
    assert finish_reason(vllm_reason) == ours


def test_cumulative_outputs_become_deltas_then_a_final_chunk() -> None:
    outputs = [
        ("Hel", None, 1),
        ("Hello", None, 2),
        ("Hello, wor", None, 4),
        ("Hello, world", "length", 5),
    ]
    chunks, sent = [], ""
    for text, finish, count in outputs:
        chunks.append(
            output_chunk(
                sent=sent, text=text, finish=finish, prompt_tokens=7, completion_tokens=count
            )
        )
        sent = text
    assert [c.text for c in chunks] == ["Hel", "lo", ", wor", "ld"]
    assert chunks[:-1] == [GenerationChunk(text=c.text) for c in chunks[:-1]]
    assert chunks[-1] == GenerationChunk(
        text="ld", finish_reason="length", prompt_tokens=7, completion_tokens=5
    )


def test_a_final_output_without_new_text() -> None:
    chunk = output_chunk(
        sent="done", text="done", finish="stop", prompt_tokens=3, completion_tokens=2
    )
    assert (chunk.text, chunk.finish_reason, chunk.completion_tokens) == ("", "stop", 2)


# ------------------------------------------------------------------ prompts


class StandInTokenizer:
    """Behaves like a Hugging Face tokenizer where the backend touches one: ``encode`` adds
    a BOS id unless told not to; no chat template raises ValueError."""

    def __init__(self, template: bool = True) -> None:
        self.template = template
        self.seen: list[list[dict[str, str]]] = []

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        ids = [len(word) for word in text.split()]
        return [1, *ids] if add_special_tokens else ids

    def apply_chat_template(
        self, messages: list[dict[str, str]], *, add_generation_prompt: bool, tokenize: bool
    ) -> str:
        if not self.template:
            raise ValueError(
                "Cannot use chat template functions because tokenizer.chat_template is not set"
            )
        assert add_generation_prompt and not tokenize
        self.seen.append(messages)
        return " ".join(f"<{m['role']}> {m['content']}" for m in messages) + " <assistant>"


def test_chat_messages_are_role_and_text() -> None:
    messages = [
        ChatMessage(role="system", content="be brief"),
        ChatMessage(
            role="user",
            content=[
                {"type": "text", "text": "hi "},
                {"type": "image_url", "image_url": {}},
                {"type": "text", "text": "there"},
            ],
        ),
    ]
    assert chat_messages(messages) == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hi there"},
    ]


def test_encode_a_prompt_with_special_tokens() -> None:
    assert encode(StandInTokenizer(), GenerationRequest(prompt="ab cde")) == [1, 2, 3]


def test_encode_messages_through_the_template_without_a_second_bos() -> None:
    tokenizer = StandInTokenizer()
    ids = encode(tokenizer, GenerationRequest(messages=[ChatMessage(role="user", content="hey")]))
    assert tokenizer.seen == [[{"role": "user", "content": "hey"}]]
    assert ids == [6, 3, 11]  # "<user> hey <assistant>", no BOS added


def test_messages_without_a_chat_template_are_refused() -> None:
    request = GenerationRequest(messages=[ChatMessage(role="user", content="hey")])
    with pytest.raises(ValidationError, match="no chat template") as caught:
        encode(StandInTokenizer(template=False), request)
    assert caught.value.field == "messages"


# ------------------------------------------------------------------ this machine


def test_construction_is_light_and_registered() -> None:
    backend = create_backend("vllm", model="meta-llama/Llama-3.2-1B")
    assert isinstance(backend, VLLMBackend)
    assert isinstance(backend, LLMBackend)
    assert backend.model_id == "meta-llama/Llama-3.2-1B"
    assert backend.adapters() == []
    assert "vllm" not in sys.modules or VLLM_INSTALLED


def test_a_model_directory_is_served_under_its_name(tmp_path: Path) -> None:
    (tmp_path / "my-model").mkdir()
    assert VLLMBackend(model=str(tmp_path / "my-model")).model_id == "my-model"
    assert VLLMBackend(model=str(tmp_path / "my-model"), served_name="m").model_id == "m"


@pytest.mark.parametrize(
    "options",
    [
        {"max_loras": 0},
        {"max_lora_rank": 0},
        {"gpu_memory_utilization": 0.0},
        {"gpu_memory_utilization": 1.5},
    ],
)
def test_bad_options_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        VLLMBackend(model="m", **options)


@pytest.mark.skipif(VLLM_INSTALLED, reason="vllm is installed here")
@pytest.mark.anyio
async def test_start_without_vllm_names_the_gpu_extra() -> None:
    backend = VLLMBackend(model="meta-llama/Llama-3.2-1B")
    with pytest.raises(MissingDependencyError) as caught:
        await backend.start()
    assert (caught.value.package, caught.value.extra) == ("vllm", "gpu")
    assert "pip install 'genai-platform[gpu]'" in caught.value.message


def test_cuda_is_required() -> None:
    import torch

    if torch.cuda.is_available():
        _vllm.require_cuda()
        return
    with pytest.raises(ConfigError, match="needs a CUDA GPU") as caught:
        _vllm.require_cuda()
    assert "--backend transformers" in caught.value.message
    assert "--backend openai" in caught.value.message


@pytest.mark.anyio
async def test_calls_before_start_say_so() -> None:
    backend = VLLMBackend(model="m")
    request = GenerationRequest(prompt="hi")
    with pytest.raises(ValidationError, match=r"call start\(\) first"):
        await backend.count_tokens(request)
    with pytest.raises(ValidationError, match=r"call start\(\) first"):
        await backend.generate(request)
    with pytest.raises(ValidationError, match=r"call start\(\) first"):
        await backend.load_adapter("a", "/a")


# ------------------------------------------------------------------ glue, on a stand-in engine


@dataclass
class StandInLoRARequest:
    lora_name: str
    lora_int_id: int
    lora_path: str


@dataclass
class StandInEngine:
    """Answers like vLLM's AsyncLLM: cumulative outputs, LoRA adapters by integer id."""

    script: list[tuple[str, str | None]] = field(
        default_factory=lambda: [("Hi", None), ("Hi the", None), ("Hi there", "stop")]
    )
    calls: list[dict[str, Any]] = field(default_factory=list)
    loras: dict[int, StandInLoRARequest] = field(default_factory=dict)
    model_config: Any = field(default_factory=lambda: types.SimpleNamespace(max_model_len=50))
    stopped: bool = False
    failure: Exception | None = None
    closed: int = 0
    last: ClassVar[StandInEngine | None] = None

    @classmethod
    def from_engine_args(cls, args: dict[str, Any]) -> StandInEngine:
        engine = cls.last = cls()
        engine.calls.append({"engine_args": args})
        return engine

    def get_tokenizer(self) -> StandInTokenizer:
        return StandInTokenizer()

    async def generate(
        self, prompt: dict[str, Any], params: Any, request_id: str, *, lora_request: Any = None
    ) -> AsyncIterator[Any]:
        self.calls.append({"prompt": prompt, "params": params, "lora": lora_request})
        try:
            for i, (text, finish) in enumerate(self.script):
                if self.failure is not None and i == 1:
                    raise self.failure
                done = types.SimpleNamespace(
                    text=text, token_ids=list(range(i + 1)), finish_reason=finish
                )
                yield types.SimpleNamespace(outputs=[done], finished=finish is not None)
        finally:
            self.closed += 1  # AsyncLLM aborts the request here when closed early

    async def add_lora(self, request: StandInLoRARequest) -> bool:
        if not request.lora_path.startswith("/adapters/"):
            raise ValueError(f"Loading lora {request.lora_name} failed: no adapter found")
        self.loras[request.lora_int_id] = request
        return True

    async def remove_lora(self, lora_id: int) -> bool:
        return self.loras.pop(lora_id, None) is not None

    def shutdown(self) -> None:
        self.stopped = True


@pytest.fixture
def stand_in_vllm(monkeypatch: pytest.MonkeyPatch) -> None:
    """A stand-in for the ``vllm`` package where the backend meets it; CUDA assumed."""
    vllm = types.ModuleType("vllm")
    vllm.SamplingParams = StandInSamplingParams  # type: ignore[attr-defined]
    vllm.AsyncEngineArgs = dict  # type: ignore[attr-defined]
    vllm.AsyncLLMEngine = StandInEngine  # type: ignore[attr-defined]
    lora = types.ModuleType("vllm.lora.request")
    lora.LoRARequest = StandInLoRARequest  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "vllm", vllm)
    monkeypatch.setitem(sys.modules, "vllm.lora.request", lora)
    monkeypatch.setattr(_vllm, "require_cuda", lambda: None)


@dataclass
class WordByWordEngine(StandInEngine):
    """A stand-in that generates ``reply`` a word (a token) at a time and honours
    ``max_tokens`` and ``stop`` as vLLM does: what the backend contract needs."""

    reply: str = "Paris is the capital of France, and its largest city."

    async def generate(
        self, prompt: dict[str, Any], params: Any, request_id: str, *, lora_request: Any = None
    ) -> AsyncIterator[Any]:
        self.calls.append({"prompt": prompt, "params": params, "lora": lora_request})
        words = self.reply.split(" ")
        limit = min(params.max_tokens or len(words), len(words))
        text, finish = " ".join(words[:limit]), "length" if limit < len(words) else "stop"
        cuts = [text.find(stop) for stop in params.stop if stop in text]
        if cuts:  # vLLM holds back what may become a stop string: it never sends it
            text, finish = text[: min(cuts)], "stop"
        pieces = text.split(" ")
        try:
            for n in range(1, len(pieces) + 1):
                done = types.SimpleNamespace(
                    text=" ".join(pieces[:n]),
                    token_ids=list(range(n)),
                    finish_reason=finish if n == len(pieces) else None,
                )
                yield types.SimpleNamespace(outputs=[done], finished=n == len(pieces))
        finally:
            self.closed += 1


class TestVLLMBackendOnAStandIn(LLMBackendSuite):
    """The LLMBackend contract (``genai.testing.LLMBackendSuite``) on the backend's glue."""

    @pytest.fixture
    async def backend(
        self, stand_in_vllm: None, monkeypatch: pytest.MonkeyPatch
    ) -> AsyncIterator[LLMBackend]:
        monkeypatch.setattr(sys.modules["vllm"], "AsyncLLMEngine", WordByWordEngine)
        llm = VLLMBackend(model="org/base")
        await llm.start()
        yield llm
        await llm.close()

    @pytest.fixture
    def adapter_path(self) -> str:
        return "/adapters/suite-adapter"


@pytest.mark.anyio
async def test_glue_on_a_stand_in_engine(stand_in_vllm: None) -> None:
    backend = VLLMBackend(
        model="org/base",
        adapters={"a1": "/adapters/a1"},
        max_loras=2,
        max_lora_rank=16,
        dtype="bfloat16",
    )
    await backend.start()
    engine = StandInEngine.last
    assert engine is not None
    assert engine.calls[0]["engine_args"] == {
        "model": "org/base",
        "served_model_name": "org/base",
        "enable_lora": True,
        "max_loras": 2,
        "max_lora_rank": 16,
        "dtype": "bfloat16",
        "gpu_memory_utilization": 0.9,
        "max_model_len": None,
    }
    assert backend.context_window == 50
    assert [a.name for a in backend.adapters()] == ["a1"]

    chunks = [c async for c in backend.stream(GenerationRequest(prompt="x yy", adapter="a1"))]
    assert [c.text for c in chunks] == ["Hi", " the", "re"]
    assert (chunks[-1].finish_reason, chunks[-1].prompt_tokens, chunks[-1].completion_tokens) == (
        "stop",
        3,
        3,
    )
    call = engine.calls[-1]
    assert call["prompt"] == {"prompt_token_ids": [1, 1, 2]}
    assert call["lora"] == StandInLoRARequest("a1", 1, "/adapters/a1")
    assert call["params"].max_tokens == 47  # the rest of the window

    result = await backend.generate(GenerationRequest(prompt="x"))
    assert (result.text, result.finish_reason) == ("Hi there", "stop")
    assert engine.calls[-1]["lora"] is None
    assert await backend.count_tokens(GenerationRequest(prompt="x yy")) == 3

    await backend.load_adapter("a1", "/adapters/a1-v2", replace=True)
    assert set(engine.loras) == {2}  # the new id in, the old one out
    await backend.generate(GenerationRequest(prompt="x", adapter="a1"))
    assert engine.calls[-1]["lora"] == StandInLoRARequest("a1", 2, "/adapters/a1-v2")

    with pytest.raises(ValidationError, match="could not load adapter 'bad'"):
        await backend.load_adapter("bad", "/elsewhere")
    with pytest.raises(ValidationError, match="does not render tools"):
        await backend.generate(
            GenerationRequest(
                messages=[ChatMessage(role="user", content="x")], tools=[{"type": "function"}]
            )
        )

    await backend.unload_adapter("a1")
    assert backend.adapters() == [] and engine.loras == {}
    await backend.close()
    assert engine.stopped


@pytest.mark.anyio
async def test_engine_failures_and_early_closes(stand_in_vllm: None) -> None:
    backend = VLLMBackend(model="org/base")
    await backend.start()
    engine = StandInEngine.last
    assert engine is not None
    request = GenerationRequest(prompt="x")

    stream = backend.stream(request)
    assert (await anext(stream)).text == "Hi"
    await stream.aclose()
    assert engine.closed == 1

    engine.failure = ValueError("The decoder prompt is longer than the maximum model length")
    with pytest.raises(ValidationError, match="vLLM refused the request: The decoder prompt"):
        await backend.generate(request)
    engine.failure = RuntimeError("CUDA error: an illegal memory access was encountered")
    with pytest.raises(BackendError, match="vLLM failed: CUDA error") as caught:
        await backend.generate(request)
    assert caught.value.retryable is False

    engine.failure, engine.script = None, [("Hi", None), ("Hi", "abort")]
    with pytest.raises(BackendError, match=r"ended the request early \(abort\)") as caught:
        await backend.generate(request)
    assert caught.value.retryable is True
    engine.script = [("Hi", None)]
    with pytest.raises(BackendError, match="without a finish reason"):
        await backend.generate(request)
    assert engine.closed == 5
    await backend.close()


@pytest.mark.anyio
async def test_a_failed_start_stops_the_engine(stand_in_vllm: None) -> None:
    backend = VLLMBackend(model="org/base", adapters={"bad": "/elsewhere/bad"})
    with pytest.raises(ValidationError, match="could not load adapter 'bad'"):
        await backend.start()
    assert StandInEngine.last is not None and StandInEngine.last.stopped
    with pytest.raises(ValidationError, match=r"call start\(\) first"):
        await backend.count_tokens(GenerationRequest(prompt="x"))


# ------------------------------------------------------------------ structured output, logprobs


def test_structured_output_and_logprobs_map_to_vllms_parameters(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from genai.models import FunctionChoice, ResponseFormat
    from genai.models._vllm import request_extras

    @dataclass
    class StructuredOutputsParams:  # vLLM 0.10.2+
        json: Any

    params = types.ModuleType("vllm.sampling_params")
    params.StructuredOutputsParams = StructuredOutputsParams  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "vllm.sampling_params", params)
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    fmt = ResponseFormat(type="json_schema", json_schema=schema)
    extras = request_extras(
        GenerationRequest(prompt="x", response_format=fmt, logprobs=2, echo=True)
    )
    assert extras == {
        "structured_outputs": StructuredOutputsParams(json=schema),
        "logprobs": 2,
        "prompt_logprobs": 2,
    }
    tool = {"type": "function", "function": {"name": "f", "parameters": schema}}
    forced = GenerationRequest(
        messages=[ChatMessage(role="user", content="x")],
        tools=[tool],
        tool_choice=FunctionChoice(name="f"),
    )
    assert request_extras(forced) == {"structured_outputs": StructuredOutputsParams(json=schema)}
    assert request_extras(GenerationRequest(prompt="x")) == {}

    @dataclass
    class GuidedDecodingParams:  # before
        json: Any

    old = types.ModuleType("vllm.sampling_params")
    old.GuidedDecodingParams = GuidedDecodingParams  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "vllm.sampling_params", old)
    assert request_extras(GenerationRequest(prompt="x", response_format=fmt)) == {
        "guided_decoding": GuidedDecodingParams(json=schema)
    }


def test_vllms_logprobs_become_token_entries() -> None:
    from genai.models._vllm import prompt_logprobs, token_logprobs

    def lp(value: float, rank: int, text: str) -> Any:
        return types.SimpleNamespace(logprob=value, rank=rank, decoded_token=text)

    # the chosen token (7) is not among the top 1: vLLM adds it to the dict
    scores = [{5: lp(-0.1, 1, "a"), 7: lp(-2.5, 3, "c")}, {9: lp(-0.2, 1, "d")}]
    [first, second] = token_logprobs([7, 9], scores, top=1)
    assert (first.token, first.token_id, first.logprob) == ("c", 7, -2.5)
    assert [(t.token, t.logprob) for t in first.top] == [("a", -0.1)]
    assert (second.token, second.top[0].token) == ("d", "d")
    request = GenerationRequest(prompt_ids=[1, 7], logprobs=1, echo=True)
    entries = prompt_logprobs([1, 7], [None, scores[0]], request)
    assert entries is not None and entries[0] is None and entries[1] is not None
    assert entries[1].logprob == -2.5
    assert prompt_logprobs([1], [None], GenerationRequest(prompt="x")) is None
