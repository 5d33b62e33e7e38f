"""``StoreCheckpointer``: LangGraph's checkpointer over the platform's metadata store.

An agent run is a LangGraph thread (its ``thread_id`` is the run id). LangGraph saves the
thread's state after every step through a checkpointer; this one keeps it in the platform's
own database (SQLite or PostgreSQL, tables ``agent_checkpoints`` and
``agent_checkpoint_writes``), so a run survives a restart of the process that ran it, waits
for an approval for days, and is deleted with its project — with no second database to run.

    saver = StoreCheckpointer(client.store, project_id=project.id)
    graph = builder.compile(checkpointer=saver)
    graph.invoke(inputs, {"configurable": {"thread_id": run_id}})
    # later, in another process: a new saver over the same store resumes the thread
    graph = builder.compile(checkpointer=StoreCheckpointer(store, project_id=project.id))
    graph.invoke(Command(resume="yes"), {"configurable": {"thread_id": run_id}})

It keeps the contract of LangGraph's own savers (``InMemorySaver``, ``PostgresSaver``):

* a checkpoint is one row, serialised whole (channel values included) with the saver's
  ``serde`` (``JsonPlusSerializer`` unless told otherwise), its metadata likewise; the
  latest checkpoint of a thread is the greatest ``checkpoint_id`` (LangGraph's ids are
  time-ordered UUIDv6);
* ``put_writes`` keeps a task's pending writes: an ordinary write (index ≥ 0) is written
  once and kept, a special one (error, interrupt, resume, scheduled: the negative indices of
  ``WRITES_IDX_MAP``) replaces the one before it; ``get_tuple`` returns them in
  ``writes_sort_key`` order;
* channel versions are zero-padded strings (``get_next_version``), as ``PostgresSaver``
  writes them, so they compare in order as strings.

Each ``put`` and ``put_writes`` is one transaction, committed before it returns: a step
that LangGraph has been told is saved is saved. Every query is scoped to ``project_id``: a
saver of one project never reads, lists or deletes another's threads. The primary key is
``(thread_id, checkpoint_ns, checkpoint_id)`` without the project, so a ``put`` onto a key
another project holds raises :class:`~genai.errors.ConflictError` instead of taking it over
(thread ids are random run ids, so this does not happen by chance).

The async methods (``aget_tuple``, ``alist``, ``aput``, ``aput_writes``,
``adelete_thread``) run the sync ones in a worker thread (:func:`asyncio.to_thread`), so a
graph run with ``ainvoke`` does not block its event loop on the database.
"""

from __future__ import annotations

import asyncio
import builtins
import random
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any, cast

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    PendingWrite,
    get_checkpoint_id,
    get_serializable_checkpoint_metadata,
    writes_sort_key,
)
from langgraph.checkpoint.serde.base import SerializerProtocol
from sqlalchemy import Table, delete, func, insert, select
from sqlalchemy.orm import Session

from genai.errors import ConflictError, ValidationError
from genai.store import Store
from genai.store import schema as t

__all__ = ["StoreCheckpointer"]

_CP = t.AgentCheckpoint
_W = t.AgentCheckpointWrite
# Core INSERTs of the tables (not the ORM's bulk insert of the classes, which costs about
# a millisecond more per statement): written on every step of a durable run.
_CP_INSERT = insert(cast(Table, t.AgentCheckpoint.__table__))
_W_INSERT = insert(cast(Table, t.AgentCheckpointWrite.__table__))
_Key = tuple[str, str, str]  # thread_id, checkpoint_ns, checkpoint_id
_THREAD_ID_MAX, _NS_MAX = 64, 200  # the columns' sizes (schema/_agents.py)


class StoreCheckpointer(BaseCheckpointSaver[str]):
    """LangGraph checkpoints of ``project_id``'s threads, kept in ``store``."""

    def __init__(
        self, store: Store, *, project_id: int, serde: SerializerProtocol | None = None
    ) -> None:
        super().__init__(serde=serde)
        self.store = store
        self.project_id = project_id

    # ------------------------------------------------------------------ read

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """The checkpoint ``config`` names (``checkpoint_id``), or the thread's latest."""
        thread_id, checkpoint_ns = _thread(config)
        checkpoint_id = get_checkpoint_id(config)
        query = select(_CP).where(
            _CP.project_id == self.project_id,
            _CP.thread_id == thread_id,
            _CP.checkpoint_ns == checkpoint_ns,
        )
        if checkpoint_id:
            query = query.where(_CP.checkpoint_id == checkpoint_id)
        else:
            query = query.order_by(_CP.checkpoint_id.desc()).limit(1)
        with self.store.session() as s:
            row = s.scalars(query).first()
            if row is None:
                return None
            writes = self._writes(s, [row])
        return self._tuple(row, writes.get(_key(row), []))

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        """The checkpoints that match, newest first: of ``config``'s thread (and namespace
        and checkpoint, where it names them; every thread of the project without a config),
        older than ``before``'s checkpoint, whose metadata has ``filter``'s items; at most
        ``limit``."""
        query = select(_CP).where(_CP.project_id == self.project_id)
        if config is not None:
            configurable = config.get("configurable", {})
            query = query.where(_CP.thread_id == str(configurable["thread_id"]))
            if (checkpoint_ns := configurable.get("checkpoint_ns")) is not None:
                query = query.where(_CP.checkpoint_ns == checkpoint_ns)
            if checkpoint_id := get_checkpoint_id(config):
                query = query.where(_CP.checkpoint_id == checkpoint_id)
        if before is not None and (before_id := get_checkpoint_id(before)):
            query = query.where(_CP.checkpoint_id < before_id)
        query = query.order_by(_CP.thread_id, _CP.checkpoint_ns, _CP.checkpoint_id.desc())
        if limit is not None and limit <= 0:
            return
        if limit is not None and not filter:
            query = query.limit(limit)
        with self.store.session() as s:
            rows = builtins.list(s.scalars(query))
        chosen: builtins.list[tuple[t.AgentCheckpoint, CheckpointMetadata]] = []
        for row in rows:
            metadata = self._metadata(row)
            if filter and not all(metadata.get(k) == v for k, v in filter.items()):
                continue
            chosen.append((row, metadata))
            if limit is not None and len(chosen) >= limit:
                break
        if not chosen:
            return
        with self.store.session() as s:
            writes = self._writes(s, [row for row, _ in chosen])
        for row, metadata in chosen:
            yield self._tuple(row, writes.get(_key(row), []), metadata)

    # ------------------------------------------------------------------ write

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Save ``checkpoint`` as the child of ``config``'s checkpoint; the config that
        names the saved one."""
        thread_id, checkpoint_ns = _thread(config)
        checkpoint_id = checkpoint["id"]
        _check_lengths(thread_id, checkpoint_ns)
        kind, blob = self.serde.dumps_typed(checkpoint)
        metadata_kind, metadata_blob = self.serde.dumps_typed(
            get_serializable_checkpoint_metadata(config, metadata)
        )
        values = {
            "parent_checkpoint_id": get_checkpoint_id(config),
            "type": kind,
            "checkpoint": blob,
            "metadata_type": metadata_kind,
            "metadata_blob": metadata_blob,
        }
        fresh = {
            "project_id": self.project_id,
            "thread_id": thread_id,
            "checkpoint_ns": checkpoint_ns,
            "checkpoint_id": checkpoint_id,
            "created_at": t.utcnow(),
            **values,
        }
        try:  # a new checkpoint: one INSERT (the common case, on every step)
            with self.store.session() as s:
                s.execute(_CP_INSERT, [fresh])
        except ConflictError:
            pass  # kept before (LangGraph saves one again) or another project's: below
        else:
            return _saved(thread_id, checkpoint_ns, checkpoint_id)
        with self.store.session() as s:
            row = s.get(_CP, (thread_id, checkpoint_ns, checkpoint_id))
            if row is None:
                s.add(
                    _CP(
                        project_id=self.project_id,
                        thread_id=thread_id,
                        checkpoint_ns=checkpoint_ns,
                        checkpoint_id=checkpoint_id,
                        **values,
                    )
                )
            elif row.project_id != self.project_id:
                raise ConflictError(_clash(thread_id))
            else:
                for name, value in values.items():
                    setattr(row, name, value)
        return _saved(thread_id, checkpoint_ns, checkpoint_id)

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """Keep ``task_id``'s pending ``writes`` on ``config``'s checkpoint: an ordinary
        write already kept stays as it is; a special one replaces the one before it."""
        thread_id, checkpoint_ns = _thread(config)
        checkpoint_id = str(config["configurable"]["checkpoint_id"])
        _check_lengths(thread_id, checkpoint_ns)
        new: dict[int, tuple[str, str, bytes]] = {}
        for position, (channel, value) in enumerate(writes):
            idx = WRITES_IDX_MAP.get(channel, position)
            if idx >= 0 and idx in new:
                continue
            kind, blob = self.serde.dumps_typed(value)
            new[idx] = (channel, kind, blob)
        if not new:
            return
        fresh = [
            {
                "project_id": self.project_id,
                "thread_id": thread_id,
                "checkpoint_ns": checkpoint_ns,
                "checkpoint_id": checkpoint_id,
                "task_id": task_id,
                "idx": idx,
                "channel": channel,
                "type": kind,
                "value": blob,
                "task_path": task_path,
            }
            for idx, (channel, kind, blob) in new.items()
        ]
        try:  # none kept yet (the common case): one INSERT
            with self.store.session() as s:
                s.execute(_W_INSERT, fresh)
        except ConflictError:
            pass  # some kept before: merged below, as LangGraph wants
        else:
            return
        with self.store.session() as s:
            existing = {
                row.idx: row
                for row in s.scalars(
                    select(_W).where(
                        _W.thread_id == thread_id,
                        _W.checkpoint_ns == checkpoint_ns,
                        _W.checkpoint_id == checkpoint_id,
                        _W.task_id == task_id,
                        _W.idx.in_(builtins.list(new)),
                    )
                )
            }
            if any(row.project_id != self.project_id for row in existing.values()):
                raise ConflictError(_clash(thread_id))
            for idx, (channel, kind, blob) in new.items():
                row = existing.get(idx)
                if row is None:
                    s.add(
                        _W(
                            project_id=self.project_id,
                            thread_id=thread_id,
                            checkpoint_ns=checkpoint_ns,
                            checkpoint_id=checkpoint_id,
                            task_id=task_id,
                            idx=idx,
                            channel=channel,
                            type=kind,
                            value=blob,
                            task_path=task_path,
                        )
                    )
                elif idx < 0:  # errors, interrupts, resumes: the newest one counts
                    row.channel, row.type, row.value, row.task_path = (
                        channel,
                        kind,
                        blob,
                        task_path,
                    )

    def delete_thread(self, thread_id: str) -> None:
        """Delete the thread's checkpoints and writes (of this project only)."""
        with self.store.session() as s:
            for table in (_W, _CP):
                s.execute(
                    delete(table).where(
                        table.project_id == self.project_id, table.thread_id == thread_id
                    )
                )

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """LangGraph's pruning: ``keep_latest`` keeps each thread's newest checkpoint per
        namespace, with its writes; ``delete`` deletes the threads. (Our graphs have no
        ``DeltaChannel``, whose state would need older checkpoints.)"""
        if strategy == "delete":
            for thread_id in thread_ids:
                self.delete_thread(thread_id)
            return
        if strategy != "keep_latest":
            raise ValidationError(
                f"prune strategy {strategy!r}: use keep_latest or delete", field="strategy"
            )
        with self.store.session() as s:
            newest = s.execute(
                select(_CP.thread_id, _CP.checkpoint_ns, func.max(_CP.checkpoint_id))
                .where(_CP.project_id == self.project_id, _CP.thread_id.in_(list(thread_ids)))
                .group_by(_CP.thread_id, _CP.checkpoint_ns)
            ).all()
            for thread_id, checkpoint_ns, keep in newest:
                for table in (_W, _CP):
                    s.execute(
                        delete(table).where(
                            table.project_id == self.project_id,
                            table.thread_id == thread_id,
                            table.checkpoint_ns == checkpoint_ns,
                            table.checkpoint_id != keep,
                        )
                    )

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        await asyncio.to_thread(self.prune, thread_ids, strategy=strategy)

    def run_threads(self, run_id: str) -> builtins.list[str]:
        """The threads of an agent run: its own and its sub-agents' (``RUN_ID:...``)."""
        with self.store.session() as s:
            return builtins.list(
                s.scalars(
                    select(_CP.thread_id)
                    .distinct()
                    .where(
                        _CP.project_id == self.project_id,
                        (_CP.thread_id == run_id)
                        | _CP.thread_id.startswith(f"{run_id}:", autoescape=True),
                    )
                )
            )

    def get_next_version(self, current: str | None, channel: None) -> str:
        """The version after ``current``: a zero-padded counter, then a random fraction (as
        LangGraph's savers write them), so versions compare in order as strings."""
        if current is None:
            number = 0
        elif isinstance(current, int):
            number = current
        else:
            number = int(current.split(".")[0])
        return f"{number + 1:032}.{random.random():016}"

    # ------------------------------------------------------------------ async

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return await asyncio.to_thread(self.get_tuple, config)

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        def collect() -> builtins.list[CheckpointTuple]:
            return builtins.list(self.list(config, filter=filter, before=before, limit=limit))

        for item in await asyncio.to_thread(collect):
            yield item

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        return await asyncio.to_thread(self.put, config, checkpoint, metadata, new_versions)

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        await asyncio.to_thread(self.put_writes, config, writes, task_id, task_path)

    async def adelete_thread(self, thread_id: str) -> None:
        await asyncio.to_thread(self.delete_thread, thread_id)

    # ------------------------------------------------------------------ helpers

    def _metadata(self, row: t.AgentCheckpoint) -> CheckpointMetadata:
        metadata: CheckpointMetadata = self.serde.loads_typed(
            (row.metadata_type, row.metadata_blob)
        )
        return metadata

    def _writes(
        self, s: Session, rows: builtins.list[t.AgentCheckpoint]
    ) -> dict[_Key, builtins.list[PendingWrite]]:
        """The pending writes of ``rows``' checkpoints, each list in ``writes_sort_key``
        order."""
        threads = {row.thread_id for row in rows}
        ids = {row.checkpoint_id for row in rows}
        wanted = {_key(row) for row in rows}
        found: dict[_Key, builtins.list[t.AgentCheckpointWrite]] = {}
        for write in s.scalars(
            select(_W).where(
                _W.project_id == self.project_id,
                _W.thread_id.in_(threads),
                _W.checkpoint_id.in_(ids),
            )
        ):
            key = (write.thread_id, write.checkpoint_ns, write.checkpoint_id)
            if key in wanted:
                found.setdefault(key, []).append(write)
        return {
            key: [
                (w.task_id, w.channel, self.serde.loads_typed((w.type, w.value)))
                for w in sorted(
                    writes, key=lambda w: writes_sort_key(w.task_path, w.task_id, w.idx)
                )
            ]
            for key, writes in found.items()
        }

    def _tuple(
        self,
        row: t.AgentCheckpoint,
        writes: builtins.list[PendingWrite],
        metadata: CheckpointMetadata | None = None,
    ) -> CheckpointTuple:
        checkpoint: Checkpoint = self.serde.loads_typed((row.type, row.checkpoint))
        return CheckpointTuple(
            config=_config(row.thread_id, row.checkpoint_ns, row.checkpoint_id),
            checkpoint=checkpoint,
            metadata=self._metadata(row) if metadata is None else metadata,
            parent_config=(
                _config(row.thread_id, row.checkpoint_ns, row.parent_checkpoint_id)
                if row.parent_checkpoint_id
                else None
            ),
            pending_writes=writes,
        )


def _thread(config: RunnableConfig) -> tuple[str, str]:
    configurable = config.get("configurable", {})
    return str(configurable["thread_id"]), str(configurable.get("checkpoint_ns") or "")


def _key(row: t.AgentCheckpoint) -> _Key:
    return row.thread_id, row.checkpoint_ns, row.checkpoint_id


def _config(thread_id: str, checkpoint_ns: str, checkpoint_id: str) -> RunnableConfig:
    return {
        "configurable": {
            "thread_id": thread_id,
            "checkpoint_ns": checkpoint_ns,
            "checkpoint_id": checkpoint_id,
        }
    }


def _check_lengths(thread_id: str, checkpoint_ns: str) -> None:
    # The columns' sizes, checked here so that SQLite (which does not enforce them) and
    # PostgreSQL (which does) refuse the same ids, with a message that says which.
    for field, value, most in (
        ("thread_id", thread_id, _THREAD_ID_MAX),
        ("checkpoint_ns", checkpoint_ns, _NS_MAX),
    ):
        if len(value) > most:
            raise ValidationError(
                f"{field} {value[:80]!r} is longer than {most} characters", field=field
            )


def _clash(thread_id: str) -> str:
    return f"checkpoint thread {thread_id!r} belongs to another project"


def _saved(thread_id: str, checkpoint_ns: str, checkpoint_id: str) -> RunnableConfig:
    return {
        "configurable": {
            "thread_id": thread_id,
            "checkpoint_ns": checkpoint_ns,
            "checkpoint_id": checkpoint_id,
        }
    }
