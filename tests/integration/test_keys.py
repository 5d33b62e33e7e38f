"""API keys: shown once, stored as a digest, verified, listed, revoked, expiring, capped."""

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import inspect, select, text, update

import genai
from genai.errors import AuthenticationError, Forbidden, NotFoundError, ValidationError
from genai.store import Store
from genai.store import schema as t
from genai.store.schema import utcnow
from genai.tenancy import KEY_PATTERN, Role, parse_duration

PROJECT = "keys-proj"


@pytest.fixture
def admin(platform):
    client = platform()
    client.projects.create(PROJECT)
    return client


def member(
    platform: Callable[..., genai.Client], admin: genai.Client, name: str, role: str
) -> genai.Client:
    admin.projects.add_member(PROJECT, name, role=role)
    return platform(name)


def every_stored_text(store: Store) -> Iterator[str]:
    """Every value of every row of every table, as text."""
    with store.engine.connect() as conn:
        for table in inspect(conn).get_table_names():
            for row in conn.execute(text(f'SELECT * FROM "{table}"')):
                yield from (str(value) for value in row)


# ------------------------------------------------------------------ creating


def test_secret_is_shown_once_and_only_its_prefix_is_stored(admin):
    key = admin.keys.create(PROJECT, role="developer", name="ci")
    match = KEY_PATTERN.match(key.secret)
    assert match is not None
    prefix, body = match.groups()
    assert key.prefix == f"gk_{prefix}"
    assert (key.project, key.role, key.owner, key.name) == (PROJECT, Role.DEVELOPER, "admin", "ci")
    assert key.status == "active" and key.expires_at is None
    listed = admin.keys.list(PROJECT)
    assert [k.prefix for k in listed] == [key.prefix]
    assert not hasattr(listed[0], "secret")
    assert key.secret not in repr(listed)
    stored = list(every_stored_text(admin.store))
    assert prefix in stored  # the prefix is kept...
    assert not [value for value in stored if body in value]  # ...the secret nowhere
    assert not [value for value in stored if body[:16] in value]


def test_each_key_is_unique(admin):
    keys = [admin.keys.create(PROJECT, role="viewer", name=f"k{i}") for i in range(5)]
    assert len({k.secret for k in keys}) == len({k.prefix for k in keys}) == 5


def test_verify_gives_the_keys_principal(admin):
    key = admin.keys.create(PROJECT, role="maintainer")
    principal = admin.keys.verify(key.secret)
    assert (principal.name, principal.kind, principal.is_admin) == ("admin", "user", False)
    assert principal.key_id == key.id
    assert principal.key_prefix == key.prefix
    assert list(principal.grants.values()) == [Role.MAINTAINER]
    assert principal.label == f"user:admin via key {key.prefix}"
    assert admin.keys.verify(f"  {key.secret}\n").key_id == key.id  # copied with whitespace


def test_key_principal_uses_the_api(platform, admin):
    key = admin.keys.create(PROJECT, role="developer")
    bot = platform(api_key=key.secret)
    bot.registry.models.register(PROJECT, "m", source="org/m", license="mit")
    assert bot.registry.models.get(PROJECT, "m").created_by == f"user:admin via key {key.prefix}"
    assert admin.audit.list(PROJECT, action="model.register")[0].actor.endswith(key.prefix)


def test_expiring_key_is_active_until_then(admin):
    for expires_in, lifetime in [("1h", timedelta(hours=1)), (timedelta(3), timedelta(days=3))]:
        key = admin.keys.create(PROJECT, role="viewer", expires_in=expires_in)
        assert key.expires_at is not None
        assert abs(key.expires_at - (key.created_at + lifetime)) < timedelta(seconds=1)
        assert key.status == "active"
        admin.keys.verify(key.secret)


def test_create_rejects_bad_arguments(admin):
    bad: list[tuple[dict[str, Any], str]] = [
        ({"role": "admin"}, "role"),
        ({"role": "viewer", "name": "no spaces"}, "key name"),
        ({"role": "viewer", "expires_in": "0d"}, "expires_in"),
        ({"role": "viewer", "expires_in": "soon"}, "expires_in"),
        ({"role": "viewer", "expires_in": timedelta(0)}, "expires_in"),  # not "never expires"
        ({"role": "viewer", "expires_in": timedelta(seconds=-5)}, "expires_in"),
    ]
    for kwargs, field in bad:
        with pytest.raises(ValidationError) as info:
            admin.keys.create(PROJECT, **kwargs)
        assert info.value.field == field, kwargs
    assert admin.keys.list(PROJECT, include_revoked=True) == []


def test_key_role_is_at_most_the_members_role(platform, admin):
    dev = member(platform, admin, "dev", "developer")
    for role in ("maintainer", "owner"):
        with pytest.raises(Forbidden, match=f"at most role developer .* not {role}"):
            dev.keys.create(PROJECT, role=role)
    assert dev.keys.create(PROJECT, role="developer").role is Role.DEVELOPER
    assert dev.keys.create(PROJECT, role="viewer").role is Role.VIEWER


def test_a_key_cannot_mint_a_stronger_key(platform, admin):
    weak = platform(api_key=admin.keys.create(PROJECT, role="developer").secret)
    with pytest.raises(Forbidden, match="at most role developer"):
        weak.keys.create(PROJECT, role="owner")
    assert {k.role for k in admin.keys.list(PROJECT)} == {Role.DEVELOPER}


def test_non_member_admin_gets_no_key_of_its_own(platform, admin):
    member(platform, admin, "olga", "viewer")
    platform("olga").projects.create("olgas")
    with pytest.raises(Forbidden, match="not a member"):
        admin.keys.create("olgas", role="viewer")


# ------------------------------------------------------------------ rejected keys


MALFORMED = [
    "",
    "not-a-key",
    "gk_short_abc",
    "gk_ABCDEFGHIJ_" + "a" * 43,
    "sk-" + "a" * 48,
    "gk_abcdefghij_",
    "gk_abcdefghij_" + "a" * 44,
]


def test_malformed_key_is_refused(platform, admin):
    for bad in MALFORMED:
        with pytest.raises(AuthenticationError, match="malformed API key"):
            admin.keys.verify(bad)
    with pytest.raises(AuthenticationError, match="malformed API key"):
        platform(api_key="not-a-key").projects.list()


def test_unknown_key_and_wrong_secret_read_the_same(platform, admin):
    real = admin.keys.create(PROJECT, role="owner")
    prefix = real.prefix.removeprefix("gk_")
    match = KEY_PATTERN.match(real.secret)
    assert match is not None
    body = match.group(2)
    wrong_body = ("A" if body[0] != "A" else "B") + body[1:]
    other_prefix = "zz" + prefix[2:] if not prefix.startswith("zz") else "yy" + prefix[2:]
    with pytest.raises(AuthenticationError) as wrong_secret:
        admin.keys.verify(f"gk_{prefix}_{wrong_body}")
    with pytest.raises(AuthenticationError) as unknown:
        admin.keys.verify(f"gk_{other_prefix}_{body}")
    assert "unknown API key" in str(wrong_secret.value)
    assert str(wrong_secret.value).replace(prefix, other_prefix) == str(unknown.value)
    with pytest.raises(AuthenticationError):  # and the API refuses it on every call
        platform(api_key=f"gk_{prefix}_{wrong_body}").projects.get(PROJECT)


# ------------------------------------------------------------------ revoking


def test_revoke_by_prefix_id_or_whole_key(platform, admin):
    keep = admin.keys.create(PROJECT, role="developer", name="keep")
    for by in ("prefix", "id", "whole key"):
        key = admin.keys.create(PROJECT, role="developer", name=by.replace(" ", "-"))
        bot = platform(api_key=key.secret)
        bot.projects.get(PROJECT)
        name = {"prefix": key.prefix, "id": str(key.id), "whole key": key.secret}[by]
        revoked = admin.keys.revoke(PROJECT, name)
        assert (revoked.id, revoked.status) == (key.id, "revoked"), by
        assert revoked.revoked_at is not None
        with pytest.raises(AuthenticationError, match=f"{key.prefix}_… was revoked at"):
            bot.projects.get(PROJECT)  # the client made before takes it on its next call
        with pytest.raises(AuthenticationError, match="revoked"):
            admin.keys.verify(key.secret)
    admin.keys.verify(keep.secret)
    assert [k.prefix for k in admin.keys.list(PROJECT)] == [keep.prefix]
    everything = admin.keys.list(PROJECT, include_revoked=True)
    assert [k.status for k in everything] == ["active", "revoked", "revoked", "revoked"]


def test_revoking_twice_keeps_the_first_revocation(admin):
    key = admin.keys.create(PROJECT, role="viewer")
    first = admin.keys.revoke(PROJECT, key.prefix)
    second = admin.keys.revoke(PROJECT, key.prefix)
    assert second.revoked_at == first.revoked_at
    assert len(admin.audit.list(PROJECT, action="key.revoke")) == 1


def test_revoke_of_what_names_no_key(admin):
    key = admin.keys.create(PROJECT, role="viewer")
    for name, error in [
        ("gk_zzzzzzzzzz", NotFoundError),
        ("999999", NotFoundError),
        ("my key", ValidationError),
        ("gk_short", ValidationError),
    ]:
        with pytest.raises(error):
            admin.keys.revoke(PROJECT, name)
    assert admin.keys.list(PROJECT)[0].prefix == key.prefix


def test_members_revoke_their_own_keys_only_maintainers_revoke_others(platform, admin):
    dev = member(platform, admin, "dev", "developer")
    mia = member(platform, admin, "mia", "maintainer")
    own, other = dev.keys.create(PROJECT, role="developer"), mia.keys.create(PROJECT, role="viewer")
    with pytest.raises(Forbidden, match="key:revoke"):
        dev.keys.revoke(PROJECT, other.prefix)
    assert dev.keys.revoke(PROJECT, own.prefix).status == "revoked"
    assert mia.keys.revoke(PROJECT, admin.keys.create(PROJECT, role="owner").prefix).status == (
        "revoked"
    )
    dev.keys.verify(other.secret)  # still active


def test_removed_members_keys_are_revoked(platform, admin):
    alice = member(platform, admin, "alice", "developer")
    key = alice.keys.create(PROJECT, role="developer")
    bot = platform(api_key=key.secret)
    bot.projects.get(PROJECT)
    admin.projects.remove_member(PROJECT, "alice")
    with pytest.raises(AuthenticationError, match="revoked"):
        bot.projects.get(PROJECT)
    [event] = admin.audit.list(PROJECT, action="member.remove")
    assert event.details["keys_revoked"] == 1
    admin.projects.add_member(PROJECT, "alice", role="owner")  # back again: the key stays dead
    with pytest.raises(AuthenticationError, match="revoked"):
        bot.projects.get(PROJECT)


# ------------------------------------------------------------------ expiry


def test_expired_key_is_refused(platform, admin):
    key = admin.keys.create(PROJECT, role="developer", expires_in="30d")
    bot = platform(api_key=key.secret)
    bot.projects.get(PROJECT)
    with admin.store.session() as s:
        s.execute(
            update(t.ApiKey)
            .where(t.ApiKey.id == key.id)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    with pytest.raises(AuthenticationError, match=f"{key.prefix}_… expired at"):
        bot.projects.get(PROJECT)
    [listed] = admin.keys.list(PROJECT)
    assert listed.status == "expired"


# ------------------------------------------------------------------ service accounts


def test_service_account_key(platform, admin):
    admin.projects.add_member(PROJECT, "ci-bot", role="developer", service=True)
    key = admin.keys.create(PROJECT, role="developer", service_account="ci-bot", name="ci")
    assert key.owner == "ci-bot" and key.created_by == "user:admin"
    principal = admin.keys.verify(key.secret)
    assert (principal.kind, principal.name) == ("service", "ci-bot")
    bot = platform(api_key=key.secret)
    bot.registry.models.register(PROJECT, "m", source="org/m", license="mit")
    with pytest.raises(Forbidden, match="service:ci-bot via key"):
        bot.registry.deployments.create(PROJECT, "chat", model="model:m")
    with pytest.raises(Forbidden, match="at most role developer"):
        admin.keys.create(PROJECT, role="maintainer", service_account="ci-bot")
    with pytest.raises(NotFoundError, match="service account 'nobody' not found"):
        admin.keys.create(PROJECT, role="viewer", service_account="nobody")
    admin.projects.remove_member(PROJECT, "ci-bot", service=True)
    with pytest.raises(AuthenticationError):
        bot.projects.get(PROJECT)


def test_service_account_keys_need_member_manage_and_the_callers_role(platform, admin):
    admin.projects.add_member(PROJECT, "ops-bot", role="owner", service=True)
    dev = member(platform, admin, "dev", "developer")
    with pytest.raises(Forbidden, match="member:manage"):
        dev.keys.create(PROJECT, role="viewer", service_account="ops-bot")
    mia = member(platform, admin, "mia", "maintainer")
    with pytest.raises(Forbidden, match="at most role maintainer"):  # no grant above her own
        mia.keys.create(PROJECT, role="owner", service_account="ops-bot")
    assert mia.keys.create(PROJECT, role="maintainer", service_account="ops-bot").owner == "ops-bot"


# ------------------------------------------------------------------ audit


def test_create_and_revoke_are_audited(platform, admin):
    dev = member(platform, admin, "dev", "developer")
    key = dev.keys.create(PROJECT, role="viewer")
    admin.keys.revoke(PROJECT, key.prefix)
    [created] = admin.audit.list(PROJECT, action="key.create")
    assert (created.actor, created.resource) == ("user:dev", f"key:{key.prefix}")
    assert created.details == {"role": "viewer", "owner": "dev"}
    [revoked] = admin.audit.list(PROJECT, action="key.revoke")
    assert (revoked.actor, revoked.resource, revoked.project) == (
        "user:admin",
        f"key:{key.prefix}",
        PROJECT,
    )
    with admin.store.session() as s:
        details = s.scalars(select(t.AuditEvent.details)).all()
    assert key.secret.split("_", 2)[2] not in repr(details)


# ------------------------------------------------------------------ parse_duration


@pytest.mark.parametrize(
    ("text_", "expected"),
    [
        ("90d", timedelta(days=90)),
        ("12h", timedelta(hours=12)),
        ("30m", timedelta(minutes=30)),
        ("45s", timedelta(seconds=45)),
        ("2w", timedelta(weeks=2)),
        (" 5D ", timedelta(days=5)),
        ("1 h", timedelta(hours=1)),
    ],
)
def test_parse_duration(text_, expected):
    assert parse_duration(text_) == expected


@pytest.mark.parametrize("text_", ["", "0d", "-1d", "1y", "d", "10", "1.5h", "1h30m", "ten days"])
def test_parse_duration_rejects(text_):
    with pytest.raises(ValidationError, match="invalid duration") as info:
        parse_duration(text_)
    assert info.value.field == "expires_in"


def test_a_key_revokes_itself_but_not_its_owners_other_keys(platform, admin):
    strong = admin.keys.create(PROJECT, role="owner", name="strong")
    weak = admin.keys.create(PROJECT, role="viewer", name="weak")
    as_weak = platform(api_key=weak.secret)
    with pytest.raises(Forbidden, match="key:revoke"):
        as_weak.keys.revoke(PROJECT, strong.prefix)
    assert admin.keys.verify(strong.secret).key_id == strong.id
    as_weak.keys.revoke(PROJECT, weak.prefix)
    with pytest.raises(AuthenticationError, match="revoked"):
        admin.keys.verify(weak.secret)


def test_errors_never_repeat_a_whole_key(admin):
    other = admin.keys.create(PROJECT, role="viewer")
    admin.keys.revoke(PROJECT, other.prefix)
    # a well-formed key that belongs to no key of this project
    body = other.secret.split("_", 2)[2]  # gk_<prefix>_<body>: the body may hold "_" too
    stranger = "gk_" + "z" * 10 + "_" + body
    with pytest.raises(NotFoundError) as caught:
        admin.keys.revoke(PROJECT, stranger)
    assert body not in str(caught.value)
    assert "gk_zzzzzzzzzz" in str(caught.value)
    with pytest.raises(ValidationError) as bad:
        admin.keys.revoke(PROJECT, "not-a-key-" + "s" * 40)
    assert "s" * 30 not in str(bad.value)
