"""``CacheStageSuite`` and ``TargetStageSuite``: the contracts of the gateway stages that
answer a request (a cache replays an answer, a target makes one), for any implementation.
How the suites build and send requests is in :mod:`genai.testing._suites_gateway`.

    class TestMyCache(CacheStageSuite):
        @pytest.fixture
        def cache(self):
            return MyCache()

    class TestMyBot(TargetStageSuite):
        @pytest.fixture
        def target(self):
            return MyBot()

        @pytest.fixture
        def target_spec(self):
            return TargetSpec(name="bot", backend="my-bot", options={...})
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from genai.gateway._spec import TargetSpec
from genai.gateway._stages import (
    CacheFeedback,
    CacheStage,
    DlpNote,
    GatewayRequest,
    PreparedTarget,
    StageNotes,
    TargetStage,
)
from genai.testing._suites_gateway import (
    OTHER_QUESTION,
    QUESTION,
    StageRequests,
    _StageSuite,
    chat_answer,
)

__all__ = ["CacheStageSuite", "TargetStageSuite"]

ANSWER = "Refunds reach your card within five business days."
BASE = StageNotes(deployment_revision=1, kb_version="docs@1")


def _notes(**changes: Any) -> StageNotes:
    values = {"deployment_revision": BASE.deployment_revision, "kb_version": BASE.kb_version}
    return StageNotes(**{**values, **changes})


def _change(what: str) -> Callable[[GatewayRequest], None]:
    """One thing an answer depends on, changed in a request."""

    def change(request: GatewayRequest) -> None:
        if what == "prompt_version":
            request.prompt_version = "qa@2"
        elif what == "adapter":
            request.adapter = "support-lora"
        elif what == "kb_version":
            request.notes.kb_version = "docs@2"
        elif what == "deployment_revision":
            request.notes.deployment_revision = 2
        elif what == "max_tokens":
            request.body["max_tokens"] = 5
        elif what == "system_message":
            request.body["messages"].insert(0, {"role": "system", "content": "Answer in French."})
        else:
            raise ValueError(what)

    return change


def _content(response: dict[str, Any]) -> Any:
    return response["choices"][0]["message"]["content"]


class CacheStageSuite(_StageSuite):
    """Subclass it and provide the ``cache`` fixture: an empty
    :class:`~genai.gateway.CacheStage` (closed after, if the fixture yields); override
    :meth:`settle` when it stores in the background. ``make_request`` gives it two projects
    (real ones, when its entries reference them)."""

    @pytest.fixture
    def cache(self) -> CacheStage:
        raise NotImplementedError("a subclass of CacheStageSuite provides the `cache` fixture")

    async def settle(self, cache: CacheStage) -> None:
        """Wait until what ``store`` was given is kept (the stores under way written)."""

    async def _remember(
        self, cache: CacheStage, request: GatewayRequest, answer: dict[str, Any]
    ) -> None:
        """A miss, then the store of ``answer`` for it: the gateway's order."""
        assert await cache.lookup(request) is None
        await cache.store(request, answer)
        await self.settle(cache)

    async def test_it_keeps_the_protocol(self, cache: CacheStage) -> None:
        assert isinstance(cache, CacheStage)
        assert isinstance(cache.name, str) and cache.name

    async def test_a_stored_answer_hits_for_the_same_request(
        self, cache: CacheStage, make_request: StageRequests
    ) -> None:
        answer = chat_answer(ANSWER)
        await self._remember(cache, make_request(QUESTION, notes=_notes()), answer)
        hit = await cache.lookup(make_request(QUESTION, notes=_notes()))
        assert hit is not None
        assert hit.response["object"] == "chat.completion"
        assert hit.response["choices"] == answer["choices"]

    async def test_a_different_question_misses(
        self, cache: CacheStage, make_request: StageRequests
    ) -> None:
        await self._remember(cache, make_request(QUESTION), chat_answer(ANSWER))
        assert await cache.lookup(make_request(OTHER_QUESTION)) is None

    async def test_another_project_never_hits(
        self, cache: CacheStage, make_request: StageRequests
    ) -> None:
        await self._remember(cache, make_request(QUESTION), chat_answer(ANSWER))
        assert await cache.lookup(make_request(QUESTION, other_project=True)) is None
        theirs = make_request(QUESTION, other_project=True)
        await self._remember(cache, theirs, chat_answer("The other project's answer."))
        hit = await cache.lookup(make_request(QUESTION))
        assert hit is not None and _content(hit.response) == ANSWER

    async def test_another_deployment_misses(
        self, cache: CacheStage, make_request: StageRequests
    ) -> None:
        await self._remember(cache, make_request(QUESTION), chat_answer(ANSWER))
        assert await cache.lookup(make_request(QUESTION, deployment="other-chat")) is None

    @pytest.mark.parametrize(
        "what",
        [
            "prompt_version",
            "adapter",
            "kb_version",
            "deployment_revision",
            "max_tokens",
            "system_message",
        ],
    )
    async def test_a_change_the_answer_depends_on_misses(
        self, cache: CacheStage, make_request: StageRequests, what: str
    ) -> None:
        def asked() -> GatewayRequest:
            request = make_request(QUESTION, notes=_notes())
            request.prompt_version = "qa@1"
            return request

        await self._remember(cache, asked(), chat_answer(ANSWER))
        assert await cache.lookup(asked()) is not None  # unchanged: a hit
        changed = asked()
        _change(what)(changed)
        assert await cache.lookup(changed) is None, f"{what} changed, yet the cache hit"

    async def test_a_request_dlp_let_through_unchecked_is_never_stored(
        self, cache: CacheStage, make_request: StageRequests
    ) -> None:
        unchecked = make_request(QUESTION, notes=_notes(dlp=DlpNote("failed_open")))
        assert await cache.lookup(unchecked) is None
        await cache.store(unchecked, chat_answer(ANSWER))
        await self.settle(cache)
        again = make_request(QUESTION, notes=_notes(dlp=DlpNote("failed_open")))
        assert await cache.lookup(again) is None
        assert await cache.lookup(make_request(QUESTION, notes=_notes())) is None

    async def test_a_pseudonymised_request_never_hits_outside_its_session(
        self, cache: CacheStage, make_request: StageRequests
    ) -> None:
        question = "Please write to <EMAIL_ADDRESS_1> about the refund."

        def asked(session: str | None) -> GatewayRequest:
            note = DlpNote("protected", {"EMAIL_ADDRESS": 1})
            return make_request(question, session_id=session, notes=_notes(dlp=note))

        await self._remember(cache, asked("s1"), chat_answer("Done: <EMAIL_ADDRESS_1> knows."))
        assert await cache.lookup(asked("s2")) is None  # <EMAIL_ADDRESS_1> is another value
        assert await cache.lookup(asked(None)) is None

    async def test_a_hit_is_a_copy(self, cache: CacheStage, make_request: StageRequests) -> None:
        answer = chat_answer(ANSWER)
        await self._remember(cache, make_request(QUESTION), answer)
        answer["choices"][0]["message"]["content"] = "changed after the store"
        first = await cache.lookup(make_request(QUESTION))
        assert first is not None and _content(first.response) == ANSWER
        first.response["choices"][0]["message"]["content"] = "changed by a response stage"
        first.response["choices"].append({"index": 1})
        second = await cache.lookup(make_request(QUESTION))
        assert second is not None and second.response["choices"] == chat_answer(ANSWER)["choices"]

    async def test_low_feedback_evicts_within_its_project_only(
        self, cache: CacheStage, make_request: StageRequests
    ) -> None:
        if not isinstance(cache, CacheFeedback):
            pytest.skip("the cache does not take feedback")
        request = make_request(QUESTION, request_id="asked-once")
        await self._remember(cache, request, chat_answer(ANSWER))
        theirs = make_request(QUESTION, other_project=True)
        assert await cache.feedback(theirs.project_id, "asked-once", 0.0) == 0
        assert await cache.feedback(request.project_id, "asked-once", 1.0) == 0
        assert await cache.lookup(make_request(QUESTION)) is not None
        assert await cache.feedback(request.project_id, "asked-once", 0.0) >= 1
        assert await cache.lookup(make_request(QUESTION)) is None


class TargetStageSuite(_StageSuite):
    """Subclass it and provide the ``target`` fixture (a :class:`~genai.gateway.TargetStage`,
    closed after if the fixture yields) and ``target_spec`` (the deployment's target that
    names it, with its options). Optional: ``question`` (one it can answer), or
    ``chat_request`` (the whole request)."""

    @pytest.fixture
    def target(self) -> TargetStage:
        raise NotImplementedError("a subclass of TargetStageSuite provides the `target` fixture")

    @pytest.fixture
    def target_spec(self) -> TargetSpec:
        raise NotImplementedError(
            "a subclass of TargetStageSuite provides the `target_spec` fixture"
        )

    @pytest.fixture
    def question(self) -> str:
        return QUESTION

    @pytest.fixture
    def chat_request(self, make_request: StageRequests, question: str) -> GatewayRequest:
        return make_request(question)

    async def test_it_keeps_the_protocol(self, target: TargetStage) -> None:
        assert isinstance(target, TargetStage)
        assert isinstance(target.name, str) and target.name

    async def test_complete_answers_with_a_chat_completion(
        self, target: TargetStage, target_spec: TargetSpec, chat_request: GatewayRequest
    ) -> None:
        answer = await target.complete(chat_request, target_spec)
        assert answer["object"] == "chat.completion"
        assert isinstance(answer.get("id"), str) and answer["id"]
        assert isinstance(answer["choices"], list) and answer["choices"]
        choice = answer["choices"][0]
        assert choice["index"] == 0 and choice["message"]["role"] == "assistant"
        assert isinstance(choice["message"]["content"], str) and choice["message"]["content"]
        assert choice["finish_reason"] in ("stop", "length")  # no tools were offered
        _check_usage(answer.get("usage"))

    async def test_stream_answers_with_chunks_that_end_once(
        self, target: TargetStage, target_spec: TargetSpec, chat_request: GatewayRequest
    ) -> None:
        chat_request.body.update(stream=True, stream_options={"include_usage": True})
        chunks = [chunk async for chunk in target.stream(chat_request, target_spec)]
        assert chunks and {c.get("object") for c in chunks} == {"chat.completion.chunk"}
        assert len({c.get("id") for c in chunks}) == 1, "the chunks of one answer share its id"
        choices = [c["choices"][0] for c in chunks if c.get("choices")]
        text = "".join(choice.get("delta", {}).get("content") or "" for choice in choices)
        assert text.strip(), "the stream says nothing"
        ends = [n for n, choice in enumerate(choices) if choice.get("finish_reason")]
        assert len(ends) == 1, "exactly one chunk ends the choice"
        assert choices[ends[0]]["finish_reason"] in ("stop", "length")
        assert not any(c.get("delta", {}).get("content") for c in choices[ends[0] + 1 :])
        usages = [c["usage"] for c in chunks if c.get("usage")]
        assert len(usages) == 1, "one chunk carries the usage"
        _check_usage(usages[0])

    async def test_a_prepared_target_prepares_idempotently(
        self, target: TargetStage, target_spec: TargetSpec, chat_request: GatewayRequest
    ) -> None:
        if not isinstance(target, PreparedTarget):
            pytest.skip("the target does not prepare")
        await target.prepare(chat_request, target_spec)
        noted = (chat_request.prompt_version, chat_request.notes.kb_version)
        await target.prepare(chat_request, target_spec)
        assert (chat_request.prompt_version, chat_request.notes.kb_version) == noted
        answer = await target.complete(chat_request, target_spec)
        assert answer["choices"][0]["message"]["content"]


def _check_usage(usage: Any) -> None:
    assert isinstance(usage, dict), f"no usage: {usage!r}"
    prompt, completion, total = (
        usage.get(k) for k in ("prompt_tokens", "completion_tokens", "total_tokens")
    )
    assert isinstance(prompt, int) and isinstance(completion, int), usage
    assert prompt >= 0 and completion >= 0 and total == prompt + completion, usage
