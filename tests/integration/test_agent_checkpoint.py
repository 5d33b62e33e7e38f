"""``StoreCheckpointer``: LangGraph's checkpoints in the platform's store.

The saver's contract (the one ``InMemorySaver`` keeps: get, list with before / limit /
metadata filter, pending writes with special writes replaced, delete), its scoping to one
project, and real LangGraph graphs that stop at an interrupt and are resumed by a new saver
over a new connection, as after a restart, sync and async.

Runs on SQLite and PostgreSQL (the ``db_url`` fixture).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypedDict

import pytest
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import Checkpoint, CheckpointMetadata
from langgraph.checkpoint.base.id import uuid6
from langgraph.checkpoint.serde.types import ERROR, INTERRUPT
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.types import Command, interrupt
from sqlalchemy import func, select

import genai
from agents._checkpoint import StoreCheckpointer
from genai.errors import ConflictError, ValidationError
from genai.store import Store
from genai.store import schema as t


@dataclass
class World:
    settings: genai.Settings
    store: Store
    a: int  # project ids
    b: int

    def saver(self, project_id: int | None = None) -> StoreCheckpointer:
        return StoreCheckpointer(
            self.store, project_id=self.a if project_id is None else project_id
        )


@pytest.fixture
def world(settings: genai.Settings, platform: Callable[..., genai.Client]) -> Iterator[World]:
    admin = platform()
    admin.projects.create("alpha")
    admin.projects.create("beta")
    with admin.store.session() as s:
        ids = {name: pid for name, pid in s.execute(select(t.Project.name, t.Project.id))}
    yield World(settings, admin.store, ids["alpha"], ids["beta"])


def _config(thread_id: str, checkpoint_id: str | None = None, **extra: Any) -> RunnableConfig:
    configurable: dict[str, Any] = {"thread_id": thread_id, "checkpoint_ns": "", **extra}
    if checkpoint_id is not None:
        configurable["checkpoint_id"] = checkpoint_id
    return {"configurable": configurable}


def _checkpoint(saver: StoreCheckpointer, step: int, values: dict[str, Any]) -> Checkpoint:
    return Checkpoint(
        v=4,
        id=str(uuid6(clock_seq=step)),
        ts=datetime.now(UTC).isoformat(),
        channel_values=values,
        channel_versions={k: saver.get_next_version(None, None) for k in values},
        versions_seen={},
        updated_channels=None,
    )


def _save(
    saver: StoreCheckpointer,
    thread_id: str,
    steps: int,
    source: Literal["loop", "update"] = "loop",
) -> list[RunnableConfig]:
    """``steps`` checkpoints in a chain on ``thread_id``; the config of each."""
    configs: list[RunnableConfig] = []
    parent = _config(thread_id)
    for step in range(steps):
        metadata: CheckpointMetadata = {"source": "input" if step == 0 else source, "step": step}
        checkpoint = _checkpoint(saver, step, {"count": step})
        parent = saver.put(parent, checkpoint, metadata, checkpoint["channel_versions"])
        configs.append(parent)
    return configs


def _ids(tuples: Any) -> list[str]:
    return [tup.config["configurable"]["checkpoint_id"] for tup in tuples]


# ------------------------------------------------------------------ the saver's contract


def test_put_then_get_tuple_round_trips_checkpoint_metadata_and_parent(world: World) -> None:
    saver = world.saver()
    first = _checkpoint(saver, 0, {"count": 1, "items": ["a", ["b", 2]], "raw": b"\x00\xff"})
    config = saver.put(_config("run_1", user="alice"), first, {"source": "input", "step": -1}, {})
    assert config == _config("run_1", first["id"])
    second = _checkpoint(saver, 1, {"count": 2})
    second_config = saver.put(config, second, {"source": "loop", "step": 0}, {})

    latest = saver.get_tuple(_config("run_1"))
    assert latest is not None
    assert latest.config == second_config
    assert latest.checkpoint == second
    assert latest.parent_config == config
    assert latest.pending_writes == []

    older = saver.get_tuple(config)
    assert older is not None and older.parent_config is None
    assert older.checkpoint["channel_values"] == {
        "count": 1,
        "items": ["a", ["b", 2]],
        "raw": b"\x00\xff",
    }
    # the config's own keys join the metadata (as every LangGraph saver does)
    assert older.metadata == {"source": "input", "step": -1, "user": "alice"}

    assert saver.get_tuple(_config("run_none")) is None
    assert saver.get_tuple(_config("run_1", str(uuid6()))) is None


def test_put_of_the_same_checkpoint_again_replaces_it(world: World) -> None:
    saver = world.saver()
    checkpoint = _checkpoint(saver, 0, {"count": 1})
    saver.put(_config("run_1"), checkpoint, {"step": 0}, {})
    saver.put(_config("run_1"), {**checkpoint, "channel_values": {"count": 2}}, {"step": 1}, {})
    got = saver.get_tuple(_config("run_1"))
    assert got is not None
    assert (got.checkpoint["channel_values"], got.metadata["step"]) == ({"count": 2}, 1)


def test_list_is_newest_first_with_before_limit_and_metadata_filter(world: World) -> None:
    saver = world.saver()
    configs = _save(saver, "run_1", 4)
    other = _save(saver, "run_2", 2, source="update")
    ids = [c["configurable"]["checkpoint_id"] for c in configs]

    assert _ids(saver.list(_config("run_1"))) == ids[::-1]
    assert _ids(saver.list(_config("run_1"), limit=2)) == [ids[3], ids[2]]
    assert _ids(saver.list(_config("run_1"), before=configs[2])) == [ids[1], ids[0]]
    assert _ids(saver.list(_config("run_1"), before=configs[2], limit=1)) == [ids[1]]
    assert _ids(saver.list(_config("run_1"), filter={"step": 2})) == [ids[2]]
    assert _ids(saver.list(_config("run_1"), filter={"source": "loop"}, limit=2)) == [
        ids[3],
        ids[2],
    ]
    assert _ids(saver.list(_config("run_1"), filter={"source": "update"})) == []
    assert _ids(saver.list(_config("run_1", ids[1]))) == [ids[1]]
    assert _ids(saver.list(_config("run_1"), limit=0)) == []
    assert _ids(saver.list({"configurable": {"thread_id": "run_1"}})) == ids[::-1]

    everything = _ids(saver.list(None))
    assert sorted(everything) == sorted(ids + _ids_of(other))
    assert _ids(saver.list(None, filter={"source": "update"})) == [_ids_of(other)[1]]

    listed = next(iter(saver.list(_config("run_1"), limit=1)))
    assert listed.metadata == {"source": "loop", "step": 3}
    assert listed.parent_config == configs[2]
    assert listed.checkpoint["channel_values"] == {"count": 3}


def _ids_of(configs: list[RunnableConfig]) -> list[str]:
    return [c["configurable"]["checkpoint_id"] for c in configs]


def test_put_writes_keeps_ordinary_writes_once_and_replaces_special_ones(world: World) -> None:
    saver = world.saver()
    [config] = _save(saver, "run_1", 1)
    saver.put_writes(config, [("count", 1), ("items", ["x"])], "task-b", "~b")
    saver.put_writes(config, [("count", 99)], "task-b", "~b")  # idx 0 kept: stays 1
    saver.put_writes(config, [("count", 5)], "task-a", "~a")
    saver.put_writes(config, [(ERROR, "first failure")], "task-c", "~c")
    saver.put_writes(config, [(ERROR, "second failure")], "task-c", "~c")
    saver.put_writes(config, [(INTERRUPT, ["ask"]), (INTERRUPT, ["ask again"])], "task-d", "~d")

    got = saver.get_tuple(config)
    assert got is not None
    # in writes_sort_key order: task_path, task_id, idx
    assert got.pending_writes == [
        ("task-a", "count", 5),
        ("task-b", "count", 1),
        ("task-b", "items", ["x"]),
        ("task-c", ERROR, "second failure"),
        ("task-d", INTERRUPT, ["ask again"]),
    ]
    [listed] = saver.list(_config("run_1"))
    assert listed.pending_writes == got.pending_writes


def test_delete_thread_deletes_its_checkpoints_and_writes_only(world: World) -> None:
    saver = world.saver()
    [config] = _save(saver, "run_1", 1)
    saver.put_writes(config, [("count", 1)], "task-a")
    _save(saver, "run_2", 2)

    world.saver(world.b).delete_thread("run_1")  # another project's saver deletes nothing
    assert saver.get_tuple(_config("run_1")) is not None

    saver.delete_thread("run_1")
    assert saver.get_tuple(_config("run_1")) is None
    assert list(saver.list(_config("run_1"))) == []
    assert len(list(saver.list(_config("run_2")))) == 2
    with world.store.session() as s:
        writes = s.scalar(select(func.count()).select_from(t.AgentCheckpointWrite))
    assert writes == 0


def test_prune_keeps_each_threads_newest_checkpoint_with_its_writes(world: World) -> None:
    saver = world.saver()
    run = _save(saver, "run_1", 3)
    saver.put_writes(run[0], [("count", 1)], "task-old")
    saver.put_writes(run[-1], [("count", 9)], "task-new")
    sub = _save(saver, "run_1:ask_a", 2)  # a sub-agent's thread
    _save(saver, "run_10", 2)  # another run whose id starts the same
    _save(saver, "run_1x", 2)  # and one where "_" would match as a LIKE wildcard
    assert sorted(saver.run_threads("run_1")) == ["run_1", "run_1:ask_a"]
    assert world.saver(world.b).run_threads("run_1") == []  # another project's: none

    world.saver(world.b).prune(["run_1"])  # another project's saver prunes nothing
    assert len(list(saver.list(_config("run_1")))) == 3
    saver.prune(saver.run_threads("run_1"))
    assert _ids(saver.list(_config("run_1"))) == _ids([saver.get_tuple(run[-1])])
    assert _ids(saver.list(_config("run_1:ask_a"))) == _ids([saver.get_tuple(sub[-1])])
    kept = saver.get_tuple(_config("run_1"))
    assert kept is not None and [w[1:] for w in kept.pending_writes or []] == [("count", 9)]
    assert len(list(saver.list(_config("run_10")))) == 2
    assert len(list(saver.list(_config("run_1x")))) == 2
    with world.store.session() as s:
        writes = s.scalar(select(func.count()).select_from(t.AgentCheckpointWrite))
    assert writes == 1  # the old checkpoint's write went with it

    saver.prune(["run_10"], strategy="delete")
    assert list(saver.list(_config("run_10"))) == []
    with pytest.raises(ValidationError, match="keep_latest or delete"):
        saver.prune(["run_1x"], strategy="oldest")


def test_a_project_sees_nothing_of_another_projects_threads(world: World) -> None:
    alpha, beta = world.saver(world.a), world.saver(world.b)
    [config] = _save(alpha, "run_1", 1)
    alpha.put_writes(config, [("count", 1)], "task-a")

    assert beta.get_tuple(_config("run_1")) is None
    assert beta.get_tuple(config) is None
    assert list(beta.list(_config("run_1"))) == []
    assert list(beta.list(None)) == []

    # the same key from another project is refused, not taken over
    stolen = _checkpoint(beta, 0, {"count": 666})
    stolen["id"] = config["configurable"]["checkpoint_id"]
    with pytest.raises(ConflictError, match="another project"):
        beta.put(_config("run_1"), stolen, {"step": 0}, {})
    with pytest.raises(ConflictError, match="another project"):
        beta.put_writes(config, [("count", 666)], "task-a")

    mine = alpha.get_tuple(config)
    assert mine is not None
    assert mine.checkpoint["channel_values"] == {"count": 0}
    assert mine.pending_writes == [("task-a", "count", 1)]


def test_ids_longer_than_their_columns_are_refused_on_every_database(world: World) -> None:
    saver = world.saver()
    checkpoint = _checkpoint(saver, 0, {})
    with pytest.raises(ValidationError, match="thread_id"):
        saver.put(_config("r" * 65), checkpoint, {}, {})


def test_versions_increase_as_strings(world: World) -> None:
    saver = world.saver()
    versions = [saver.get_next_version(None, None)]
    for _ in range(11):
        versions.append(saver.get_next_version(versions[-1], None))
    assert versions == sorted(versions)
    assert [int(v.split(".")[0]) for v in versions] == list(range(1, 13))


def test_async_methods_do_what_the_sync_ones_do(world: World) -> None:
    saver = world.saver()

    async def scenario() -> None:
        checkpoint = _checkpoint(saver, 0, {"count": 1})
        config = await saver.aput(_config("run_1"), checkpoint, {"source": "input"}, {})
        await saver.aput_writes(config, [("count", 2)], "task-a")
        got = await saver.aget_tuple(_config("run_1"))
        assert got is not None and got.pending_writes == [("task-a", "count", 2)]
        listed = [tup async for tup in saver.alist(_config("run_1"), filter={"source": "input"})]
        assert _ids(listed) == [checkpoint["id"]]
        await saver.adelete_thread("run_1")
        assert await saver.aget_tuple(_config("run_1")) is None

    asyncio.run(scenario())


# ------------------------------------------------------------------ real graphs


class State(TypedDict):
    count: int
    answer: str


def _count(state: State) -> dict[str, Any]:
    return {"count": state["count"] + 1}


def _ask(state: State) -> dict[str, Any]:
    answer = interrupt({"question": "go on?", "count": state["count"]})
    return {"count": state["count"] + 10, "answer": str(answer)}


def _builder() -> StateGraph[State]:
    builder = StateGraph(State)
    builder.add_node("count", _count)
    builder.add_node("ask", _ask)
    builder.add_edge(START, "count")
    builder.add_edge("count", "ask")
    builder.add_edge("ask", END)
    return builder


def test_a_graph_stopped_at_an_interrupt_resumes_with_a_new_saver(world: World) -> None:
    config: RunnableConfig = {"configurable": {"thread_id": "run_graph"}}
    graph = _builder().compile(checkpointer=world.saver())
    first = graph.invoke({"count": 0, "answer": ""}, config)
    assert first["count"] == 1
    [stop] = first["__interrupt__"]
    assert stop.value == {"question": "go on?", "count": 1}

    # a restart: a new store (new engine, new connections) and a new saver
    store = Store(world.settings.resolved_database_url)
    try:
        resumed = _builder().compile(checkpointer=StoreCheckpointer(store, project_id=world.a))
        assert resumed.get_state(config).next == ("ask",)
        final = resumed.invoke(Command(resume="yes"), config)
        assert final == {"count": 11, "answer": "yes"}
        assert resumed.get_state(config).next == ()
        history = list(resumed.get_state_history(config))
        assert [snapshot.values.get("count") for snapshot in history] == [11, 1, 0, None]

        # another project's graph does not see the thread: it starts afresh
        other = _builder().compile(checkpointer=StoreCheckpointer(store, project_id=world.b))
        assert other.get_state(config).values == {}
    finally:
        store.dispose()


def test_a_graph_with_interrupt_before_resumes_with_a_new_saver(world: World) -> None:
    config: RunnableConfig = {"configurable": {"thread_id": "run_before"}}
    builder = StateGraph(State)
    builder.add_node("one", _count)
    builder.add_node("two", _count)
    builder.add_edge(START, "one")
    builder.add_edge("one", "two")
    builder.add_edge("two", END)

    graph = builder.compile(checkpointer=world.saver(), interrupt_before=["two"])
    assert graph.invoke({"count": 5, "answer": ""}, config) == {"count": 6, "answer": ""}

    again = builder.compile(checkpointer=world.saver(), interrupt_before=["two"])
    assert again.get_state(config).next == ("two",)
    assert again.invoke(None, config) == {"count": 7, "answer": ""}


def test_a_graph_run_with_ainvoke_resumes_with_a_new_saver(world: World) -> None:
    config: RunnableConfig = {"configurable": {"thread_id": "run_async"}}

    async def scenario() -> None:
        graph = _builder().compile(checkpointer=world.saver())
        first = await graph.ainvoke({"count": 0, "answer": ""}, config)
        assert first["count"] == 1 and len(first["__interrupt__"]) == 1

        store = Store(world.settings.resolved_database_url)
        try:
            resumed = _builder().compile(checkpointer=StoreCheckpointer(store, project_id=world.a))
            assert (await resumed.aget_state(config)).next == ("ask",)
            final = await resumed.ainvoke(Command(resume="sure"), config)
            assert final == {"count": 11, "answer": "sure"}
            history = [snapshot async for snapshot in resumed.aget_state_history(config)]
            assert len(history) == 4
        finally:
            store.dispose()

    asyncio.run(scenario())


class Chat(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]


def _reply(state: Chat) -> dict[str, Any]:
    verdict = interrupt({"approve": state["messages"][-1].content})
    return {"messages": [AIMessage(content=f"tool ran: {verdict}")]}


def _chat_builder() -> StateGraph[Chat]:
    inner = StateGraph(Chat)
    inner.add_node("reply", _reply)
    inner.add_edge(START, "reply")
    inner.add_edge("reply", END)
    outer = StateGraph(Chat)
    outer.add_node("agent", inner.compile())  # a subgraph: checkpoints in its own namespace
    outer.add_edge(START, "agent")
    outer.add_edge("agent", END)
    return outer


def test_a_subgraph_with_messages_resumes_with_a_new_saver(world: World) -> None:
    config: RunnableConfig = {"configurable": {"thread_id": "run_chat"}}
    graph = _chat_builder().compile(checkpointer=world.saver())
    first = graph.invoke({"messages": [HumanMessage(content="delete the file?")]}, config)
    assert [stop.value for stop in first["__interrupt__"]] == [{"approve": "delete the file?"}]
    namespaces = {tup.config["configurable"]["checkpoint_ns"] for tup in world.saver().list(None)}
    assert "" in namespaces and any(ns.startswith("agent:") for ns in namespaces)

    resumed = _chat_builder().compile(checkpointer=world.saver())
    final = resumed.invoke(Command(resume="approved"), config)
    assert [type(m) for m in final["messages"]] == [HumanMessage, AIMessage]
    assert final["messages"][-1].content == "tool ran: approved"

    world.saver().delete_thread("run_chat")
    assert list(world.saver().list(None)) == []
