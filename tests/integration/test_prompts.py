"""Prompt management on real SQLite and PostgreSQL: versioning and idempotent pushes,
references, labels with their audit trail, who may move ``production``, project isolation,
diffs, rollback, and the client cache falling back when the database is really unreachable
(a deleted SQLite directory; a PostgreSQL connection whose loopback proxy is gone)."""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import genai
from genai.errors import ConflictError, Forbidden, NotFoundError, StoreUnavailable, ValidationError
from genai.store import Store
from prompts import PromptHub, PromptTemplate

P = "support-bot"


def qa(style: str = "Be brief.") -> PromptTemplate:
    return PromptTemplate(
        messages=[
            ("system", "Answer from {{ company }}'s documents. " + style),
            ("user", "{{ question }}"),
        ],
        variables={"company": {"type": "str", "default": "ACME"}, "question": "str"},
    )


@pytest.fixture
def admin(platform: Callable[..., genai.Client]) -> genai.Client:
    client = platform()
    client.projects.create(P)
    return client


@pytest.fixture
def hub(admin: genai.Client) -> PromptHub:
    return PromptHub(admin, P)


def member(platform: Callable[..., genai.Client], admin: genai.Client, name: str, role: str):
    admin.projects.add_member(P, name, role=role)
    return PromptHub(platform(name), P)


# ------------------------------------------------------------------ versions


def test_push_versions_are_immutable_and_idempotent(hub: PromptHub) -> None:
    first = hub.push("qa", qa(), message="first cut")
    assert (first.ref, first.created, first.author, first.message) == (
        "qa@1",
        True,
        "user:admin",
        "first cut",
    )
    again = hub.push("qa", qa(), message="the same again")
    assert (again.ref, again.created, again.message) == ("qa@1", False, "first cut")
    assert again.content_hash == first.content_hash and len(first.content_hash) == 64

    second = hub.push("qa", qa("Cite your sources."), message="cite")
    assert (second.ref, second.created) == ("qa@2", True)
    assert second.content_hash != first.content_hash
    assert hub.get("qa@1").template == qa() and hub.get("qa@2").template == qa("Cite your sources.")
    assert [v.ref for v in hub.history("qa")] == ["qa@2", "qa@1"]
    assert [v.message for v in hub.history("qa")] == ["cite", "first cut"]

    hub.push("summary", PromptTemplate(text="Summarise: {{ text }}"))
    assert [(v.ref, v.kind) for v in hub.list()] == [("qa@2", "chat"), ("summary@1", "text")]
    with pytest.raises(NotFoundError, match="prompt 'ghost' not found"):
        hub.history("ghost")
    with pytest.raises(ValidationError, match="invalid prompt name 'bad name'"):
        hub.push("bad name", qa())


def test_push_from_files(hub: PromptHub, tmp_path: Path) -> None:
    (tmp_path / "qa.yaml").write_text(qa().to_yaml())
    (tmp_path / "hello.txt").write_text("Hello {{ name }}")
    assert hub.push("qa", tmp_path / "qa.yaml").template == qa()
    assert hub.push("qa", str(tmp_path / "qa.yaml")).created is False
    hello = hub.push("hello", tmp_path / "hello.txt")
    assert hub.render(hello.ref, name="Ada") == "Hello Ada"


def test_references_and_rendering(hub: PromptHub) -> None:
    hub.push("qa", qa())
    hub.push("qa", qa("Cite."))
    hub.label("qa@1", "production")
    assert hub.get("qa").ref == "qa@2"
    assert hub.get("qa@1").ref == "qa@1"
    assert hub.get("prompt:qa@production").ref == "qa@1"
    assert hub.get("qa@production").labels == ("production",)
    messages = hub.render("qa@production", {"question": "Where is my invoice?"})
    assert isinstance(messages, list)
    assert messages[0]["content"] == "Answer from ACME's documents. Be brief."
    for ref in ("qa@9", "qa@staging", "nope"):
        with pytest.raises(NotFoundError):
            hub.get(ref)
    with pytest.raises(ValidationError, match="invalid reference"):
        hub.get("qa@@1")
    with pytest.raises(ValidationError, match="expected a prompt reference"):
        hub.get("model:qa@1")
    with pytest.raises(ValidationError) as caught:
        hub.render("qa@production", question="q", qestion="typo")
    assert "prompt qa@1: unexpected variable(s) 'qestion'" in caught.value.message
    assert caught.value.field == "qestion"


def test_diff_between_versions(hub: PromptHub) -> None:
    hub.push("qa", qa())
    hub.push("qa", qa("Cite your sources."))
    text = hub.diff("qa@1", "qa@2")
    assert text.startswith("--- qa@1\n+++ qa@2\n")
    assert '-    content: "Answer from {{ company }}\'s documents. Be brief."' in text
    assert '+    content: "Answer from {{ company }}\'s documents. Cite your sources."' in text
    assert "question" not in "".join(  # unchanged lines are context, not changes
        line for line in text.splitlines() if line.startswith(("+ ", "- "))
    )
    assert hub.diff("qa@2", "qa") == ""


# ------------------------------------------------------------------ labels


def test_labels_move_with_an_audit_trail(hub: PromptHub, admin: genai.Client) -> None:
    for style in ("One.", "Two.", "Three."):
        hub.push("qa", qa(style))
    hub.label("qa@1", "staging")
    hub.label("qa@2", "staging")
    hub.label("qa@staging", "production")  # a label may name the target
    hub.label("qa@2", "staging")  # already there: nothing recorded
    moves = [(c.alias, c.from_version, c.to_version, c.actor) for c in hub.label_history("qa")]
    assert moves == [
        ("staging", None, 1, "user:admin"),
        ("staging", 1, 2, "user:admin"),
        ("production", None, 2, "user:admin"),
    ]
    assert [c.to_version for c in hub.label_history("qa", label="production")] == [2]
    audit = admin.audit.list(P, action="alias.set")
    assert [(e.resource, e.details) for e in reversed(audit)] == [
        ("prompt:qa@staging", {"old": None, "new": 1}),
        ("prompt:qa@staging", {"old": 1, "new": 2}),
        ("prompt:qa@production", {"old": None, "new": 2}),
    ]
    pushes = admin.audit.list(P, action="prompt.register")
    assert sorted(e.resource for e in pushes) == ["prompt:qa@1", "prompt:qa@2", "prompt:qa@3"]

    removed = hub.unlabel("qa", "staging")
    assert (removed.from_version, removed.to_version) == (2, None)
    with pytest.raises(NotFoundError):
        hub.get("qa@staging")
    with pytest.raises(ValidationError, match="would read as a version"):
        hub.label("qa@1", "7")


def test_push_with_a_label(hub: PromptHub) -> None:
    version = hub.push("qa", qa(), label="staging")
    assert version.labels == ("staging",)
    assert hub.get("qa@staging").ref == "qa@1"


def test_rollback_walks_the_label_back(hub: PromptHub) -> None:
    for style in ("One.", "Two.", "Three."):
        hub.push("qa", qa(style))
    for version in (1, 2, 3):
        hub.label(f"qa@{version}", "production")
    assert hub.get("qa@production").ref == "qa@3"
    change = hub.rollback("qa", "production")
    assert (change.from_version, change.to_version) == (3, 2)
    assert hub.get("qa@production").ref == "qa@2"  # the hub's cache saw its own move
    assert hub.rollback("qa", "production").to_version == 1
    with pytest.raises(ConflictError, match="no earlier version to go back to"):
        hub.rollback("qa", "production")
    with pytest.raises(NotFoundError, match="has no label 'canary'"):
        hub.rollback("qa", "canary")
    moves = [(c.from_version, c.to_version) for c in hub.label_history("qa", label="production")]
    assert moves == [(None, 1), (1, 2), (2, 3), (3, 2), (2, 1)]  # rollbacks are moves too


def test_roles_decide_who_pushes_and_who_moves_production(
    platform: Callable[..., genai.Client], admin: genai.Client, hub: PromptHub
) -> None:
    hub.push("qa", qa())
    hub.label("qa@1", "production")
    viewer = member(platform, admin, "vera", "viewer")
    developer = member(platform, admin, "dev", "developer")
    maintainer = member(platform, admin, "mia", "maintainer")
    owner = member(platform, admin, "otto", "owner")

    # a viewer reads, renders, lists and diffs, and changes nothing
    assert viewer.render("qa@production", question="q")[1]["content"] == "q"
    assert [v.ref for v in viewer.list()] == ["qa@1"]
    assert viewer.diff("qa@1", "qa") == ""
    with pytest.raises(Forbidden):
        viewer.push("qa", qa("Viewer's."))
    with pytest.raises(Forbidden):
        viewer.label("qa@1", "staging")

    # a developer pushes and moves ordinary labels, not production
    pushed = developer.push("qa", qa("Developer's."), label="staging")
    assert (pushed.ref, pushed.author, pushed.labels) == ("qa@2", "user:dev", ("staging",))
    with pytest.raises(Forbidden, match="maintainer"):
        developer.label("qa@2", "production")
    with pytest.raises(Forbidden):
        developer.push("qa", qa("Developer's."), label="production")
    with pytest.raises(Forbidden):
        developer.unlabel("qa", "production")
    assert hub.get("qa@production").ref == "qa@1"

    # a maintainer and an owner move it; a developer may not roll it back either
    assert maintainer.label("qa@2", "production").actor == "user:mia"
    with pytest.raises(Forbidden):
        developer.rollback("qa", "production")
    assert owner.rollback("qa", "production").to_version == 1


def test_projects_never_see_each_others_prompts(
    platform: Callable[..., genai.Client], admin: genai.Client, hub: PromptHub
) -> None:
    hub.push("qa", qa(), label="staging")
    admin.projects.create("other-team")
    admin.projects.add_member("other-team", "eve", role="owner")
    eve = platform("eve")
    theirs = PromptHub(eve, "other-team")
    with pytest.raises(NotFoundError):
        theirs.get("qa@staging")
    assert theirs.list() == []
    mine_from_outside = PromptHub(eve, P)
    for probe in (
        lambda: mine_from_outside.get("qa"),
        lambda: mine_from_outside.list(),
        lambda: mine_from_outside.push("qa", qa("Eve's.")),
        lambda: mine_from_outside.label("qa@1", "production"),
    ):
        with pytest.raises(NotFoundError, match=f"project '{P}' not found"):
            probe()
    # the same name in another project is another prompt, with its own versions
    assert theirs.push("qa", qa("Theirs.")).ref == "qa@1"
    assert hub.get("qa").template == qa() and theirs.get("qa").template == qa("Theirs.")


# ------------------------------------------------------------------ the cache


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_cache_ttl_sees_label_moves_after_it_expires(
    platform: Callable[..., genai.Client], hub: PromptHub
) -> None:
    hub.push("qa", qa("One."))
    hub.push("qa", qa("Two."))
    hub.label("qa@1", "production")
    clock = Clock()
    reader = PromptHub(platform(), P, ttl_s=30, clock=clock)
    assert reader.get("qa@production").ref == "qa@1"
    hub.label("qa@2", "production")  # another process moves the label
    clock.now += 29
    assert reader.get("qa@production").ref == "qa@1"  # still fresh
    clock.now += 2
    assert reader.get("qa@production").ref == "qa@2"


class LoopbackProxy:
    """A TCP forwarder on 127.0.0.1 to ``target``; ``close()`` makes the target unreachable
    through it (the listener and every open connection go away)."""

    def __init__(self, target: tuple[str, int], port: int = 0) -> None:
        self.target = target
        self.server = socket.create_server(("127.0.0.1", port))
        self.port = self.server.getsockname()[1]
        self.sockets: list[socket.socket] = []
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self.closed = True
        with contextlib.suppress(OSError):
            self.server.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread
        self.server.close()
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


@dataclass
class Outage:
    """Makes the database unreachable for ``client`` (for real: no connection to it can be
    made any more), and reachable again."""

    client: genai.Client
    start: Callable[[], None]
    end: Callable[[], None]


@contextlib.contextmanager
def outage(settings: genai.Settings) -> Iterator[Outage]:
    url = settings.resolved_database_url
    if url.startswith("sqlite"):
        home = Path(url.split("///", 1)[1]).parent
        moved = home.with_name(home.name + "-moved")
        store = Store(url)

        def start() -> None:
            store.dispose()  # pooled connections would keep the moved file open
            home.rename(moved)

        def end() -> None:
            if moved.exists():
                moved.rename(home)

        try:
            yield Outage(genai.connect(settings, user="admin", store=store), start, end)
        finally:
            end()
            store.dispose()
        return
    proxies = [LoopbackProxy(("127.0.0.1", 5432))]
    port = proxies[0].port
    store = Store(url.replace("@127.0.0.1:5432/", f"@127.0.0.1:{port}/"))
    try:
        yield Outage(
            genai.connect(settings, user="admin", store=store),
            start=lambda: proxies[-1].close(),
            end=lambda: proxies.append(LoopbackProxy(("127.0.0.1", 5432), port)),
        )
    finally:
        for proxy in proxies:
            proxy.close()
        store.dispose()


def test_last_good_version_when_the_database_is_unreachable(
    settings: genai.Settings, hub: PromptHub, caplog: pytest.LogCaptureFixture
) -> None:
    hub.push("qa", qa("One."), label="production")
    hub.push("other", PromptTemplate(text="{{ x }}"))
    clock = Clock()
    with outage(settings) as db:
        reader = PromptHub(db.client, P, ttl_s=5, clock=clock)
        assert reader.get("qa@production").ref == "qa@1"
        db.start()
        clock.now += 60  # long stale: the store must be asked, and cannot answer
        with caplog.at_level(logging.WARNING, logger="prompts"):
            version = reader.get("qa@production")
        rendered = version.render(question="q")
        assert version.ref == "qa@1" and isinstance(rendered, list)
        assert rendered[1]["content"] == "q"
        assert "unreachable" in caplog.text and "prompt qa@production" in caplog.text
        assert reader.fallbacks == 1
        with pytest.raises(StoreUnavailable, match="cannot reach the metadata database"):
            reader.get("other")  # never read before: nothing to fall back on
        with pytest.raises(StoreUnavailable):
            reader.push("qa", qa("Two."))  # writes are never faked
        with pytest.raises(StoreUnavailable):
            reader.list()

        # the database is back: the next read after the TTL comes from it again
        db.end()
        hub.push("qa", qa("Two."), label="production")
        clock.now += 60
        assert reader.get("qa@production").ref == "qa@2"
        assert reader.fallbacks == 1


def test_not_found_is_an_answer_not_an_outage(hub: PromptHub) -> None:
    hub.push("qa", qa(), label="staging")
    clock = Clock()
    hub = PromptHub(hub.client, P, clock=clock)
    assert hub.get("qa@staging").ref == "qa@1"
    hub.unlabel("qa", "staging")
    clock.now += 3600
    with pytest.raises(NotFoundError):
        hub.get("qa@staging")  # the database said so: the old copy is not served
