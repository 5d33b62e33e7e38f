"""The gateway's stage suites: ``RequestStageSuite`` and ``ResponseStageSuite`` here,
``CacheStageSuite`` and ``TargetStageSuite`` in :mod:`genai.testing._suites_gateway_answers`,
and :class:`StageRequests`, which builds the requests they send.

- :class:`RequestStageSuite` (``stage``): ``before`` lets a plain request of each endpoint
  through with a valid body, and concurrent requests keep their own bodies.
- :class:`ResponseStageSuite` (``stage``): ``after`` leaves an answer with nothing to change
  as it is; a stream filter gives such text back whole for any split of it into pieces
  (what it held back, in ``flush``), rewrites streams as ``after`` rewrites whole answers,
  keeps two streams apart, and passes tool-call arguments.
- :class:`~genai.testing.CacheStageSuite` (``cache``): a stored answer hits for the same
  request, as a copy; another project, deployment, revision, adapter, prompt or
  knowledge-base version, system message or output parameter misses; a request DLP let
  through unchecked is never stored; a pseudonymised one never hits outside its session;
  feedback evicts within its project only.
- :class:`~genai.testing.TargetStageSuite` (``target``, ``target_spec``): ``complete``
  answers with an OpenAI ``chat.completion``, ``stream`` with ``chat.completion.chunk``
  bodies that end once and carry the usage, and a :class:`~genai.gateway.PreparedTarget`
  prepares idempotently.

The suites call a stage as the gateway does (request stages, then ``prepare``, then the
cache's ``lookup`` and, after the target, its ``store`` of the same request; response
stages with the request their request stage saw), with requests from the ``make_request``
fixture: a :class:`StageRequests`, which builds chat requests as the gateway does once it
has authenticated an API key of the first project (or the second). A stage that needs real
projects or project options overrides it::

    class TestMyRedactor(RequestStageSuite):
        @pytest.fixture
        def stage(self):
            return MyRedactor()

        @pytest.fixture
        def make_request(self, projects):    # (id, name) of two projects it knows
            return StageRequests(projects=projects, options={"dlp": {...}})

The tests are async and run on anyio's pytest plugin, on asyncio unless a subclass
overrides the ``anyio_backend`` fixture.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import random
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from genai.gateway._stages import (
    GatewayRequest,
    RequestStage,
    ResponseStage,
    StageNotes,
    StreamFilter,
    ToolCallFilter,
)
from genai.tenancy import Principal, Role

__all__ = ["RequestStageSuite", "ResponseStageSuite", "StageRequests"]

QUESTION = "How long do refunds take?"
OTHER_QUESTION = "Which colours does the garden fence come in?"
ROLES = ("system", "developer", "user", "assistant", "tool")
#: Texts a response stage has nothing to change in: brackets, partial openers, look-alikes
#: of pseudonyms, non-ASCII, a text that ends while a token could still be forming.
PLAIN_TEXTS = (
    "Refunds reach your card within five business days.",
    "a < b and c > d; <tags>, [brackets], {braces}, «quotes» and &lt;escapes&gt;",
    "Numbered things like <ITEM_1>, EMAIL ADDRESS and <EMAIL_ADDRESS_99> stay as written.",
    "Ünïcödé — ✓ 日本語 — fine.\nA second line.",
    "  Leading and trailing spaces stay.  \n",
    "It ends with an opener <",
    "It ends with a word EMAIL",
)
#: Two projects, (id, name): requests come from the first unless they say otherwise.
Projects = tuple[tuple[int, str], tuple[int, str]]
TOOL_ARGUMENTS = '{"city": "Paris", "note": "a < b", "items": ["<x>", "[y]"]}'


def plain_body(endpoint: str, question: str, deployment: str) -> dict[str, Any]:
    """An OpenAI request body of ``endpoint`` (chat, completions, embeddings) that asks
    ``question`` of ``deployment``."""
    if endpoint == "chat":
        return {"model": deployment, "messages": [{"role": "user", "content": question}]}
    if endpoint == "completions":
        return {"model": deployment, "prompt": question, "max_tokens": 32}
    if endpoint == "embeddings":
        return {"model": deployment, "input": [question]}
    raise ValueError(f"endpoint {endpoint!r}: use chat, completions or embeddings")


def chat_answer(text: str, *, model: str = "chat", **message: Any) -> dict[str, Any]:
    """A whole OpenAI ``chat.completion`` body that answers ``text``."""
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": 1_800_000_000,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, **message},
                "finish_reason": "tool_calls" if message.get("tool_calls") else "stop",
            }
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 9, "total_tokens": 21},
    }


def splits(text: str) -> list[list[str]]:
    """Ways a stream may cut ``text`` into pieces: whole, one character each, every 2, 3
    and 7 characters, around each bracket, and three seeded random cuts."""
    ways = [[text], list(text)]
    ways += [[text[i : i + n] for i in range(0, len(text), n)] for n in (2, 3, 7)]
    cuts = sorted({i for i, c in enumerate(text) if c in "<>[]{}&"} | {0, len(text)})
    ways.append([text[a:b] for a, b in itertools.pairwise(cuts)])
    for seed in range(3):
        rng = random.Random(seed)
        points = sorted(rng.sample(range(1, len(text)), min(5, max(len(text) - 1, 0))))
        edges = [0, *points, len(text)]
        ways.append([text[a:b] for a, b in itertools.pairwise(edges)])
    return [[piece for piece in way if piece] for way in ways]


def _filtered(stream: StreamFilter, pieces: Sequence[str]) -> str:
    return "".join(stream.feed(piece) for piece in pieces) + stream.flush()


@dataclass(frozen=True)
class StageRequests:
    """Builds the requests a suite gives its stage, as the gateway builds them once it has
    authenticated an API key (a developer of one project): a chat request of the first of
    ``projects`` (id, name) asking ``question`` of ``deployment``, at revision 1.

    ``options`` are the projects' options (a DLP policy, cache settings)."""

    projects: Projects = ((1, "project-a"), (2, "project-b"))
    deployment: str = "chat"
    options: dict[str, Any] = field(default_factory=dict)

    def __call__(
        self,
        question: str = QUESTION,
        *,
        endpoint: str = "chat",
        other_project: bool = False,
        deployment: str | None = None,
        body: dict[str, Any] | None = None,
        session_id: str | None = None,
        request_id: str | None = None,
        notes: StageNotes | None = None,
    ) -> GatewayRequest:
        project_id, project = self.projects[1 if other_project else 0]
        name = deployment or self.deployment
        principal = Principal(id=1, name="suite", kind="key", grants={project_id: Role.DEVELOPER})
        return GatewayRequest(
            request_id=request_id or uuid.uuid4().hex,
            endpoint=endpoint,
            principal=principal,
            project_id=project_id,
            project=project,
            project_options=copy.deepcopy(self.options),
            body=body if body is not None else plain_body(endpoint, question, name),
            deployment=name,
            session_id=session_id,
            notes=notes if notes is not None else StageNotes(deployment_revision=1),
        )


class _StageSuite:
    pytestmark: pytest.MarkDecorator | list[pytest.MarkDecorator] = pytest.mark.anyio

    @pytest.fixture
    def anyio_backend(self) -> str:
        return "asyncio"

    @pytest.fixture
    def projects(self) -> Projects:
        """Two projects, (id, name), that requests come from (override with real ones when
        the stage reads them)."""
        return (1, "project-a"), (2, "project-b")

    @pytest.fixture
    def make_request(self, projects: Projects) -> StageRequests:
        """What builds the requests the suite sends (override to give project options)."""
        return StageRequests(projects=projects)


# --------------------------------------------------------------------------- request stages


def _texts(endpoint: str, body: dict[str, Any]) -> list[str]:
    """The texts of a body, checked to be where an OpenAI body of ``endpoint`` keeps them."""
    if endpoint == "chat":
        messages = body.get("messages")
        assert isinstance(messages, list) and messages, f"no messages left in {body!r}"
        for message in messages:
            assert isinstance(message, dict) and message.get("role") in ROLES, message
            assert isinstance(message.get("content"), str), message
        return [m["content"] for m in messages]
    key = "prompt" if endpoint == "completions" else "input"
    value = body.get(key)
    texts = [value] if isinstance(value, str) else value
    assert isinstance(texts, list) and all(isinstance(t, str) for t in texts), body
    return list(texts)


class RequestStageSuite(_StageSuite):
    """Subclass it and provide the ``stage`` fixture: a :class:`~genai.gateway.RequestStage`
    (closed after, if the fixture yields). ``make_request`` gives it its projects."""

    @pytest.fixture
    def stage(self) -> RequestStage:
        raise NotImplementedError("a subclass of RequestStageSuite provides the `stage` fixture")

    async def test_it_keeps_the_protocol(self, stage: RequestStage) -> None:
        assert isinstance(stage, RequestStage)
        assert isinstance(stage.name, str) and stage.name

    @pytest.mark.parametrize("endpoint", ["chat", "completions", "embeddings"])
    async def test_a_plain_request_passes_with_a_valid_body(
        self, stage: RequestStage, make_request: StageRequests, endpoint: str
    ) -> None:
        request = make_request(QUESTION, endpoint=endpoint)
        before: Callable[[GatewayRequest], Awaitable[object]] = stage.before
        assert await before(request) is None, "before changes the request in place"
        assert request.body.get("model") == request.deployment
        assert any(QUESTION in text for text in _texts(endpoint, request.body)), request.body

    async def test_concurrent_requests_keep_their_own_bodies(
        self, stage: RequestStage, make_request: StageRequests
    ) -> None:
        words = ("amber", "birch", "cedar", "dune", "ember", "fjord", "grove", "heath")
        questions = [f"Where does the {word} trail start?" for word in words]
        requests = [
            make_request(q, other_project=n % 2 == 1, session_id=f"s{n}")
            for n, q in enumerate(questions)
        ]
        await asyncio.gather(*(stage.before(r) for r in requests))
        for request, word in zip(requests, words, strict=True):
            text = " ".join(_texts("chat", request.body))
            assert f"the {word} trail" in text
            assert not any(f"the {w} trail" in text for w in words if w != word), text


# --------------------------------------------------------------------------- response stages


class ResponseStageSuite(_StageSuite):
    """Subclass it and provide the ``stage`` fixture: a :class:`~genai.gateway.ResponseStage`.

    Optional fixtures: ``request_stage`` (the request stage that runs ``before`` on each
    request first, as the gateway runs it: a stage that restores what its request stage
    replaced), ``question`` (what the request asks; give one with something for the request
    stage to replace), ``plain_texts`` (answers with nothing to change: the defaults mix
    brackets and look-alikes of pseudonyms) and ``rewrites`` (pairs of an answer's text and
    what the client gets after the stage: none by default).
    """

    @pytest.fixture
    def stage(self) -> ResponseStage:
        raise NotImplementedError("a subclass of ResponseStageSuite provides the `stage` fixture")

    @pytest.fixture
    def request_stage(self) -> RequestStage | None:
        return None

    @pytest.fixture
    def question(self) -> str:
        return QUESTION

    @pytest.fixture
    def plain_texts(self) -> Sequence[str]:
        return PLAIN_TEXTS

    @pytest.fixture
    def rewrites(self) -> Sequence[tuple[str, str]]:
        return ()

    @pytest.fixture
    async def seen_request(
        self, make_request: StageRequests, request_stage: RequestStage | None, question: str
    ) -> GatewayRequest:
        """A chat request its request stage (if any) has seen."""
        request = make_request(question, session_id="suite-session")
        if request_stage is not None:
            await request_stage.before(request)
        return request

    async def test_it_keeps_the_protocol(self, stage: ResponseStage) -> None:
        assert isinstance(stage, ResponseStage)
        assert isinstance(stage.name, str) and stage.name

    async def test_after_leaves_an_answer_with_nothing_to_change_as_it_is(
        self, stage: ResponseStage, seen_request: GatewayRequest, plain_texts: Sequence[str]
    ) -> None:
        function = {"name": "lookup", "arguments": TOOL_ARGUMENTS}
        call = {"id": "call_1", "type": "function", "function": function}
        answers = [chat_answer(text) for text in plain_texts]
        answers.append(chat_answer("", content=None, tool_calls=[call]))
        for answer in answers:
            expected = copy.deepcopy(answer)
            assert await stage.after(seen_request, answer) == expected

    async def test_after_rewrites_answers(
        self,
        stage: ResponseStage,
        seen_request: GatewayRequest,
        rewrites: Sequence[tuple[str, str]],
    ) -> None:
        if not rewrites:
            pytest.skip("no rewrites given (the `rewrites` fixture)")
        for given, expected in rewrites:
            got = await stage.after(seen_request, chat_answer(given))
            assert got["choices"][0]["message"]["content"] == expected

    async def test_a_stream_gives_back_text_with_nothing_to_change_for_any_split(
        self, stage: ResponseStage, seen_request: GatewayRequest, plain_texts: Sequence[str]
    ) -> None:
        if stage.stream(seen_request) is None:
            return  # the stage leaves this stream alone: nothing to check
        for text in plain_texts:
            for pieces in splits(text):
                stream = stage.stream(seen_request)
                assert stream is not None, "a stage must decide the same for every stream"
                assert _filtered(stream, pieces) == text, pieces

    async def test_a_stream_is_rewritten_as_a_whole_answer_is_for_any_split(
        self,
        stage: ResponseStage,
        seen_request: GatewayRequest,
        rewrites: Sequence[tuple[str, str]],
    ) -> None:
        if not rewrites:
            pytest.skip("no rewrites given (the `rewrites` fixture)")
        for given, expected in rewrites:
            for pieces in splits(given):
                stream = stage.stream(seen_request)
                assert stream is not None, "the stage rewrites answers, but not streams"
                assert _filtered(stream, pieces) == expected, pieces

    async def test_two_streams_of_a_request_are_kept_apart(
        self, stage: ResponseStage, seen_request: GatewayRequest, plain_texts: Sequence[str]
    ) -> None:
        first, second = stage.stream(seen_request), stage.stream(seen_request)
        if first is None or second is None:
            pytest.skip("the stage leaves this request's streams alone")
        a, b = plain_texts[1], plain_texts[2]
        out_a, out_b = [], []
        for n in range(max(len(a), len(b))):  # one character of each in turn
            out_a.append(first.feed(a[n : n + 1]))
            out_b.append(second.feed(b[n : n + 1]))
        assert "".join(out_a) + first.flush() == a
        assert "".join(out_b) + second.flush() == b

    async def test_tool_call_arguments_with_nothing_to_change_pass_for_any_split(
        self, stage: ResponseStage, seen_request: GatewayRequest
    ) -> None:
        if not isinstance(stage.stream(seen_request), ToolCallFilter):
            pytest.skip("the stage's stream filter does not rewrite tool calls")
        for pieces in splits(TOOL_ARGUMENTS):
            stream = stage.stream(seen_request)
            assert isinstance(stream, ToolCallFilter)
            assert _filtered(stream.tool_arguments(0), pieces) == TOOL_ARGUMENTS, pieces
