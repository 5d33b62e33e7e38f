"""LoRA adapters on the model server: loaded and unloaded at run time through vLLM's
endpoints, refused when they do not fit, mixed freely in one batch, and served by registry
reference; all while the server keeps answering."""

from __future__ import annotations

import asyncio
import json
import shutil
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

BASE = "tiny-llama"
PROMPTS = [
    "Hello",
    "The quick brown fox jumps over the lazy dog",
    "How do I open an account? Where is my invoice? Thank you.",
    "Numbers: 0 1 2 3",
    "Yes",
    "Training runs fine-tune a base model with LoRA, and evaluation gates each promotion.",
]


def openai_client(srv: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=srv.v1, api_key="unused", max_retries=0, timeout=60)


def greedy(srv: Any, model: str, prompt: str = "Hello, world!", max_tokens: int = 16) -> str:
    reply = openai_client(srv).completions.create(
        model=model, prompt=prompt, max_tokens=max_tokens, temperature=0
    )
    assert reply.usage is not None
    assert reply.usage.completion_tokens == max_tokens  # finish_reason length: nothing cut short
    return str(reply.choices[0].text)


def load(srv: Any, name: str, path: Path | str, **extra: Any) -> httpx.Response:
    return httpx.post(
        srv.v1 + "/load_lora_adapter",
        timeout=30,
        json={"lora_name": name, "lora_path": str(path), **extra},
    )


def unload(srv: Any, name: str) -> httpx.Response:
    return httpx.post(srv.v1 + "/unload_lora_adapter", json={"lora_name": name}, timeout=30)


def refused(response: httpx.Response, status: int = 400) -> str:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    return str(error["message"])


def served(srv: Any) -> dict[str, Any]:
    return {m.id: m for m in openai_client(srv).models.list().data}


def long_stream(srv: Any, model: str, max_tokens: int) -> tuple[threading.Thread, list[Any]]:
    """A streamed greedy completion in a thread; its chunks land in the returned list."""
    chunks: list[Any] = []

    def run() -> None:
        stream = openai_client(srv).completions.create(
            model=model,
            prompt="Hello, world!",
            max_tokens=max_tokens,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks.extend(stream)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, chunks


# ------------------------------------------------------------------ run-time loading


def test_load_use_and_unload_at_run_time(tiny, serve) -> None:
    srv = serve(tiny.model)
    base_before = greedy(srv, BASE)
    assert list(served(srv)) == [BASE]
    with pytest.raises(openai.NotFoundError):
        greedy(srv, "a1")

    answer = load(srv, "a1", tiny.adapters["a1"])
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    assert answer.text == "Success: LoRA adapter 'a1' added successfully."
    info = served(srv)["a1"].model_dump()
    assert info["parent"] == BASE and info["root"] == str(tiny.adapters["a1"])
    assert srv.metric("genai_serve_adapters_loaded") == 1
    tuned = greedy(srv, "a1")
    assert tuned != base_before
    assert greedy(srv, BASE) == base_before  # the base is untouched by a loaded adapter

    answer = unload(srv, "a1")
    assert answer.status_code == 200
    assert answer.text == "Success: LoRA adapter 'a1' removed successfully."
    assert list(served(srv)) == [BASE] and srv.metric("genai_serve_adapters_loaded") == 0
    with pytest.raises(openai.NotFoundError):
        greedy(srv, "a1")
    assert greedy(srv, BASE) == base_before
    assert load(srv, "again", tiny.adapters["a1"]).status_code == 200  # a new name, same files
    assert greedy(srv, "again") == tuned


def test_each_adapter_changes_the_output(tiny, serve) -> None:
    srv = serve(tiny.model, adapters=tiny.adapters)
    outputs = {name: greedy(srv, name) for name in (BASE, "a1", "a2", "a3")}
    assert len(set(outputs.values())) == 4


def test_reload_in_place(tiny, serve) -> None:
    srv = serve(tiny.model, adapters={"x": tiny.adapters["a1"], "ref2": tiny.adapters["a2"]})
    first, other = greedy(srv, "x"), greedy(srv, "ref2")
    assert first != other
    assert "already loaded" in refused(load(srv, "x", tiny.adapters["a2"]))
    assert greedy(srv, "x") == first  # a refused load changes nothing
    answer = load(srv, "x", tiny.adapters["a2"], load_inplace=True)
    assert answer.status_code == 200 and "'x'" in answer.text
    assert greedy(srv, "x") == other
    assert served(srv)["x"].model_dump()["root"] == str(tiny.adapters["a2"])
    assert load(srv, "x", tiny.adapters["a1"], load_inplace=True).status_code == 200
    assert greedy(srv, "x") == first


def _misfits(tiny: Any, tmp: Path) -> dict[str, Path]:
    """Directories that are not LoRA adapters of the tiny model, and why."""
    empty = tmp / "empty"
    empty.mkdir()
    unnamed = tmp / "unnamed-other"  # the other base's adapter, its base name removed
    shutil.copytree(tiny.other_adapter, unnamed)
    config = json.loads((unnamed / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = None
    (unnamed / "adapter_config.json").write_text(json.dumps(config))
    ia3 = tmp / "ia3"
    shutil.copytree(tiny.adapters["a1"], ia3)
    (ia3 / "adapter_config.json").write_text(json.dumps({**config, "peft_type": "IA3"}))
    broken = tmp / "broken"
    broken.mkdir()
    (broken / "adapter_config.json").write_text("{not json")
    return {
        "no adapter_config.json": tiny.model,  # a model directory, not an adapter
        "not a LoRA adapter directory": empty,
        "(no adapter_config.json)": tmp / "missing",
        "was trained on": tiny.other_adapter,
        "meta-llama/Llama-3.2-1B": tiny.foreign_adapter,
        "does not fit": unnamed,
        "not LoRA": ia3,
        "not JSON": broken,
    }


def test_refused_loads_leave_the_server_serving(tiny, serve, tmp_path, wait_until) -> None:
    srv = serve(tiny.model, adapters={"a1": tiny.adapters["a1"]})
    engine = srv.backend._engine
    base, tuned = greedy(srv, BASE), greedy(srv, "a1")
    thread, chunks = long_stream(srv, "a1", max_tokens=1500)  # generating all along
    assert wait_until(lambda: engine.running == 1 and len(chunks) > 1, timeout=10)

    assert "already loaded" in refused(load(srv, "a1", tiny.adapters["a2"]))
    assert "'ghost'" in refused(unload(srv, "ghost"))
    for reason, path in _misfits(tiny, tmp_path).items():
        message = refused(load(srv, "misfit", path))
        assert reason in message, (path, message)
    assert refused(load(srv, "", tiny.adapters["a2"])) and refused(
        load(srv, BASE, tiny.adapters["a2"])
    )
    # an adapter in use cannot be unloaded or replaced until its requests end
    assert "generating" in refused(unload(srv, "a1"), 409)
    assert "generating" in refused(load(srv, "a1", tiny.adapters["a2"], load_inplace=True), 409)
    assert engine.running == 1 and thread.is_alive()  # the stream is still going

    assert greedy(srv, BASE) == base  # answered mid-stream, and the same as before
    thread.join(timeout=60)
    *_, final, usage = chunks
    assert final.choices[0].finish_reason == "length" and usage.usage.completion_tokens == 1500
    assert list(served(srv)) == [BASE, "a1"]
    assert greedy(srv, "a1") == tuned and greedy(srv, BASE) == base
    assert unload(srv, "a1").status_code == 200


def test_unload_waits_for_queued_requests(tiny, serve, wait_until) -> None:
    """A request waiting for a batch slot keeps its adapter loaded, like a running one."""
    srv = serve(tiny.model, adapters={"a1": tiny.adapters["a1"]}, max_batch_size=1)
    engine = srv.backend._engine
    expected = greedy(srv, "a1", max_tokens=8)
    thread, chunks = long_stream(srv, BASE, max_tokens=1000)
    assert wait_until(lambda: engine.running == 1, timeout=10)
    with ThreadPoolExecutor(1) as pool:
        queued = pool.submit(greedy, srv, "a1", "Hello, world!", 8)
        assert wait_until(lambda: engine.waiting == 1, timeout=10)
        assert "generating" in refused(unload(srv, "a1"), 409)
        assert queued.result(timeout=60) == expected
    thread.join(timeout=60)
    assert chunks[-1].usage.completion_tokens == 1000
    assert unload(srv, "a1").status_code == 200


def test_a_failed_prefill_fails_only_its_own_requests(tiny, serve, wait_until) -> None:
    """A request whose adapter the engine lacks (as when it vanished between the check and
    the prefill) gets an OpenAI error at once; the batch that runs is not disturbed."""
    from genai.models import LoadedAdapter

    srv = serve(tiny.model, adapters={"a1": tiny.adapters["a1"]})
    engine = srv.backend._engine
    srv.backend._adapters["ghost"] = LoadedAdapter(name="ghost", path="/gone", base_model=BASE)
    thread, chunks = long_stream(srv, "a1", max_tokens=800)
    assert wait_until(lambda: engine.running == 1, timeout=10)
    for stream in (False, True):
        body = {"model": "ghost", "prompt": "Hello", "max_tokens": 4, "stream": stream}
        answer = httpx.post(srv.v1 + "/completions", json=body, timeout=10)
        assert answer.status_code == 502, answer.text
        error = answer.json()["error"]
        assert error["type"] == "server_error" and "ghost" in error["message"]
    assert engine.running == 1 and thread.is_alive()
    thread.join(timeout=60)
    assert chunks[-1].usage.completion_tokens == 800
    del srv.backend._adapters["ghost"]
    assert greedy(srv, "a1", max_tokens=3)


# ------------------------------------------------------------------ batching


def test_mixed_adapter_batches_equal_single_runs(tiny, serve) -> None:
    srv = serve(tiny.model, adapters=tiny.adapters, dtype="float32")
    models = [BASE, "a1", "a2", "a3"]
    jobs = [(models[i % 4], PROMPTS[i % len(PROMPTS)], 4 + 3 * i) for i in range(12)]
    alone = [greedy(srv, *job) for job in jobs]
    before = srv.scrape()
    with ThreadPoolExecutor(len(jobs)) as pool:
        together = list(pool.map(lambda job: greedy(srv, *job), jobs))
    assert together == alone
    after = srv.scrape()
    steps = after("genai_serve_batch_rows_count") - before("genai_serve_batch_rows_count")
    rows = after("genai_serve_batch_rows_sum") - before("genai_serve_batch_rows_sum")
    assert rows / steps > 2  # the requests really shared engine steps


def test_32_concurrent_requests_all_succeed(tiny, serve) -> None:
    srv = serve(tiny.model, adapters=tiny.adapters)
    models = [BASE, "a1", "a2", "a3"]
    client = openai_client(srv)

    def prompt_tokens_of(prompt: str) -> int:
        usage = client.completions.create(model=BASE, prompt=prompt, max_tokens=1).usage
        assert usage is not None
        return usage.prompt_tokens

    prompt_tokens = {p: prompt_tokens_of(p) for p in PROMPTS}

    async def one(aio: openai.AsyncOpenAI, i: int) -> tuple[int, Any]:
        prompt, max_tokens = PROMPTS[i % len(PROMPTS)], 20 + i % 9
        if i % 2:
            completion = await aio.completions.create(
                model=models[i % 4], prompt=prompt, max_tokens=max_tokens, seed=i
            )
            return i, completion
        chat = await aio.chat.completions.create(
            model=models[i % 4],
            messages=[{"role": "user", "content": prompt}],
            max_tokens=max_tokens,
            temperature=0,
        )
        return i, chat

    async def main() -> list[tuple[int, Any]]:
        async with openai.AsyncOpenAI(
            base_url=srv.v1, api_key="unused", max_retries=0, timeout=60
        ) as aio:
            return await asyncio.gather(*(one(aio, i) for i in range(32)))

    def wide_steps() -> float:  # engine steps with more than 8 rows
        sample: Callable[..., float] = srv.scrape()
        return sample("genai_serve_batch_rows_count") - sample(
            "genai_serve_batch_rows_bucket", le="8.0"
        )

    before = wide_steps()
    for i, reply in asyncio.run(main()):
        assert reply.model == models[i % 4]
        usage, (choice,) = reply.usage, reply.choices
        if choice.finish_reason == "length":
            assert usage.completion_tokens == 20 + i % 9
        else:  # a sampled end token
            assert choice.finish_reason == "stop" and usage.completion_tokens < 20 + i % 9
        assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
        if i % 2:
            assert usage.prompt_tokens == prompt_tokens[PROMPTS[i % len(PROMPTS)]]
    assert wide_steps() > before
    assert srv.metric("genai_serve_requests_in_flight") == 0


def two_row_steps(srv: Any) -> float:
    sample: Callable[..., float] = srv.scrape()
    return sample("genai_serve_batch_rows_bucket", le="2.0") - sample(
        "genai_serve_batch_rows_bucket", le="1.0"
    )


def test_requests_join_a_running_batch(tiny, serve, wait_until) -> None:
    srv = serve(tiny.model, adapters=tiny.adapters)
    engine = srv.backend._engine
    jobs = [("a2", PROMPTS[2], 12), (BASE, PROMPTS[1], 5), ("a3", PROMPTS[0], 9)]
    alone = [greedy(srv, *job) for job in jobs]
    pairs = two_row_steps(srv)
    thread, chunks = long_stream(srv, "a1", max_tokens=1200)
    assert wait_until(lambda: engine.running == 1 and len(chunks) > 3, timeout=10)
    for job, expected in zip(jobs, alone, strict=True):
        assert greedy(srv, *job) == expected  # joined mid-way, same tokens as alone
        assert wait_until(lambda: engine.running == 1) and thread.is_alive()  # still decoding
    # steps of the long row with a newcomer: all but a newcomer's first and last token
    assert two_row_steps(srv) - pairs == (12 - 2) + (5 - 2) + (9 - 2)
    thread.join(timeout=60)
    assert chunks[-1].usage.completion_tokens == 1200


# ------------------------------------------------------------------ registry references


@pytest.mark.parametrize("by_reference", [False, True], ids=["model-dir", "model-ref"])
def test_adapters_by_registry_reference(tiny, serve, platform, tmp_path, by_reference) -> None:
    from genai.serving import RegistrySource

    client = platform()
    client.projects.create("serving")
    models = client.registry.models
    models.register("serving", "tiny", source=str(tiny.model), license="apache-2.0")
    models.register("serving", "other", source=str(tiny.other_model), license="apache-2.0")
    adapters = client.registry.adapters
    adapters.register("serving", "helper", base_model="tiny", path=tiny.adapters["a2"])
    adapters.register("serving", "stranger", base_model="other", path=tiny.other_adapter)

    source = RegistrySource(client, "serving", cache_dir=tmp_path / "cache")
    if by_reference:
        model_dir = source.model_dir("model:tiny@1")
    else:
        model_dir = tiny.model
        source.serve_directory(model_dir)
    srv = serve(
        model_dir, adapters={"direct": tiny.adapters["a2"]}, resolve_adapter=source.adapter_dir
    )
    answer = load(srv, "helper", "adapter:helper@1")
    assert answer.status_code == 200, answer.text
    assert greedy(srv, "helper") == greedy(srv, "direct") != greedy(srv, BASE)
    root = Path(served(srv)["helper"].model_dump()["root"])
    assert root.is_relative_to(tmp_path / "cache") and (root / "adapter_config.json").is_file()

    message = refused(load(srv, "stranger", "adapter:stranger@1"))
    assert "model:other@1" in message and "stranger" in message
    assert refused(load(srv, "ghost", "adapter:ghost@1"), 404)
    assert "stranger" not in served(srv) and "ghost" not in served(srv)
    assert greedy(srv, "helper") == greedy(srv, "direct")
