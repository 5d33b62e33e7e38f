"""DLP through a real gateway: a fake remote LLM (a real HTTP server on 127.0.0.1 that
records what it received) sees tokens only, and the client sees its own data again:
whole answers, streams (tokens split across chunks), tool calls. Sessions keep tokens
stable and apart; detection failing refuses the request; blocked data never leaves; and
after a run, no raw personal data is in the database, the logs or the cache.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam
from sqlalchemy import inspect, select, text

import genai
from apps._dlp import DlpRequestStage, dlp_stages
from genai.dlp import Dlp, Policy, RedisVault, SqlVault, load_keys
from genai.gateway import CachedAnswer, GatewayRequest, Stages
from genai.store import Store
from genai.store import schema as t
from genai.testing import FakeOpenAIServer, running_server

EMAIL, OTHER, CARD = "alice@example.com", "bob@example.org", "4111 1111 1111 1111"
RAW = (EMAIL, OTHER, CARD, "4111111111111111", "alice@", "bob@")
POLICY = Policy(default_action="pseudonymise")


# SQLite here; the vault's own tests run on PostgreSQL and Redis too.
pytestmark = pytest.mark.sqlite_only


@pytest.fixture
def settings(settings_factory: Callable[..., genai.Settings]) -> genai.Settings:
    return settings_factory(dlp_ner="none")  # pattern recognizers: e-mails, cards


@dataclass
class TokenCache:
    """A cache stage keyed by project, deployment and the (pseudonymised) messages."""

    name: str = "test-cache"

    def __post_init__(self) -> None:
        self.entries: dict[str, dict[str, Any]] = {}

    def key(self, request: GatewayRequest) -> str:
        body = request.body
        return json.dumps(
            [request.project_id, request.deployment, body.get("messages"), body.get("prompt")]
        )

    async def lookup(self, request: GatewayRequest) -> CachedAnswer | None:
        hit = self.entries.get(self.key(request))
        return CachedAnswer(hit) if hit is not None else None

    async def store(self, request: GatewayRequest, response: dict[str, Any]) -> None:
        self.entries[self.key(request)] = response


@dataclass
class World:
    admin: genai.Client
    keys: dict[str, str]  # project → API key
    upstream: FakeOpenAIServer
    shadow: FakeOpenAIServer
    cache: TokenCache
    gw: Any
    start: Callable[..., Any]

    def client(self, project: str = "dlp-a") -> openai.OpenAI:
        return openai.OpenAI(base_url=self.gw.v1, api_key=self.keys[project], max_retries=0)

    def sent(self) -> dict[str, Any]:
        """The body the remote LLM received last."""
        return self.upstream.requests[-1].body  # type: ignore[no-any-return]


@pytest.fixture
def world(
    platform: Callable[..., genai.Client],
    settings: genai.Settings,
    gateway_server: Callable[..., Any],
) -> Iterator[World]:
    admin = platform()
    upstream = FakeOpenAIServer(max_model_len=100_000)
    shadow = FakeOpenAIServer(max_model_len=100_000)
    with running_server(upstream.app) as url, running_server(shadow.app) as shadow_url:
        keys = {}
        for project in ("dlp-a", "dlp-b"):
            admin.projects.create(project)
            admin.registry.deployments.create(
                project,
                "chat",
                spec={
                    "targets": [{"name": "remote", "url": url + "/v1", "model": "fake-base"}],
                    "shadow": {
                        "target": {
                            "name": "mirror",
                            "url": shadow_url + "/v1",
                            "model": "fake-base",
                        }
                    },
                    "retries": 0,
                },
            )
            admin.projects.set_option(project, "dlp", POLICY.to_json())
            admin.projects.set_option(project, "prompt_logging", True)
            keys[project] = admin.keys.create(project, role="developer").secret
        store = Store(settings.resolved_database_url)
        cache = TokenCache()

        def start(request_stage: Any = None) -> Any:
            req, resp = dlp_stages(settings, store)
            stages = Stages(request=[request_stage or req], response=[resp], cache=cache)
            return gateway_server(settings, stages=stages)

        try:
            yield World(admin, keys, upstream, shadow, cache, start(), start)
        finally:
            store.dispose()


def _chat(world: World, messages: list[ChatCompletionMessageParam], **kwargs: Any) -> Any:
    return world.client(kwargs.pop("project", "dlp-a")).chat.completions.create(
        model="chat", messages=messages, **kwargs
    )


def _no_raw(where: str, text_: str) -> None:
    found = [raw for raw in RAW if raw in text_]
    assert not found, f"raw personal data {found} in {where}"


CONVERSATION: list[ChatCompletionMessageParam] = [
    {"role": "system", "content": "You help customers of ACME; escalate to alice@example.com."},
    {"role": "user", "content": [{"type": "text", "text": f"I am {EMAIL}, card {CARD}."}]},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "lookup", "arguments": json.dumps({"email": EMAIL})},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": json.dumps({"card": CARD})},
    {"role": "user", "content": "Please confirm both."},
]
TOKENISED_REPLY = "Confirmed <EMAIL_ADDRESS_1> and < CREDIT_CARD_1 > (card) ok"
RESTORED_REPLY = f"Confirmed {EMAIL} and {CARD} (card) ok"


# --------------------------------------------------------------------------- the round trip


def test_the_upstream_sees_tokens_only_and_the_client_the_originals(world: World) -> None:
    world.upstream.reply = TOKENISED_REPLY
    answer = _chat(world, CONVERSATION)
    assert answer.choices[0].message.content == RESTORED_REPLY
    sent = world.sent()
    _no_raw("the upstream request", json.dumps(sent))
    assert sent["messages"][0]["content"].endswith("escalate to <EMAIL_ADDRESS_1>.")
    assert (
        sent["messages"][1]["content"][0]["text"] == "I am <EMAIL_ADDRESS_1>, card <CREDIT_CARD_1>."
    )
    arguments = sent["messages"][2]["tool_calls"][0]["function"]["arguments"]
    assert json.loads(arguments) == {"email": "<EMAIL_ADDRESS_1>"}
    assert json.loads(sent["messages"][3]["content"]) == {"card": "<CREDIT_CARD_1>"}


def test_a_stream_restores_tokens_split_across_chunks(world: World) -> None:
    world.upstream.reply = TOKENISED_REPLY  # "< CREDIT_CARD_1 >" comes in three chunks
    pieces = [
        c.choices[0].delta.content
        for c in _chat(world, CONVERSATION, stream=True)
        if c.choices and c.choices[0].delta.content
    ]
    assert "".join(pieces) == RESTORED_REPLY
    for piece in pieces:  # never half a token, never half a value
        assert "<" not in piece and ">" not in piece and "CREDIT" not in piece
        assert piece.strip() in RESTORED_REPLY
    assert any(CARD in piece for piece in pieces)
    _no_raw("the upstream request", json.dumps(world.sent()))


def test_a_completion_prompt_is_pseudonymised_and_restored(world: World) -> None:
    world.upstream.reply = "Dear <EMAIL_ADDRESS_1>,"
    answer = world.client().completions.create(model="chat", prompt=f"Write to {EMAIL}")
    assert answer.choices[0].text == f"Dear {EMAIL},"
    assert world.sent()["prompt"] == "Write to <EMAIL_ADDRESS_1>"


TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "send_mail",
            "parameters": {"type": "object", "properties": {"to": {"type": "string"}}},
        },
    }
]
TOOL_ARGUMENTS = json.dumps(
    {"to": "<EMAIL_ADDRESS_1>", "card": "CREDIT_CARD_1", "note": 'for "<email_address_1>"'}
)
RESTORED_ARGUMENTS = {"to": EMAIL, "card": CARD, "note": f'for "{EMAIL}"'}


def test_tool_call_arguments_are_restored_in_a_whole_answer(world: World) -> None:
    world.upstream.tool_arguments = TOOL_ARGUMENTS
    answer = _chat(world, [{"role": "user", "content": f"Mail {EMAIL} about {CARD}"}], tools=TOOLS)
    call = answer.choices[0].message.tool_calls[0]
    assert json.loads(call.function.arguments) == RESTORED_ARGUMENTS
    _no_raw("the upstream request", json.dumps(world.sent()))


def test_streamed_tool_call_arguments_are_restored_across_chunks(world: World) -> None:
    world.upstream.tool_arguments = TOOL_ARGUMENTS  # sent in pieces [:5] [5:17] [17:]
    pieces = (TOOL_ARGUMENTS[:5], TOOL_ARGUMENTS[5:17], TOOL_ARGUMENTS[17:])
    assert not any("<EMAIL_ADDRESS_1>" in piece for piece in pieces)  # split across two
    chunks = list(
        _chat(
            world,
            [{"role": "user", "content": f"Mail {EMAIL} about {CARD}"}],
            tools=TOOLS,
            stream=True,
        )
    )
    arguments = "".join(
        call.function.arguments or ""
        for c in chunks
        if c.choices
        for call in c.choices[0].delta.tool_calls or []
    )
    assert json.loads(arguments) == RESTORED_ARGUMENTS
    assert chunks[-1].choices[0].finish_reason == "tool_calls" or any(
        c.choices and c.choices[0].finish_reason == "tool_calls" for c in chunks
    )


# --------------------------------------------------------------------------- sessions


def test_a_session_keeps_tokens_stable_across_turns(world: World) -> None:
    session = {"x-genai-session": "conversation-1"}
    world.upstream.reply = "ok <EMAIL_ADDRESS_1> <EMAIL_ADDRESS_2>"
    _chat(world, [{"role": "user", "content": f"I am {EMAIL}"}], extra_headers=session)
    assert world.sent()["messages"][0]["content"] == "I am <EMAIL_ADDRESS_1>"
    second = _chat(
        world,
        [{"role": "user", "content": f"{OTHER} wrote to {EMAIL}"}],
        extra_headers=session,
    )
    assert world.sent()["messages"][0]["content"] == "<EMAIL_ADDRESS_2> wrote to <EMAIL_ADDRESS_1>"
    assert second.choices[0].message.content == f"ok {EMAIL} {OTHER}"
    _chat(world, [{"role": "user", "content": f"Now I am {OTHER}"}])  # no session: its own
    assert world.sent()["messages"][0]["content"] == "Now I am <EMAIL_ADDRESS_1>"


def test_another_project_never_gets_a_sessions_values(world: World) -> None:
    session = {"x-genai-session": "shared-id"}
    _chat(world, [{"role": "user", "content": f"I am {EMAIL}"}], extra_headers=session)
    world.upstream.reply = "you are <EMAIL_ADDRESS_1>"
    theirs = _chat(
        world, [{"role": "user", "content": "who am I?"}], extra_headers=session, project="dlp-b"
    )
    assert theirs.choices[0].message.content == "you are <EMAIL_ADDRESS_1>"  # not restored
    mine = _chat(world, [{"role": "user", "content": "who am I?"}], extra_headers=session)
    assert mine.choices[0].message.content == f"you are {EMAIL}"


def test_the_cache_serves_another_session_its_own_values(world: World) -> None:
    world.upstream.reply = "The account of <EMAIL_ADDRESS_1> is fine"
    ask: list[ChatCompletionMessageParam] = [
        {"role": "user", "content": f"Summarise the account of {EMAIL}"}
    ]
    first = _chat(world, ask, extra_headers={"x-genai-session": "u1"})
    assert first.choices[0].message.content == f"The account of {EMAIL} is fine"
    calls = world.upstream.calls()
    other: list[ChatCompletionMessageParam] = [
        {"role": "user", "content": f"Summarise the account of {OTHER}"}
    ]
    raw = world.client().chat.completions.with_raw_response.create(
        model="chat", messages=other, extra_headers={"x-genai-session": "u2"}
    )
    assert raw.headers["x-genai-cache"] == "hit" and world.upstream.calls() == calls
    assert raw.parse().choices[0].message.content == f"The account of {OTHER} is fine"
    for entry in world.cache.entries.values():
        _no_raw("the cache", json.dumps(entry))


@pytest.mark.parametrize("backend", ["sql", "redis"])
def test_two_gateway_processes_share_a_session(
    backend: str,
    world: World,
    settings: genai.Settings,
    gateway_server: Callable[..., Any],
    request: pytest.FixtureRequest,
) -> None:
    """Each gateway has its own vault object; the session lives in the database or Redis."""
    prefix = f"genai-test-{secrets.token_hex(4)}:"
    if backend == "redis":
        settings = settings.model_copy(
            update={"redis_url": request.getfixturevalue("redis_url"), "redis_prefix": prefix}
        )
    store = Store(settings.resolved_database_url)
    try:
        gateways = []
        for _ in range(2):
            req, resp = dlp_stages(settings, store)
            assert type(req.dlp.vault).__name__ == (
                "RedisVault" if backend == "redis" else "SqlVault"
            )
            gateways.append(gateway_server(settings, stages=Stages(request=[req], response=[resp])))
        clients = [
            openai.OpenAI(base_url=gw.v1, api_key=world.keys["dlp-a"], max_retries=0)
            for gw in gateways
        ]
        session = {"x-genai-session": f"across-{backend}"}
        world.upstream.reply = "noted <EMAIL_ADDRESS_2> and <EMAIL_ADDRESS_1>"
        clients[0].chat.completions.create(
            model="chat",
            messages=[{"role": "user", "content": f"I am {EMAIL}"}],
            extra_headers=session,
        )
        answer = clients[1].chat.completions.create(
            model="chat",
            messages=[{"role": "user", "content": f"Mail {OTHER}, not {EMAIL}"}],
            extra_headers=session,
        )
        assert (
            world.sent()["messages"][0]["content"]
            == "Mail <EMAIL_ADDRESS_2>, not <EMAIL_ADDRESS_1>"
        )
        assert answer.choices[0].message.content == f"noted {OTHER} and {EMAIL}"
    finally:
        store.dispose()
        if backend == "redis":
            import redis

            client = redis.Redis.from_url(settings.redis_url or "")
            for key in client.scan_iter(match=f"{prefix}*"):
                client.delete(key)


# --------------------------------------------------------------------------- refusals


def test_blocked_data_is_refused_and_never_sent(world: World) -> None:
    world.admin.projects.set_option(
        "dlp-a", "dlp", Policy(entities={"CREDIT_CARD": "block"}).to_json()
    )
    gw = world.start()  # a new gateway: no cached project options
    client = openai.OpenAI(base_url=gw.v1, api_key=world.keys["dlp-a"], max_retries=0)
    calls = world.upstream.calls()
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": f"card {CARD}"}]
        )
    assert caught.value.code == "dlp_blocked"
    assert "CREDIT_CARD (1)" in str(caught.value) and "4111" not in str(caught.value)
    assert world.upstream.calls() == calls


def test_detection_failing_refuses_the_request(world: World, tmp_path: Path) -> None:
    store = world.admin.store
    broken = Dlp(
        keys=load_keys(world.admin.settings),
        vault=SqlVault(store, load_keys(world.admin.settings)),
        ner=str(tmp_path / "no-such-ner-model"),  # the detector cannot load: a real failure
    )
    gw = world.start(DlpRequestStage(broken))
    client = openai.OpenAI(base_url=gw.v1, api_key=world.keys["dlp-a"], max_retries=0)
    calls = world.upstream.calls()
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": f"I am {EMAIL}"}]
        )
    assert caught.value.status_code == 503
    assert "fails closed" in str(caught.value) and "fail_open" in str(caught.value)
    assert EMAIL not in str(caught.value)
    assert world.upstream.calls() == calls  # nothing left the gateway

    # a project that chose to fail open is served (unchecked) by the same gateway
    world.admin.projects.set_option("dlp-b", "dlp", Policy(fail_open=True).to_json())
    other = openai.OpenAI(base_url=gw.v1, api_key=world.keys["dlp-b"], max_retries=0)
    world.upstream.reply = "fine"
    assert (
        other.chat.completions.create(model="chat", messages=[{"role": "user", "content": "hello"}])
        .choices[0]
        .message.content
        == "fine"
    )


def test_the_vault_down_refuses_or_with_fail_open_redacts(world: World) -> None:
    keys = load_keys(world.admin.settings)
    nowhere = RedisVault("redis://127.0.0.1:1/0", keys)  # nothing listens there
    gw = world.start(DlpRequestStage(Dlp(keys=keys, vault=nowhere, ner="none")))
    session = {"x-genai-session": "s"}
    ask: list[ChatCompletionMessageParam] = [{"role": "user", "content": f"I am {EMAIL}"}]
    calls = world.upstream.calls()
    mine = openai.OpenAI(base_url=gw.v1, api_key=world.keys["dlp-a"], max_retries=0)
    with pytest.raises(openai.APIStatusError) as caught:
        mine.chat.completions.create(model="chat", messages=ask, extra_headers=session)
    assert caught.value.status_code == 503 and "Redis" in str(caught.value)
    assert world.upstream.calls() == calls

    world.admin.projects.set_option("dlp-b", "dlp", Policy(fail_open=True).to_json())
    theirs = openai.OpenAI(base_url=gw.v1, api_key=world.keys["dlp-b"], max_retries=0)
    world.upstream.reply = "hello"
    theirs.chat.completions.create(model="chat", messages=ask, extra_headers=session)
    assert world.sent()["messages"][0]["content"] == "I am <EMAIL_ADDRESS>"  # redacted instead


def test_detection_timing_out_refuses_the_request(world: World) -> None:
    world.admin.projects.set_option("dlp-a", "dlp", Policy(timeout_s=0.001).to_json())
    gw = world.start()
    long = " ".join(f"user{i}@example.com" for i in range(3000))
    response = httpx.post(
        gw.v1 + "/chat/completions",
        headers={"authorization": f"Bearer {world.keys['dlp-a']}"},
        json={"model": "chat", "messages": [{"role": "user", "content": long}]},
        timeout=60,
    )
    assert response.status_code == 503, response.text
    assert "timeout_s" in response.json()["error"]["message"]
    assert response.headers["retry-after"] == "1"


# --------------------------------------------------------------------------- no raw PII left


def test_after_a_run_no_raw_personal_data_is_anywhere(
    world: World, caplog: pytest.LogCaptureFixture, wait_until: Callable[..., bool]
) -> None:
    caplog.set_level(logging.DEBUG)
    session = {"x-genai-session": "audit"}
    world.upstream.reply = TOKENISED_REPLY
    world.shadow.reply = TOKENISED_REPLY
    _chat(world, CONVERSATION, extra_headers=session)
    list(_chat(world, CONVERSATION[:2], extra_headers=session, stream=True))
    _chat(world, CONVERSATION, extra_headers=session)  # a cache hit
    world.upstream.tool_arguments = TOOL_ARGUMENTS
    _chat(world, [{"role": "user", "content": f"Mail {OTHER}"}], tools=TOOLS)
    world.client().completions.create(model="chat", prompt=f"Write to {EMAIL}")
    gw = world.gw.gateway
    assert wait_until(lambda: not gw.shadows_in_flight, timeout=10)  # shadow rows are written
    assert gw.ledger.flush()

    # the database: every table, every column
    held = []
    store = world.admin.store
    with store.session() as s:
        for table in sorted(inspect(store.engine).get_table_names()):
            rows = s.execute(text(f'SELECT * FROM "{table}"')).all()
            held.append(f"{table}: {[tuple(r) for r in rows]!r}")
        shadows = s.scalars(select(t.ShadowResult)).all()
        vault = s.scalars(select(t.DlpVaultEntry)).all()
    _no_raw("the database", "\n".join(held))
    assert shadows and any("EMAIL_ADDRESS_1" in r.primary_text for r in shadows)
    assert vault  # the session's pseudonyms are kept, encrypted

    # the platform's logs, at every level (the access log holds the requests: prompt
    # logging is on); the test's own OpenAI client logs what it sends, so it is left out
    platform_logs = "\n".join(
        f"{r.name} {r.getMessage()} {r.exc_text or ''}"
        for r in caplog.records
        if r.name.split(".")[0] not in ("openai", "httpx", "httpcore")
    )
    _no_raw("the logs", platform_logs)
    assert "<EMAIL_ADDRESS_1>" in platform_logs
    # the cache, and what the remote models received
    _no_raw("the cache", json.dumps(world.cache.entries))
    for fake in (world.upstream, world.shadow):
        _no_raw("an upstream", json.dumps([r.body for r in fake.requests]))


def test_a_project_without_dlp_still_logs_no_raw_prompts(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    world.admin.projects.set_option("dlp-b", "dlp", Policy(enabled=False).to_json())
    caplog.set_level(logging.INFO)
    world.upstream.reply = "sure"
    _chat(world, [{"role": "user", "content": f"I am {EMAIL}"}], project="dlp-b")
    assert world.sent()["messages"][0]["content"] == f"I am {EMAIL}"  # DLP is off: sent as is
    assert world.gw.gateway.ledger.flush()
    access = [r.getMessage() for r in caplog.records if r.name == "genai.gateway.access"]
    assert access, "prompt logging is on: the access log has the request"
    _no_raw("the access log", "\n".join(access))


# --------------------------------------------------------------------------- loading detectors


def _unique_policy() -> Policy:
    """A policy whose detector no test built yet (detectors are shared by the process)."""
    word = f"Codename{secrets.token_hex(4)}"
    return Policy.parse(
        {"recognizers": [{"kind": "deny_list", "entity_type": "CODENAME", "values": [word]}]}
    )


def test_warming_builds_the_detectors_the_projects_policies_need(
    world: World, settings: genai.Settings
) -> None:
    used, unused = _unique_policy(), _unique_policy()
    world.admin.projects.set_option("dlp-b", "dlp", used.to_json())
    store = Store(settings.resolved_database_url)
    try:
        request, _ = dlp_stages(settings, store)
        assert not request.dlp.loaded(used)
        assert request.warm(store) == 2  # dlp-a's policy and dlp-b's
        assert request.dlp.loaded(used) and request.dlp.loaded(POLICY)
        assert not request.dlp.loaded(unused)
    finally:
        store.dispose()


def test_a_detector_a_request_had_to_build_runs_after_load_once(
    world: World, settings: genai.Settings, wait_until: Any
) -> None:
    """What `genai gateway` passes there freezes the heap with the new model in it."""
    policy = _unique_policy()
    world.admin.projects.set_option("dlp-a", "dlp", policy.to_json())
    world.upstream.reply = "noted"
    loads: list[bool] = []
    store = Store(settings.resolved_database_url)
    try:
        request, _ = dlp_stages(settings, store, after_load=lambda: loads.append(True))
        gateway = world.start(request)
        client = openai.OpenAI(base_url=gateway.v1, api_key=world.keys["dlp-a"], max_retries=0)
        message = [{"role": "user", "content": f"I am {EMAIL}"}]
        client.chat.completions.create(model="chat", messages=message)  # type: ignore[arg-type]
        assert request.dlp.loaded(policy)
        assert wait_until(lambda: loads == [True], timeout=10)
        client.chat.completions.create(model="chat", messages=message)  # type: ignore[arg-type]
        request.close()
        request._pool.shutdown(wait=True)  # whatever the requests handed to it has run
        assert loads == [True]
        assert "EMAIL_ADDRESS_1" in json.dumps(world.sent())
    finally:
        store.dispose()


def test_the_gateway_loads_the_projects_detectors_before_after_warm(
    world: World, settings: genai.Settings
) -> None:
    """``stages_for``, as `genai gateway` builds it: the embedding model, then the DLP
    detectors projects use, then ``after_warm`` (freeze_heap), in one background thread."""
    import threading

    from apps.gateway import stages_for

    policy = _unique_policy()
    world.admin.projects.set_option("dlp-b", "dlp", policy.to_json())
    store = Store(settings.resolved_database_url)
    built: list[DlpRequestStage] = []
    ready, done = threading.Event(), threading.Event()
    seen: list[bool] = []

    def after_warm() -> None:  # in the warm-up thread: is the stage's detector built?
        assert ready.wait(60)
        seen.append(built[0].dlp.loaded(policy))
        done.set()

    try:
        stages = stages_for(settings, store, after_warm=after_warm)
        built.extend(s for s in stages.request if isinstance(s, DlpRequestStage))
        ready.set()
        assert done.wait(120)
        assert seen == [True]
        assert stages.cache is not None
        stages.cache.close()  # type: ignore[attr-defined]
    finally:
        store.dispose()


def test_the_gateway_stages_share_the_process_embedder(settings: genai.Settings) -> None:
    """One embedding model per gateway process: the cache and the knowledge bots use the
    embedder ``stages_for`` is given (the app gives the same one to /v1/embeddings)."""
    from apps._cache import GatewayCache, _MemoEmbedder
    from apps._knowledge import KnowledgeBot
    from apps.gateway import stages_for
    from genai.testing import FakeEmbedder

    embedder = FakeEmbedder()
    store = Store(settings.resolved_database_url)
    try:
        stages = stages_for(settings, store, embedder=embedder)
        assert isinstance(stages.cache, GatewayCache)
        memo = stages.cache.cache.embedder  # the cache's memo in front of the embedder
        assert isinstance(memo, _MemoEmbedder) and memo.inner is embedder
        bot = stages.targets[KnowledgeBot.name]
        assert isinstance(bot, KnowledgeBot) and bot._embedder is embedder
        stages.cache.close()
    finally:
        store.dispose()
