"""The role matrix through the real Python API, on SQLite and PostgreSQL: what each role may
do in its project, who may grant which role, the last owner, and API keys' capped roles."""

from collections.abc import Callable

import pytest

import genai
from genai.errors import ConflictError, Forbidden
from genai.tenancy import Role, UsageEvent

PROJECT = "matrix"
VIEWER, DEVELOPER, MAINTAINER, OWNER = "viewer", "developer", "maintainer", "owner"
EVERYONE = {VIEWER, DEVELOPER, MAINTAINER, OWNER}

# operation -> the roles that may do it; everyone else gets Forbidden. Written out in full.
ALLOWED = {
    "read project": EVERYONE,
    "list members": EVERYONE,
    "read quota": EVERYONE,
    "read usage": EVERYONE,
    "read registry": EVERYONE,
    "list keys": {DEVELOPER, MAINTAINER, OWNER},
    "create key": {DEVELOPER, MAINTAINER, OWNER},
    "record usage": {DEVELOPER, MAINTAINER, OWNER},
    "take a request slot": {DEVELOPER, MAINTAINER, OWNER},
    "register model": {DEVELOPER, MAINTAINER, OWNER},
    "set alias": {DEVELOPER, MAINTAINER, OWNER},
    "set protected alias": {MAINTAINER, OWNER},
    "create deployment": {MAINTAINER, OWNER},
    "add member": {MAINTAINER, OWNER},
    "revoke another's key": {MAINTAINER, OWNER},
    "read audit log": {MAINTAINER, OWNER},
    "set quota": {OWNER},
    "set project option": {OWNER},
    "delete project": {OWNER},  # run last
}


def operations(client: genai.Client, admin_key_prefix: str) -> dict[str, Callable[[], object]]:
    api, reg = client, client.registry
    return {
        "read project": lambda: api.projects.get(PROJECT),
        "list members": lambda: api.projects.members(PROJECT),
        "read quota": lambda: api.quotas.get(PROJECT),
        "read usage": lambda: api.usage.report(PROJECT),
        "read registry": lambda: reg.models.get(PROJECT, "base@1"),
        "list keys": lambda: api.keys.list(PROJECT),
        "create key": lambda: api.keys.create(PROJECT, role="viewer", name="mine"),
        "record usage": lambda: api.usage.record(PROJECT, UsageEvent(model="base")),
        "take a request slot": lambda: api.quotas.acquire(PROJECT),
        "register model": lambda: reg.models.register(
            PROJECT, "tuned", source="org/tuned", license="mit"
        ),
        "set alias": lambda: reg.aliases.set(PROJECT, "model:base@1", "staging"),
        "set protected alias": lambda: reg.aliases.set(PROJECT, "model:base@1", "production"),
        "create deployment": lambda: reg.deployments.create(PROJECT, "chat", model="model:base@1"),
        "add member": lambda: api.projects.add_member(PROJECT, "newbie", role="viewer"),
        "revoke another's key": lambda: api.keys.revoke(PROJECT, admin_key_prefix),
        "read audit log": lambda: api.audit.list(PROJECT),
        "set quota": lambda: api.quotas.set(PROJECT, requests_per_minute=1000),
        "set project option": lambda: api.projects.set_option(PROJECT, "prompt_logging", True),
        "delete project": lambda: api.projects.delete(PROJECT),
    }


@pytest.fixture
def admin(platform):
    client = platform()
    client.projects.create(PROJECT)
    client.registry.models.register(PROJECT, "base", source="org/base", license="apache-2.0")
    return client


@pytest.mark.parametrize("role", [VIEWER, DEVELOPER, MAINTAINER, OWNER])
def test_role_matrix(platform, admin, role):
    admin_key = admin.keys.create(PROJECT, role="owner", name="admin-key")
    admin.projects.add_member(PROJECT, "member", role=role)
    me = platform("member")
    ops = operations(me, admin_key.prefix)
    assert list(ops) == list(ALLOWED)
    mismatches = []
    for name, call in ops.items():
        audit_before = len(admin.audit.list(limit=10_000))
        try:
            call()
            outcome = "allowed"
        except Forbidden:
            outcome = "forbidden"
            if len(admin.audit.list(limit=10_000)) != audit_before:
                mismatches.append(f"{name}: refused, but an audit event was written")
        expected = "allowed" if role in ALLOWED[name] else "forbidden"
        if outcome != expected:
            mismatches.append(f"{name}: {outcome}, expected {expected}")
    assert not mismatches, f"role {role}:\n" + "\n".join(mismatches)


def test_refusal_names_the_role_and_the_role_needed(platform, admin):
    admin.projects.add_member(PROJECT, "vic", role="viewer")
    with pytest.raises(Forbidden) as info:
        platform("vic").registry.models.register(PROJECT, "x", source="org/x", license="mit")
    assert "user:vic has role viewer" in str(info.value)
    assert "needs role developer" in str(info.value)


def test_refused_change_leaves_the_state_as_it_was(platform, admin):
    admin.projects.add_member(PROJECT, "dev", role="developer")
    dev = platform("dev")
    with pytest.raises(Forbidden):
        dev.quotas.set(PROJECT, tokens_per_day=5)
    with pytest.raises(Forbidden):
        dev.registry.aliases.set(PROJECT, "model:base@1", "production")
    assert admin.quotas.get(PROJECT).limits.tokens_per_day is None
    assert admin.registry.models.get(PROJECT, "base").aliases == []


# ------------------------------------------------------------------ granting roles


def test_no_one_grants_a_role_above_their_own(platform, admin):
    admin.projects.add_member(PROJECT, "mia", role="maintainer")
    admin.projects.add_member(PROJECT, "dev", role="developer")
    mia = platform("mia")
    with pytest.raises(Forbidden, match=r"has role maintainer .* cannot grant"):
        mia.projects.add_member(PROJECT, "eve", role="owner")
    with pytest.raises(Forbidden):
        mia.projects.add_member(PROJECT, "dev", role="owner")  # promotion above her own
    with pytest.raises(Forbidden):
        mia.projects.add_member(PROJECT, "admin", role="viewer")  # demoting an owner
    with pytest.raises(Forbidden):
        mia.projects.remove_member(PROJECT, "admin")  # removing an owner
    with pytest.raises(Forbidden):  # developers manage no one
        platform("dev").projects.add_member(PROJECT, "eve", role="viewer")
    roles = {m.name: m.role for m in admin.projects.members(PROJECT)}
    assert roles == {"admin": Role.OWNER, "mia": Role.MAINTAINER, "dev": Role.DEVELOPER}


def test_maintainer_grants_up_to_maintainer_and_owner_appoints_owners(platform, admin):
    admin.projects.add_member(PROJECT, "mia", role="maintainer")
    mia = platform("mia")
    assert mia.projects.add_member(PROJECT, "dev", role="developer").role is Role.DEVELOPER
    assert mia.projects.add_member(PROJECT, "dev", role="maintainer").role is Role.MAINTAINER
    mia.projects.add_member(PROJECT, "dev", role="viewer")  # demoting a peer is within her role
    admin.projects.add_member(PROJECT, "olga", role="owner")
    olga = platform("olga")
    assert olga.projects.add_member(PROJECT, "dev", role="owner").role is Role.OWNER
    olga.projects.remove_member(PROJECT, "mia")
    assert {m.name for m in admin.projects.members(PROJECT)} == {"admin", "olga", "dev"}


def test_the_last_owner_can_be_neither_demoted_nor_removed(platform):
    admin = platform()
    admin.projects.create("seed")
    admin.projects.add_member("seed", "alice", role="viewer")  # registers alice
    alice = platform("alice")
    alice.projects.create("solo")  # self-service: alice is its only owner
    with pytest.raises(ConflictError, match="would have no owner"):
        alice.projects.add_member("solo", "alice", role="maintainer")
    with pytest.raises(ConflictError, match="would have no owner"):
        alice.projects.remove_member("solo", "alice")
    with pytest.raises(ConflictError):  # not even an admin may leave a project ownerless
        admin.projects.remove_member("solo", "alice")
    assert [(m.name, m.role) for m in alice.projects.members("solo")] == [("alice", Role.OWNER)]
    alice.projects.add_member("solo", "bob", role="owner")
    alice.projects.add_member("solo", "alice", role="developer")  # now allowed
    with pytest.raises(ConflictError):
        platform("bob").projects.remove_member("solo", "bob")


# ------------------------------------------------------------------ API keys


def test_key_acts_with_its_own_role_below_its_owners(platform, admin):
    admin.projects.add_member(PROJECT, "olga", role="owner")
    key = platform("olga").keys.create(PROJECT, role="developer")
    bot = platform(api_key=key.secret)
    assert bot.projects.get(PROJECT).role is Role.DEVELOPER
    bot.registry.models.register(PROJECT, "tuned", source="org/tuned", license="mit")
    with pytest.raises(Forbidden, match=r"via key .* has role developer"):
        bot.registry.aliases.set(PROJECT, "model:tuned@1", "production")
    with pytest.raises(Forbidden):
        bot.projects.add_member(PROJECT, "eve", role="viewer")
    with pytest.raises(Forbidden):
        bot.quotas.set(PROJECT, requests_per_minute=1)


def test_key_cannot_mint_a_key_above_its_own_role(platform, admin):
    admin.projects.add_member(PROJECT, "olga", role="owner")
    bot = platform(api_key=platform("olga").keys.create(PROJECT, role="developer").secret)
    for role in ("maintainer", "owner"):
        with pytest.raises(Forbidden, match="at most role developer"):
            bot.keys.create(PROJECT, role=role)
    assert bot.keys.create(PROJECT, role="developer").role is Role.DEVELOPER
    assert {k.role for k in admin.keys.list(PROJECT)} == {Role.DEVELOPER}


def test_key_is_capped_by_its_owners_current_membership(platform, admin):
    admin.projects.add_member(PROJECT, "olga", role="owner")
    bot = platform(api_key=platform("olga").keys.create(PROJECT, role="owner").secret)
    bot.quotas.set(PROJECT, requests_per_minute=50)  # owner through the key
    admin.projects.add_member(PROJECT, "olga", role="viewer")  # demoted a moment later
    assert bot.projects.get(PROJECT).role is Role.VIEWER
    with pytest.raises(Forbidden, match="has role viewer"):
        bot.quotas.set(PROJECT, requests_per_minute=60)
    with pytest.raises(Forbidden):
        bot.registry.models.register(PROJECT, "tuned", source="org/tuned", license="mit")
    admin.projects.add_member(PROJECT, "olga", role="maintainer")
    assert bot.projects.get(PROJECT).role is Role.MAINTAINER  # min(owner key, maintainer)
    assert admin.quotas.get(PROJECT).limits.requests_per_minute == 50


def test_promotion_does_not_raise_a_keys_role(platform, admin):
    admin.projects.add_member(PROJECT, "dev", role="developer")
    bot = platform(api_key=platform("dev").keys.create(PROJECT, role="developer").secret)
    admin.projects.add_member(PROJECT, "dev", role="owner")
    assert bot.projects.get(PROJECT).role is Role.DEVELOPER
    with pytest.raises(Forbidden):
        bot.registry.deployments.create(PROJECT, "chat", model="model:base@1")


def test_key_cannot_create_projects(platform, admin):
    bot = platform(api_key=admin.keys.create(PROJECT, role="owner").secret)
    with pytest.raises(Forbidden):
        bot.projects.create("from-a-key")
    assert [p.name for p in admin.projects.list()] == [PROJECT]


def test_project_creation_follows_self_service_setting(platform, settings, admin):
    import genai

    admin.projects.add_member(PROJECT, "alice", role="owner")
    closed = settings.model_copy(update={"self_service_projects": False})
    alice = genai.connect(closed, user="alice", store=admin.store)
    with pytest.raises(Forbidden, match="only platform admins"):
        alice.projects.create("alices")
    assert genai.connect(closed, user="admin", store=admin.store).projects.create("admins").role
    created = platform("alice").projects.create("alices")  # self-service on (the default)
    assert created.role is Role.OWNER


def test_admin_acts_in_projects_it_is_not_a_member_of(platform, admin):
    admin.projects.add_member(PROJECT, "alice", role="viewer")
    platform("alice").projects.create("alices")
    assert admin.projects.get("alices").role is None
    admin.quotas.set("alices", tokens_per_day=10)
    admin.projects.add_member("alices", "bob", role="owner")
    admin.projects.delete("alices")
    assert [p.name for p in platform("alice").projects.list()] == [PROJECT]
