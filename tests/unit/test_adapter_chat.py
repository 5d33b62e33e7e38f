"""The ``vllm`` backend serving an adapter with the chat template its directory carries
(the tokenizer it was trained with, or a template file), on a stand-in for vLLM's engine
(vLLM cannot run here): requests to the adapter render with its template, others with the
base's; a tokenizer with another vocabulary is refused. The transformers backend's side,
with greedy parity against the PEFT-merged model, is in
tests/integration/test_adapter_chat_template.py."""

from __future__ import annotations

import json
import sys
import types
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pytest

from genai.errors import ValidationError
from genai.models import ChatMessage, GenerationRequest, VLLMBackend
from genai.testing import HERMES_TOOLS_TEMPLATE

ADAPTER_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}### {{ m['role'] | upper }}:\n"
    "{{ m['content'] }}{{ eos_token }}\n{% endfor %}"
    "{% if add_generation_prompt %}### ASSISTANT:\n{% endif %}"
)
FILE_TEMPLATE = (
    "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}[assistant] {% endif %}"
)
HELLO = [ChatMessage(role="user", content="How do I open an account?")]
TOOLS = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from genai.testing import tiny_model

    return tiny_model(tmp_path_factory.mktemp("adapter-chat") / "base")


def tokenizer(folder: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder)


def adapter_dir(
    base: Path,
    folder: Path,
    *,
    template: str | dict[str, str] | None = None,
    with_tokenizer: bool = True,
    swap: bool = False,
) -> Path:
    """An adapter directory (a config; the stand-in reads no weights), with ``base``'s
    tokenizer saved beside it (its template replaced, or two of its ids swapped)."""
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA"}))
    if not with_tokenizer:
        return folder
    tok = tokenizer(base)
    tok.chat_template = template
    tok.save_pretrained(folder)
    if swap:
        data = json.loads((folder / "tokenizer.json").read_text())
        vocab = data["model"]["vocab"]
        vocab["Ġdog"], vocab["Ġaccount"] = vocab["Ġaccount"], vocab["Ġdog"]
        (folder / "tokenizer.json").write_text(json.dumps(data))
    return folder


def rendered(tok: Any, messages: list[ChatMessage], **options: Any) -> list[int]:
    text = tok.apply_chat_template(
        [{"role": m.role, "content": m.text()} for m in messages],
        add_generation_prompt=True,
        tokenize=False,
        **options,
    )
    return list(tok(text, add_special_tokens=False)["input_ids"])


# ------------------------------------------------------------------ the vllm backend


@dataclass
class StandInSamplingParams:
    n: int
    max_tokens: int | None
    temperature: float
    top_p: float
    stop: list[str]
    seed: int | None
    presence_penalty: float
    frequency_penalty: float
    skip_special_tokens: bool


@dataclass
class StandInLoRARequest:
    lora_name: str
    lora_int_id: int
    lora_path: str


@dataclass
class StandInEngine:
    """Records the prompt ids of each request; takes any adapter path; tokenizes with the
    tiny model's real tokenizer."""

    prompts: list[tuple[list[int], Any]] = field(default_factory=list)
    loras: dict[int, StandInLoRARequest] = field(default_factory=dict)
    model_config: Any = field(default_factory=lambda: types.SimpleNamespace(max_model_len=512))
    tokenizer: ClassVar[Any] = None
    last: ClassVar[StandInEngine | None] = None

    @classmethod
    def from_engine_args(cls, args: dict[str, Any]) -> StandInEngine:
        cls.last = cls()
        return cls.last

    def get_tokenizer(self) -> Any:
        return self.tokenizer

    async def generate(
        self, prompt: dict[str, Any], params: Any, request_id: str, *, lora_request: Any = None
    ) -> AsyncIterator[Any]:
        self.prompts.append((prompt["prompt_token_ids"], lora_request))
        done = types.SimpleNamespace(text="ok", token_ids=[1], finish_reason="stop")
        yield types.SimpleNamespace(outputs=[done], finished=True)

    async def add_lora(self, request: StandInLoRARequest) -> bool:
        self.loras[request.lora_int_id] = request
        return True

    async def remove_lora(self, lora_id: int) -> bool:
        return self.loras.pop(lora_id, None) is not None

    def shutdown(self) -> None:
        pass


@pytest.fixture
async def vllm_backend(base: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Any]:
    vllm = types.ModuleType("vllm")
    vllm.SamplingParams = StandInSamplingParams  # type: ignore[attr-defined]
    vllm.AsyncEngineArgs = dict  # type: ignore[attr-defined]
    vllm.AsyncLLMEngine = StandInEngine  # type: ignore[attr-defined]
    lora = types.ModuleType("vllm.lora.request")
    lora.LoRARequest = StandInLoRARequest  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "vllm", vllm)
    monkeypatch.setitem(sys.modules, "vllm.lora.request", lora)
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # vLLM's is a stand-in
    monkeypatch.setattr(StandInEngine, "tokenizer", tokenizer(base))
    backend = VLLMBackend(model="org/base")
    await backend.start()
    yield backend
    await backend.close()


async def prompt_ids(backend: VLLMBackend, **request: Any) -> list[int]:
    engine = StandInEngine.last
    assert engine is not None
    generation = GenerationRequest(**request)
    await backend.generate(generation)
    ids, _ = engine.prompts[-1]
    assert await backend.count_tokens(generation) == len(ids)
    return list(ids)


@pytest.mark.anyio
async def test_vllm_renders_an_adapters_requests_with_its_template(
    vllm_backend: VLLMBackend, base: Path, tmp_path: Path
) -> None:
    chat_dir = adapter_dir(base, tmp_path / "chat", template=ADAPTER_TEMPLATE)
    await vllm_backend.load_adapter("chat", str(chat_dir))
    await vllm_backend.load_adapter("remote", "org/some-adapter")  # not local: vLLM's to read
    base_tok, chat_tok = tokenizer(base), tokenizer(chat_dir)

    ids = await prompt_ids(vllm_backend, messages=HELLO, adapter="chat")
    assert ids == rendered(chat_tok, HELLO)
    assert chat_tok.decode(ids).startswith("<s>### USER:\nHow do I open an account?")
    assert await prompt_ids(vllm_backend, messages=HELLO) == rendered(base_tok, HELLO)
    assert await prompt_ids(vllm_backend, messages=HELLO, adapter="remote") == rendered(
        base_tok, HELLO
    )

    # unloaded and loaded again from a directory without a template: the base's again
    await vllm_backend.unload_adapter("chat")
    plain = adapter_dir(base, tmp_path / "plain", template=None)
    await vllm_backend.load_adapter("chat", str(plain))
    assert await prompt_ids(vllm_backend, messages=HELLO, adapter="chat") == rendered(
        base_tok, HELLO
    )


@pytest.mark.anyio
async def test_vllm_tool_calls_follow_the_adapters_template(
    vllm_backend: VLLMBackend, base: Path, tmp_path: Path
) -> None:
    folder = adapter_dir(base, tmp_path / "tools", template=HERMES_TOOLS_TEMPLATE)
    await vllm_backend.load_adapter("tools", str(folder))
    with pytest.raises(ValidationError, match="does not render tools"):
        await vllm_backend.generate(GenerationRequest(messages=HELLO, tools=TOOLS))
    ids = await prompt_ids(vllm_backend, messages=HELLO, tools=TOOLS, adapter="tools")
    assert "<tools>" in tokenizer(base).decode(ids)


@pytest.mark.anyio
async def test_vllm_refuses_an_adapter_with_another_vocabulary(
    vllm_backend: VLLMBackend, base: Path, tmp_path: Path
) -> None:
    folder = adapter_dir(base, tmp_path / "foreign", template=ADAPTER_TEMPLATE, swap=True)
    with pytest.raises(ValidationError, match="was trained with another tokenizer") as caught:
        await vllm_backend.load_adapter("foreign", str(folder))
    assert caught.value.field == "lora_path"
    assert "its vocabulary has 512 tokens, the base model's 512" in caught.value.message
    assert "token 'Ġaccount' is id 439 there, id 342 in the base's" in caught.value.message
    assert vllm_backend.adapters() == []
    assert StandInEngine.last is not None and StandInEngine.last.loras == {}  # never sent


@pytest.mark.anyio
@pytest.mark.parametrize("name", ["chat_template.jinja", "chat_template.json"])
async def test_vllm_serves_a_template_file_alone_with_the_base_tokenizer(
    vllm_backend: VLLMBackend, base: Path, tmp_path: Path, name: str
) -> None:
    folder = adapter_dir(base, tmp_path / "file", with_tokenizer=False)
    text = (
        FILE_TEMPLATE if name.endswith(".jinja") else json.dumps({"chat_template": FILE_TEMPLATE})
    )
    (folder / name).write_text(text)
    await vllm_backend.load_adapter("file", str(folder))
    ids = await prompt_ids(vllm_backend, messages=HELLO, adapter="file")
    assert ids == rendered(tokenizer(base), HELLO, chat_template=FILE_TEMPLATE)
    assert tokenizer(base).decode(ids) == "[user] How do I open an account?\n[assistant] "


@pytest.mark.anyio
async def test_vllm_keeps_the_bases_template_for_a_tokenizer_without_one(
    vllm_backend: VLLMBackend, base: Path, tmp_path: Path
) -> None:
    folder = adapter_dir(base, tmp_path / "plain", template=None)
    assert not (folder / "chat_template.jinja").exists()
    await vllm_backend.load_adapter("plain", str(folder))
    ids = await prompt_ids(vllm_backend, messages=HELLO, adapter="plain")
    assert ids == rendered(tokenizer(base), HELLO)


@pytest.mark.anyio
async def test_vllm_named_templates_pick_tool_use_for_tools(
    vllm_backend: VLLMBackend, base: Path, tmp_path: Path
) -> None:
    named = {"default": ADAPTER_TEMPLATE, "tool_use": HERMES_TOOLS_TEMPLATE}
    folder = adapter_dir(base, tmp_path / "named", template=named)
    await vllm_backend.load_adapter("named", str(folder))
    tok = tokenizer(base)
    plain = await prompt_ids(vllm_backend, messages=HELLO, adapter="named")
    assert plain == rendered(tok, HELLO, chat_template=ADAPTER_TEMPLATE)
    with_tools = await prompt_ids(vllm_backend, messages=HELLO, tools=TOOLS, adapter="named")
    assert "<tools>" in tok.decode(with_tools)


@pytest.mark.anyio
async def test_vllm_refuses_unreadable_tokenizer_and_template_files(
    vllm_backend: VLLMBackend, base: Path, tmp_path: Path
) -> None:
    broken = adapter_dir(base, tmp_path / "broken", with_tokenizer=False)
    (broken / "tokenizer.json").write_text("{not json")
    (broken / "tokenizer_config.json").write_text(
        json.dumps({"tokenizer_class": "PreTrainedTokenizerFast"})
    )
    with pytest.raises(ValidationError, match="carries a tokenizer that cannot be read"):
        await vllm_backend.load_adapter("broken", str(broken))
    legacy = adapter_dir(base, tmp_path / "legacy", with_tokenizer=False)
    (legacy / "chat_template.json").write_text("[1, 2]")
    with pytest.raises(ValidationError, match="not a JSON object with a chat_template"):
        await vllm_backend.load_adapter("legacy", str(legacy))
    assert vllm_backend.adapters() == []
