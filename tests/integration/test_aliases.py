"""Aliases on real SQLite and PostgreSQL: set, move and delete; history and audit; names
that read as versions; the protected ``production`` alias and who may move it."""

from __future__ import annotations

import pytest

import genai
from genai.errors import Forbidden, NotFoundError, ValidationError

P = "demo"


@pytest.fixture
def admin(platform):
    client = platform()
    client.projects.create(P)
    return client


def _model(client, name: str = "base"):
    return client.registry.models.register(P, name, source="org/base-model", license="mit")


def _moves(changes) -> list[tuple[str, int | None, int | None, str]]:
    return [(c.alias, c.from_version, c.to_version, c.actor) for c in changes]


def test_alias_set_move_and_delete(admin) -> None:
    for _ in range(2):
        _model(admin, "m")
    aliases, models = admin.registry.aliases, admin.registry.models
    change = aliases.set(P, "model:m@1", "staging")
    assert (change.kind, change.name) == ("model", "m")
    assert _moves([change]) == [("staging", None, 1, "user:admin")]
    assert models.get(P, "m@staging").version == 1
    assert models.get(P, "m@1").aliases == ["staging"]

    assert _moves([aliases.set(P, "model:m@2", "staging")]) == [("staging", 1, 2, "user:admin")]
    assert models.get(P, "m@staging").version == 2
    assert (models.get(P, "m@1").aliases, models.get(P, "m@2").aliases) == ([], ["staging"])

    assert _moves([aliases.delete(P, "model:m", "staging")]) == [("staging", 2, None, "user:admin")]
    with pytest.raises(NotFoundError):
        models.get(P, "m@staging")
    with pytest.raises(NotFoundError):
        aliases.delete(P, "model:m", "staging")


def test_alias_history_is_oldest_first_and_skips_no_op_moves(admin) -> None:
    for _ in range(3):
        _model(admin, "m")
    aliases = admin.registry.aliases
    aliases.set(P, "model:m@1", "staging")
    aliases.set(P, "model:m@1", "canary")
    aliases.set(P, "model:m@1", "staging")  # already there: nothing to record
    aliases.set(P, "model:m@3", "staging")
    aliases.set(P, "model:m@staging", "canary")  # an alias may name the target
    aliases.delete(P, "model:m", "canary")
    assert _moves(aliases.history(P, "model:m")) == [
        ("staging", None, 1, "user:admin"),
        ("canary", None, 1, "user:admin"),
        ("staging", 1, 3, "user:admin"),
        ("canary", 1, 3, "user:admin"),
        ("canary", 3, None, "user:admin"),
    ]
    assert _moves(aliases.history(P, "model:m", alias="staging")) == [
        ("staging", None, 1, "user:admin"),
        ("staging", 1, 3, "user:admin"),
    ]
    history = aliases.history(P, "model:m")
    assert [c.ts for c in history] == sorted(c.ts for c in history)


def test_alias_moves_are_audited(admin) -> None:
    for _ in range(2):
        _model(admin, "m")
    admin.registry.aliases.set(P, "model:m@1", "staging")
    admin.registry.aliases.set(P, "model:m@2", "staging")
    admin.registry.aliases.delete(P, "model:m", "staging")
    moves = [
        (e.action, e.actor, e.resource, e.details)
        for e in admin.audit.list(P)
        if e.action.startswith("alias.")
    ]
    assert moves == [  # newest first
        ("alias.delete", "user:admin", "model:m@staging", {"old": 2, "new": None}),
        ("alias.set", "user:admin", "model:m@staging", {"old": 1, "new": 2}),
        ("alias.set", "user:admin", "model:m@staging", {"old": None, "new": 1}),
    ]


def test_alias_names_that_read_as_versions_or_are_invalid_are_refused(admin) -> None:
    _model(admin, "m")
    names = ["3", "007", "latest", "bad alias", "-x", "", "a@b"]
    refused = []
    for alias in names:
        try:
            admin.registry.aliases.set(P, "model:m@1", alias)
        except ValidationError as error:
            refused.append((alias, error.field))
    assert refused == [(alias, "alias") for alias in names]
    assert admin.registry.aliases.history(P, "model:m") == []
    assert admin.registry.models.get(P, "m").aliases == []


def test_alias_of_an_unversioned_kind_or_missing_version_is_refused(admin) -> None:
    _model(admin, "m")
    run = admin.registry.runs.start(P, "job", code="")
    with pytest.raises(ValidationError, match="no versions"):
        admin.registry.aliases.set(P, run.ref, "best")
    with pytest.raises(NotFoundError):
        admin.registry.aliases.set(P, "model:m@7", "staging")


def test_protected_alias_needs_a_maintainer(admin, platform) -> None:
    _model(admin, "m")
    admin.projects.add_member(P, "dev", role="developer")
    admin.projects.add_member(P, "mai", role="maintainer")
    dev, mai = platform("dev"), platform("mai")
    assert dev.registry.aliases.set(P, "model:m@1", "staging").actor == "user:dev"
    with pytest.raises(Forbidden, match="maintainer"):
        dev.registry.aliases.set(P, "model:m@1", "production")
    assert mai.registry.aliases.set(P, "model:m@1", "production").actor == "user:mai"
    with pytest.raises(Forbidden):
        dev.registry.aliases.delete(P, "model:m", "production")
    assert admin.registry.models.get(P, "m@production").version == 1
    assert _moves(admin.registry.aliases.history(P, "model:m")) == [
        ("staging", None, 1, "user:dev"),
        ("production", None, 1, "user:mai"),
    ]


def test_protected_aliases_come_from_settings(admin, platform, settings_factory) -> None:
    _model(admin, "m")
    admin.projects.add_member(P, "dev", role="developer")
    strict = settings_factory(protected_aliases=["production", "staging"])
    with genai.connect(strict, user="dev") as dev:
        with pytest.raises(Forbidden):
            dev.registry.aliases.set(P, "model:m@1", "staging")
        assert dev.registry.aliases.set(P, "model:m@1", "canary").to_version == 1
    assert platform("dev").registry.aliases.set(P, "model:m@1", "staging").to_version == 1


def test_a_viewer_cannot_move_any_alias(admin, platform) -> None:
    _model(admin, "m")
    admin.projects.add_member(P, "val", role="viewer")
    with pytest.raises(Forbidden):
        platform("val").registry.aliases.set(P, "model:m@1", "staging")


def test_other_projects_aliases_are_invisible(admin, platform) -> None:
    _model(admin, "m")
    admin.registry.aliases.set(P, "model:m@1", "staging")
    admin.projects.add_member(P, "dev", role="developer")
    outsider = platform("dev")
    outsider.projects.create("mine")
    with pytest.raises(NotFoundError):
        outsider.registry.aliases.set("mine", "model:m@1", "staging")
    admin.projects.remove_member(P, "dev")
    with pytest.raises(NotFoundError):
        outsider.registry.aliases.history(P, "model:m")
