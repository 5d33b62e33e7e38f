"""Train/serve parity of chat templates (LLaMA-Factory#8720): an adapter directory that
carries the tokenizer it was trained with has requests to it rendered with that tokenizer's
chat template, and its greedy output through ``genai serve`` is the PEFT-merged model's,
token for token; an adapter trained with another vocabulary is refused at load.

The base is the tiny Llama (ChatML); the adapters are PEFT LoRA adapters with random B
matrices (they change the output), saved with a tokenizer whose template differs.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import torch

BASE = "tiny-llama"
#: A distinct template: a BOS, ``### ROLE:`` markers (the base writes ChatML's
#: ``<|im_start|>role``), turns ended by the EOS token.
ADAPTER_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}### {{ m['role'] | upper }}:\n"
    "{{ m['content'] }}{{ eos_token }}\n{% endfor %}"
    "{% if add_generation_prompt %}### ASSISTANT:\n{% endif %}"
)
#: The template a directory may carry as a file alone (no tokenizer beside it).
FILE_TEMPLATE = (
    "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}[assistant] {% endif %}"
)
CONVERSATIONS: list[list[dict[str, str]]] = [
    [{"role": "user", "content": "Hello"}],
    [{"role": "user", "content": "How do I open an account?"}],
    [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Where is my invoice? Thank you."},
    ],
    [
        {"role": "user", "content": "Numbers: 0 1 2 3"},
        {"role": "assistant", "content": "4 5 6"},
        {"role": "user", "content": "Yes, no, maybe."},
    ],
]
WEATHER: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


@dataclass(frozen=True)
class Adapters:
    chat: Path  # saved with a tokenizer whose template is ADAPTER_TEMPLATE
    tools: Path  # saved with a tokenizer whose template renders tools (Hermes)
    file_only: Path  # chat_template.jinja alone beside the weights
    foreign: dict[str, Path]  # saved with a tokenizer of another vocabulary


def swap_two_ids(folder: Path) -> None:
    """Give two tokens of ``folder``'s tokenizer each other's ids (same size, other map)."""
    path = folder / "tokenizer.json"
    data = json.loads(path.read_text())
    vocab = data["model"]["vocab"]
    first, second = "Ġdog", "Ġaccount"  # byte-level BPE: "Ġ" is a leading space
    vocab[first], vocab[second] = vocab[second], vocab[first]
    path.write_text(json.dumps(data))


@pytest.fixture(scope="module")
def adapters(tiny: Any, tmp_path_factory: pytest.TempPathFactory) -> Adapters:
    from transformers import AutoTokenizer

    from genai.testing import HERMES_TOOLS_TEMPLATE, tiny_adapter, tiny_model

    root = tmp_path_factory.mktemp("adapter-templates")

    def with_tokenizer(name: str, seed: int, template: str | None, source: Path) -> Path:
        folder = tiny_adapter(tiny.model, root / name, seed=seed)
        tokenizer = AutoTokenizer.from_pretrained(source)
        if template is not None:
            tokenizer.chat_template = template
        tokenizer.save_pretrained(folder)
        return folder

    chat = with_tokenizer("chat", 31, ADAPTER_TEMPLATE, tiny.model)
    assert (chat / "tokenizer.json").is_file() and (chat / "chat_template.jinja").is_file()
    tools = with_tokenizer("tools", 32, HERMES_TOOLS_TEMPLATE, tiny.model)
    file_only = tiny_adapter(tiny.model, root / "file-only", seed=33)
    (file_only / "chat_template.jinja").write_text(FILE_TEMPLATE)
    small_base = tiny_model(root / "small-base", vocab_size=400)
    smaller = with_tokenizer("smaller", 34, ADAPTER_TEMPLATE, small_base)
    swapped = with_tokenizer("swapped", 35, ADAPTER_TEMPLATE, tiny.model)
    swap_two_ids(swapped)
    return Adapters(
        chat=chat,
        tools=tools,
        file_only=file_only,
        foreign={"smaller": smaller, "swapped": swapped},
    )


@pytest.fixture(scope="module")
def srv(tiny: Any, adapters: Adapters, run_server: Any) -> Iterator[Any]:
    assert not (tiny.adapters["a1"] / "tokenizer.json").exists()  # a1 carries no tokenizer
    served = {
        "chat": adapters.chat,
        "tools": adapters.tools,
        "file-only": adapters.file_only,
        "a1": tiny.adapters["a1"],
    }
    with run_server(tiny.model, adapters=served) as server:
        yield server


def tokenizer(folder: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder)


def rendered(
    tok: Any, messages: list[dict[str, str]], *, template: str | None = None, tools: Any = None
) -> list[int]:
    """The prompt ids as training saw them: the template's text, tokenized as it is."""
    text = tok.apply_chat_template(
        messages, tools=tools, chat_template=template, add_generation_prompt=True, tokenize=False
    )
    return list(tok(text, add_special_tokens=False)["input_ids"])


def served_ids(srv: Any, model: str, messages: Any, **extra: Any) -> list[int]:
    reply = httpx.post(
        srv.url + "/tokenize", json={"model": model, "messages": messages, **extra}, timeout=30
    )
    assert reply.status_code == 200, reply.text
    return list(reply.json()["tokens"])


def served_text(srv: Any, tokens: list[int]) -> str:
    reply = httpx.post(srv.url + "/detokenize", json={"model": BASE, "tokens": tokens}, timeout=30)
    assert reply.status_code == 200, reply.text
    return str(reply.json()["prompt"])


# ------------------------------------------------------------------ rendering


def test_each_model_renders_with_its_own_template(srv: Any, tiny: Any, adapters: Adapters) -> None:
    base_tok, chat_tok = tokenizer(tiny.model), tokenizer(adapters.chat)
    for messages in CONVERSATIONS:
        ids = served_ids(srv, "chat", messages)
        assert ids == rendered(chat_tok, messages)
        assert ids != rendered(base_tok, messages)
        assert served_ids(srv, BASE, messages) == rendered(base_tok, messages)
        assert served_ids(srv, "a1", messages) == rendered(base_tok, messages)  # no template
        assert served_ids(srv, "file-only", messages) == rendered(
            base_tok, messages, template=FILE_TEMPLATE
        )
    messages = CONVERSATIONS[2]
    assert served_text(srv, served_ids(srv, "chat", messages)) == (
        "<s>### SYSTEM:\nBe brief.<|im_end|>\n### USER:\nWhere is my invoice? Thank you."
        "<|im_end|>\n### ASSISTANT:\n"
    )
    assert served_text(srv, served_ids(srv, BASE, messages)).startswith("<|im_start|>system\n")
    assert served_text(srv, served_ids(srv, "file-only", messages)).startswith("[system] ")


def test_tool_support_follows_the_template_in_use(srv: Any, tiny: Any, adapters: Adapters) -> None:
    ask = [{"role": "user", "content": "What is the weather in Paris?"}]
    body = {"messages": ask, "tools": [WEATHER], "max_tokens": 4, "temperature": 0}
    refused = httpx.post(srv.v1 + "/chat/completions", json={"model": BASE, **body}, timeout=30)
    assert refused.status_code == 400, refused.text
    assert "does not render tools" in refused.json()["error"]["message"]

    answered = httpx.post(srv.v1 + "/chat/completions", json={"model": "tools", **body}, timeout=30)
    assert answered.status_code == 200, answered.text
    ids = served_ids(srv, "tools", ask, tools=[WEATHER])
    assert ids == rendered(tokenizer(adapters.tools), ask, tools=[WEATHER])
    assert "<tools>" in served_text(srv, ids)
    assert answered.json()["usage"]["prompt_tokens"] == len(ids)


# ------------------------------------------------------------------ parity with PEFT


@pytest.fixture(scope="module")
def merged(tiny: Any, adapters: Adapters) -> Any:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny.model, dtype=torch.float32)
    model = PeftModel.from_pretrained(base, str(adapters.chat)).merge_and_unload()
    model.eval()
    return model


def reference(model: Any, prompt: list[int], max_new: int = 16) -> list[int]:
    with torch.no_grad():
        out = model.generate(
            torch.tensor([prompt]),
            attention_mask=torch.ones((1, len(prompt)), dtype=torch.long),
            do_sample=False,
            max_new_tokens=max_new,
        )
    return list(out[0, len(prompt) :].tolist())


def test_greedy_output_is_the_merged_peft_models_token_for_token(
    srv: Any, tiny: Any, adapters: Adapters, merged: Any
) -> None:
    tok = tokenizer(adapters.chat)
    client = openai.OpenAI(base_url=srv.v1, api_key="unused", max_retries=0, timeout=60)
    for messages in CONVERSATIONS:
        prompt = rendered(tok, messages)
        expected = reference(merged, prompt)
        reply = client.chat.completions.create(
            model="chat",
            messages=messages,  # type: ignore[arg-type]
            max_tokens=16,
            temperature=0,
            logprobs=True,
        )
        choice = reply.choices[0]
        assert reply.usage is not None
        assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (
            len(prompt),
            len(expected),
        )
        assert choice.logprobs is not None and choice.logprobs.content is not None
        tokens = [entry.token for entry in choice.logprobs.content]
        assert tokens == [tok.decode([t]) for t in expected if t != tok.eos_token_id]
        assert choice.message.content == tok.decode(expected, skip_special_tokens=True)
        stopped = expected[-1] == tok.eos_token_id
        assert choice.finish_reason == ("stop" if stopped else "length")


def test_the_parity_depends_on_the_template_and_the_adapter(
    tiny: Any, adapters: Adapters, merged: Any
) -> None:
    """What the parity test rules out: the base's template (or no adapter) would answer
    otherwise, so the served output equals the reference for the right reasons."""
    from transformers import AutoModelForCausalLM

    base_model: Any = AutoModelForCausalLM.from_pretrained(tiny.model, dtype=torch.float32)
    base_model.eval()
    base_tok, chat_tok = tokenizer(tiny.model), tokenizer(adapters.chat)
    other_template = [
        reference(merged, rendered(chat_tok, m)) != reference(merged, rendered(base_tok, m))
        for m in CONVERSATIONS
    ]
    no_adapter = [
        reference(merged, rendered(chat_tok, m)) != reference(base_model, rendered(chat_tok, m))
        for m in CONVERSATIONS
    ]
    assert all(other_template) and all(no_adapter)


# ------------------------------------------------------------------ another vocabulary


@pytest.mark.parametrize(("kind", "sizes"), [("smaller", "400"), ("swapped", "512")])
def test_an_adapter_with_another_vocabulary_is_refused(
    srv: Any, adapters: Adapters, kind: str, sizes: str
) -> None:
    reply = httpx.post(
        srv.v1 + "/load_lora_adapter",
        json={"lora_name": f"foreign-{kind}", "lora_path": str(adapters.foreign[kind])},
        timeout=30,
    )
    assert reply.status_code == 400, reply.text
    message = reply.json()["error"]["message"]
    assert "was trained with another tokenizer" in message
    assert f"its vocabulary has {sizes} tokens, the base model's 512" in message
    models = httpx.get(srv.v1 + "/models", timeout=30).json()["data"]
    assert f"foreign-{kind}" not in {m["id"] for m in models}
    assert served_ids(srv, "chat", CONVERSATIONS[0])  # still serving


def test_a_foreign_vocabulary_fails_the_start(tiny: Any, adapters: Adapters) -> None:
    from genai.errors import ValidationError
    from genai.models.transformers import TransformersBackend

    backend = TransformersBackend(
        model=tiny.model, adapters={"x": adapters.foreign["swapped"]}, device="cpu"
    )

    async def start_then_close() -> None:
        try:
            await backend.start()
        finally:
            await backend.close()

    with pytest.raises(ValidationError, match="trained with another tokenizer") as caught:
        asyncio.run(start_then_close())
    assert caught.value.field == "lora_path"
    assert "token 'Ġaccount' is id" in caught.value.message  # the first that differs


def test_a_reload_without_a_template_goes_back_to_the_bases(
    serve: Any, tiny: Any, adapters: Adapters, tmp_path: Path
) -> None:
    srv = serve(tiny.model, adapters={"x": adapters.chat})
    messages = CONVERSATIONS[0]
    assert served_ids(srv, "x", messages) == rendered(tokenizer(adapters.chat), messages)
    plain = shutil.copytree(tiny.adapters["a2"], tmp_path / "plain")
    reply = httpx.post(
        srv.v1 + "/load_lora_adapter",
        json={"lora_name": "x", "lora_path": str(plain), "load_inplace": True},
        timeout=30,
    )
    assert reply.status_code == 200, reply.text
    assert served_ids(srv, "x", messages) == rendered(tokenizer(tiny.model), messages)
