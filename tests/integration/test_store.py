"""The metadata store: migrations, connections, transactions and project deletion.

Runs on SQLite and PostgreSQL (the ``db_url`` fixture) unless a test says otherwise.
"""

from __future__ import annotations

import multiprocessing
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, select, text

import genai
from genai.errors import ConfigError, ConflictError, StoreUnavailable, ValidationError
from genai.registry import EvalResultRecord
from genai.store import Store, current_revision, head_revision, mask_url, upgrade
from genai.store import schema as t
from genai.tenancy import UsageEvent

UNREACHABLE_PG = "postgresql+psycopg://alice:s3cret-pw@127.0.0.1:1/genai"


@pytest.fixture
def store(settings: genai.Settings) -> Any:
    genai.init(settings, admin="admin")
    store = Store(settings.resolved_database_url)
    yield store
    store.dispose()


def _count(store: Store, table: Any, *where: Any) -> int:
    with store.session() as s:
        return int(s.scalar(select(func.count()).select_from(table).where(*where)) or 0)


# --------------------------------------------------------------------------- migrations


def test_init_migrates_an_empty_database_and_records_the_revision(settings: genai.Settings) -> None:
    first = genai.init(settings, admin="admin")
    assert (first.revision_before, first.revision, first.admin) == (None, head_revision(), "admin")

    again = genai.init(settings, admin="someone-else")

    head = head_revision()
    assert (again.revision_before, again.revision, again.admin) == (head, head, None)
    store = Store(settings.resolved_database_url)
    try:
        assert current_revision(store) == head_revision()
        assert store.table_names() >= set(t.Base.metadata.tables) | {"alembic_version"}
        with store.session() as s:
            admins = s.scalars(select(t.Principal.name).where(t.Principal.is_admin.is_(True))).all()
        assert admins == ["admin"]
    finally:
        store.dispose()


def test_migrated_tables_equal_the_orm_metadata(store: Store) -> None:
    # compare_type is on, so a column whose type differs between the migration and the
    # models shows up too. UTCDateTime renders as DateTime(timezone=True), which is what
    # the migration creates, so no type filter is needed: any difference is a real one.
    with store.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        differences = compare_metadata(context, t.Base.metadata)
    assert differences == []


def test_0009_keeps_older_models_and_adapters_with_empty_new_fields(db_url: str) -> None:
    store = Store(db_url)
    try:
        upgrade(store, "0008")
        now = t.utcnow().strftime("%Y-%m-%d %H:%M:%S")  # a plain string on every driver
        rows = [
            (
                "INSERT INTO projects (id, name, description, options, created_at, created_by) "
                "VALUES (1, 'p', '', '{}', :now, 'a')"
            ),
            (
                "INSERT INTO models (id, project_id, name, version, description, created_at, "
                "created_by, source, revision, license, metadata) "
                "VALUES (1, 1, 'm', 1, '', :now, 'a', 'org/m', '', 'mit', '{}')"
            ),
            (
                "INSERT INTO adapters (id, project_id, name, version, description, created_at, "
                "created_by, base_model_id, method, rank, alpha, target_modules, run_id, artifact) "
                "VALUES (1, 1, 'a', 1, '', :now, 'a', 1, 'lora', 8, 16.0, '[\"q_proj\"]', NULL, '')"
            ),
        ]
        with store.engine.begin() as conn:
            for sql in rows:
                conn.execute(text(sql), {"now": now})
        upgrade(store)
        with store.session() as s:
            model, adapter = s.get(t.Model, 1), s.get(t.Adapter, 1)
            assert model is not None and adapter is not None
            assert model.artifact == ""
            assert (adapter.chat_template, adapter.tokenizer_sha256) == ("", "")
            assert (adapter.lint, adapter.metadata_, adapter.target_modules) == ([], {}, ["q_proj"])
    finally:
        store.dispose()


def test_connect_before_init_says_to_run_genai_init(settings: genai.Settings) -> None:
    with pytest.raises(ConfigError, match="run `genai init`") as caught:
        genai.connect(settings)
    assert "empty" in str(caught.value)


def test_init_twice_at_once_from_two_processes_succeeds(settings: genai.Settings) -> None:
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    url = settings.resolved_database_url
    workers = [
        ctx.Process(target=_init_worker, args=(url, str(settings.home), barrier, results))
        for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    outcomes = [results.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)

    assert [kind for kind, _ in outcomes] == ["ok", "ok"], outcomes
    assert sorted(str(admin) for _, admin in outcomes) == ["None", "admin"]  # one registered it
    store = Store(url)
    try:
        assert current_revision(store) == head_revision()
        assert _count(store, t.Principal, t.Principal.is_admin.is_(True)) == 1
        assert _count(store, t.AuditEvent, t.AuditEvent.action == "platform.init") == 1
    finally:
        store.dispose()


def _init_worker(url: str, home: str, barrier: Any, results: Any) -> None:
    settings = genai.Settings(home=Path(home), database_url=url, user="admin")
    barrier.wait(timeout=60)
    try:
        results.put(("ok", genai.init(settings).admin))
    except Exception as error:  # reported to the test, which fails with it
        results.put(("error", f"{type(error).__name__}: {error}"))


# --------------------------------------------------------------------------- connections


def test_sqlite_connections_use_wal_and_enforce_foreign_keys(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'nested' / 'genai.db'}")
    try:
        upgrade(store)
        # Two pooled connections at once are two distinct SQLite connections.
        one, two = store.engine.raw_connection(), store.engine.raw_connection()
        try:
            for conn in (one, two):
                pragma = conn.cursor()
                assert pragma.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
                assert pragma.execute("PRAGMA foreign_keys").fetchone()[0] == 1
                assert pragma.execute("PRAGMA busy_timeout").fetchone()[0] == 30000
        finally:
            one.close()
            two.close()
        with pytest.raises(ConflictError, match="conflicts with existing data"):
            with store.session() as s:
                s.add(t.Quota(project_id=12345))  # no such project
    finally:
        store.dispose()


@pytest.mark.parametrize("entry", ["init", "connect"])
def test_unreachable_postgres_is_store_unavailable_without_the_password(
    tmp_path: Path, entry: str
) -> None:
    settings = genai.Settings(home=tmp_path, database_url=UNREACHABLE_PG, user="admin")
    with pytest.raises(StoreUnavailable) as caught:
        genai.init(settings) if entry == "init" else genai.connect(settings)
    message = str(caught.value)
    assert "s3cret-pw" not in message
    assert "postgresql+psycopg://alice:***@127.0.0.1:1/genai" in message
    assert "Check that the server runs and that GENAI_DATABASE_URL is right" in message
    assert caught.value.retryable is True
    assert caught.value.backend == "database"


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("postgresql+psycopg://bob:pw@db:5432/x", "postgresql+psycopg://bob:***@db:5432/x"),
        ("redis://:pw@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
        ("postgresql://bob@db/x?options=a@b", "postgresql://bob@db/x?options=a@b"),
        ("sqlite:////home/me/genai.db", "sqlite:////home/me/genai.db"),
    ],
)
def test_mask_url_hides_only_the_password(url: str, masked: str) -> None:
    assert mask_url(url) == masked


@pytest.mark.parametrize(
    "url",
    [
        "not a url",
        "mysql://bob:pw@db.example.com/genai",
        "postgresql+nosuchdriver://bob:pw@127.0.0.1/genai",
    ],
)
@pytest.mark.parametrize("entry", ["init", "connect"])
def test_a_bad_database_url_is_a_config_error(tmp_path: Path, url: str, entry: str) -> None:
    settings = genai.Settings(home=tmp_path, database_url=url, user="admin")
    with pytest.raises(ConfigError) as caught:
        genai.init(settings) if entry == "init" else genai.connect(settings)
    message = str(caught.value)
    assert ":pw@" not in message
    assert "sqlite" in message.lower() and "postgresql" in message.lower()  # says what works


# --------------------------------------------------------------------------- transactions


def test_an_error_inside_a_session_rolls_back_everything_it_wrote(store: Store) -> None:
    with pytest.raises(RuntimeError, match="midway"):
        with store.session() as s:
            s.add(t.Project(name="half-written", created_by="admin"))
            s.flush()  # the row has reached the database inside the transaction
            raise RuntimeError("midway")
    assert _count(store, t.Project, t.Project.name == "half-written") == 0


def test_a_conflict_inside_a_session_rolls_back_earlier_writes(store: Store) -> None:
    with pytest.raises(ConflictError):
        with store.session() as s:
            s.add(t.Project(name="first-one", created_by="admin"))
            s.flush()
            s.add(t.Project(name="first-one", created_by="admin"))
            s.flush()
    assert _count(store, t.Project, t.Project.name == "first-one") == 0


def test_a_project_delete_that_fails_midway_leaves_the_project_whole(platform: Any) -> None:
    admin = platform()
    admin.projects.create("keepme")
    admin.keys.create("keepme", role="developer")
    admin.registry.models.register("keepme", "base", source="org/base", license="mit")
    store = admin.store
    with pytest.raises(RuntimeError):
        with store.session() as s:
            row = s.scalars(select(t.Project).where(t.Project.name == "keepme")).one()
            project_id = row.id
            s.delete(row)
            s.flush()  # the cascade has run in the database
            raise RuntimeError("crash after the delete")
    assert [p.name for p in admin.projects.list()] == ["keepme"]
    assert _count(store, t.ApiKey, t.ApiKey.project_id == project_id) == 1
    assert _count(store, t.Model, t.Model.project_id == project_id) == 1
    assert _count(store, t.Membership, t.Membership.project_id == project_id) == 1


def test_a_service_call_that_fails_after_a_partial_write_leaves_no_trace(platform: Any) -> None:
    admin = platform()
    admin.projects.create("metrics")
    run = admin.registry.runs.start("metrics", "train", code="abc")
    # "loss" is flushed while "accuracy" is looked up; the bad name fails after that.
    with pytest.raises(ValidationError, match="metric name"):
        run.log({"loss": 1.0, "accuracy": 0.5, "not a name!": 2.0}, step=0)
    assert admin.registry.runs.metrics("metrics", run.id) == []

    run.log({"loss": 1.0}, step=1)
    with pytest.raises(ConflictError, match="already has loss"):
        run.log({"accuracy": 0.5, "loss": 0.9}, step=1)
    kept = admin.registry.runs.metrics("metrics", run.id)
    assert [(m.key, m.step) for m in kept] == [("loss", 1)]


# --------------------------------------------------------------------------- deleting projects

_NOT_CASCADED = {"audit_events"}  # the audit log outlives the project it speaks of


def _project_tables() -> list[Any]:
    return [
        table
        for table in t.Base.metadata.sorted_tables
        if "project_id" in table.c and table.name not in _NOT_CASCADED | {"projects"}
    ]


def _fill_project(admin: Any, project: str) -> None:
    reg = admin.registry
    admin.projects.create(project)
    admin.projects.add_member(project, "bot", role="developer", service=True)
    admin.keys.create(project, role="developer")
    admin.quotas.set(project, requests_per_minute=100)
    reg.models.register(project, "base", source="org/base", license="mit")
    reg.datasets.register(project, "faq", [{"q": "hi", "a": "hello"}])
    run = reg.runs.start(project, "train", datasets=["faq@1"], base_model="base@1", code="abc")
    run.log({"loss": 0.5}, step=1)
    run.finish()
    reg.adapters.register(
        project,
        "support",
        base_model="base@1",
        rank=8,
        alpha=16.0,
        target_modules=["q_proj"],
        run=run.id,
    )
    reg.prompts.register(project, "greet", template="Hello {name}")
    reg.deployments.create(project, "chat", model="base@1", adapter="support@1")
    suite = reg.suites.register(project, "smoke", dataset="faq@1", definition={"metrics": []})
    ev = reg.evals.record(
        project, "smoke", metrics={}, inputs=["deployment:chat@1", suite.ref], status="running"
    )
    reg.evals.add_results(
        project,
        ev.id,
        [
            EvalResultRecord(
                row_index=0, repeat=0, cache_key="k", answer={"output": "hello"}, scores={}
            )
        ],
    )
    reg.evals.finish(project, ev.id, metrics={"score": 1.0})
    reg.aliases.set(project, "adapter:support@1", "production")
    admin.usage.record(project, UsageEvent(model="base", prompt_tokens=3, completion_tokens=4))
    with admin.store.session() as s:  # what the gateway writes: feedback and shadow results
        pid = s.scalar(select(t.Project.id).where(t.Project.name == project))
        s.add(t.Feedback(project_id=pid, request_id="r1", deployment="chat", score=1.0))
        s.add(
            t.ShadowResult(
                project_id=pid,
                request_id="r1",
                deployment="chat",
                primary_target="a",
                shadow_target="b",
                status="ok",
            )
        )
        # what DLP, the cache, knowledge bases and knowledge bots keep
        s.add(
            t.DlpVaultEntry(
                project_id=pid,
                session_id="s1",
                entity_type="EMAIL_ADDRESS",
                seq=1,
                token="EMAIL_ADDRESS_1",
                value_mac="m",
                ciphertext="c",
                expires_at=t.utcnow(),
            )
        )
        entry = f"{project}-e1"
        s.add(
            t.CacheEntry(
                id=entry, project_id=pid, exact_key="k", scope="s", deployment="chat", answer={}
            )
        )
        s.add(t.CacheHit(project_id=pid, request_id="r1", entry_id=entry, ts=t.utcnow()))
        s.add(t.CacheCounter(project_id=pid, deployment="chat", lookups=1))
        s.add(t.CacheEstimate(project_id=pid, deployment="chat", curve="c", block=0, hits=1))
        s.add(
            t.PublishedApp(
                project_id=pid,
                slug=f"{project}-app",
                deployment="chat",
                title="Chat",
                key_prefix="gk_x",
                sealed_key="sealed",
                token_nonce="n",
            )
        )
        kb = t.KnowledgeBase(
            project_id=pid,
            name="docs",
            embedding_model="m",
            dimension=4,
            dataset="kb-docs",
            created_by="user:admin",
        )
        s.add(kb)
        s.flush()
        s.add(
            t.KbDocument(
                kb_id=kb.id, source_key="a", project_id=pid, source="a.md", content_hash="h"
            )
        )
        s.add(t.KbAnswer(project_id=pid, request_id="r1", deployment="bot", kb_name="docs"))
        s.add(t.ProjectSecret(project_id=pid, name="vendor-key", ciphertext="c"))
        # what the gateway keeps of Responses API answers
        s.add(
            t.StoredResponse(project_id=pid, response_id="resp_1", deployment="chat", response={})
        )
        # an agent run, its checkpoint, trace, tool call and approval
        run = t.AgentRun(
            project_id=pid, run_id=f"run_{project}", agent="a", status="running", created_by="x"
        )
        s.add(run)
        s.flush()
        common = {"project_id": pid, "thread_id": run.run_id, "checkpoint_id": "c1", "type": "j"}
        s.add(t.AgentCheckpoint(**common, checkpoint=b"{}", metadata_type="j", metadata_blob=b""))
        s.add(t.AgentCheckpointWrite(**common, task_id="t", idx=0, channel="c", value=b""))
        s.add(
            t.AgentStep(
                project_id=pid, run_pk=run.id, index=0, kind="model", name="m", agent="a",
                status="ok",
            )
        )
        s.add(t.AgentToolCall(project_id=pid, run_pk=run.id, call_id="c", tool="f", status="ok"))
        s.add(t.AgentApproval(project_id=pid, run_pk=run.id, call_id="c", tool="f"))


def test_deleting_a_project_deletes_everything_of_it_but_keeps_the_audit_log(platform: Any) -> None:
    admin = platform()
    _fill_project(admin, "doomed")
    _fill_project(admin, "keeper")
    store = admin.store
    with store.session() as s:
        doomed = s.scalar(select(t.Project.id).where(t.Project.name == "doomed"))
        keeper = s.scalar(select(t.Project.id).where(t.Project.name == "keeper"))
    tables = _project_tables()
    before = {table.name: _count(store, table, table.c.project_id == keeper) for table in tables}
    assert all(_count(store, table, table.c.project_id == doomed) > 0 for table in tables), before
    metrics_before = _count(store, t.RunMetric)

    admin.projects.delete("doomed")

    for table in tables:
        assert _count(store, table, table.c.project_id == doomed) == 0, table.name
        assert _count(store, table, table.c.project_id == keeper) == before[table.name], table.name
    assert _count(store, t.RunMetric) == metrics_before // 2
    assert [p.name for p in admin.projects.list()] == ["keeper"]
    deleted = admin.audit.list(action="project.delete")
    assert [(e.project, e.actor, e.details) for e in deleted] == [
        ("doomed", "user:admin", {"keys": 1, "members": 2})
    ]
    assert _count(store, t.AuditEvent, t.AuditEvent.project_id == doomed) > 1


def test_a_new_project_never_inherits_a_deleted_projects_id_or_audit_log(platform: Any) -> None:
    admin = platform()
    admin.projects.create("old-team")
    admin.projects.add_member("old-team", "mallory", role="viewer")
    admin.projects.delete("old-team")  # it had the highest id

    admin.projects.create("new-team")

    assert [(e.project, e.action) for e in admin.audit.list("new-team")] == [
        ("new-team", "project.create")
    ]
