"""The pure permission check: ``authorize(principal, action, resource)`` and the role table."""

import itertools

import pytest

from genai.errors import Forbidden, NotFoundError, PermissionDenied, ValidationError, http_status
from genai.tenancy import PERMISSIONS, Action, Principal, Resource, Role, authorize, parse_role

PROJECT_ID = 7
OTHER_PROJECT_ID = 8

# The whole permission table, written out: a change to PERMISSIONS must change this too.
# Columns: viewer, developer, maintainer, owner ("x" allowed, "-" refused).
EXPECTED_TABLE = """
    project:create        -  -  -  -
    project:read          x  x  x  x
    project:update        -  -  -  x
    project:delete        -  -  -  x
    member:read           x  x  x  x
    member:manage         -  -  x  x
    key:read              -  x  x  x
    key:create            -  x  x  x
    key:revoke            -  -  x  x
    quota:read            x  x  x  x
    quota:update          -  -  -  x
    usage:read            x  x  x  x
    usage:record          -  x  x  x
    audit:read            -  -  x  x
    registry:read         x  x  x  x
    registry:write        -  x  x  x
    alias:set             -  x  x  x
    alias:set-protected   -  -  x  x
    deployment:write      -  -  x  x
    kb:delete             -  -  x  x
    secret:read           x  x  x  x
    secret:write          -  -  x  x
    model:invoke          -  x  x  x
    agent:approve         -  -  x  x
"""
ROLE_COLUMNS = (Role.VIEWER, Role.DEVELOPER, Role.MAINTAINER, Role.OWNER)


def _expected() -> dict[Role, set[Action]]:
    table: dict[Role, set[Action]] = {role: set() for role in ROLE_COLUMNS}
    for line in EXPECTED_TABLE.strip().splitlines():
        action, *marks = line.split()
        assert len(marks) == len(ROLE_COLUMNS), line
        for role, mark in zip(ROLE_COLUMNS, marks, strict=True):
            if mark == "x":
                table[role].add(Action(action))
    return table


EXPECTED = _expected()
# The lowest role holding each action ("admin" where no role holds it).
NEEDED = {
    action: next((role.value for role in ROLE_COLUMNS if action in EXPECTED[role]), "admin")
    for action in Action
}


def member(role: Role, **extra) -> Principal:
    return Principal(id=1, name="alice", grants={PROJECT_ID: role}, **extra)


def in_project(kind: str = "model", name: str = "support-bot") -> Resource:
    return Resource(kind, name, PROJECT_ID)


# ------------------------------------------------------------------ the table


def test_table_lists_every_action_once():
    listed = [line.split()[0] for line in EXPECTED_TABLE.strip().splitlines()]
    assert sorted(listed) == sorted(action.value for action in Action)


@pytest.mark.parametrize("role", list(Role))
def test_permissions_equal_the_expected_table(role):
    assert set(PERMISSIONS[role]) == EXPECTED[role]


def test_every_role_holds_at_least_what_the_role_below_holds():
    ordered = sorted(Role, key=lambda r: r.rank)
    for lower, higher in itertools.pairwise(ordered):
        assert PERMISSIONS[lower] < PERMISSIONS[higher], (lower, higher)


@pytest.mark.parametrize("action", list(Action))
@pytest.mark.parametrize("role", list(Role))
def test_member_is_allowed_exactly_what_the_table_says(role, action):
    if action in EXPECTED[role]:
        authorize(member(role), action, in_project())
    else:
        with pytest.raises(Forbidden) as info:
            authorize(member(role), action, in_project())
        message = str(info.value)
        assert f"role {role.value}" in message
        assert action.value in message
        assert f"needs role {NEEDED[action]}" in message


# ------------------------------------------------------------------ refusals


def test_forbidden_message_names_role_needed_role_and_resource():
    with pytest.raises(Forbidden) as info:
        authorize(member(Role.VIEWER), Action.REGISTRY_WRITE, in_project("adapter", "faq-lora"))
    message = str(info.value)
    assert "user:alice" in message
    assert "has role viewer" in message
    assert "needs role developer or higher" in message
    assert "adapter 'faq-lora'" in message
    assert http_status(info.value) == 403


def test_forbidden_for_an_action_no_role_holds_asks_for_an_admin():
    with pytest.raises(Forbidden, match="needs role admin"):
        authorize(member(Role.OWNER), Action.PROJECT_CREATE, in_project("project", "demo"))


def test_forbidden_message_of_a_key_principal_names_the_key():
    key = member(Role.DEVELOPER, key_id=3, key_prefix="gk_abcdefghij")
    with pytest.raises(Forbidden, match=r"user:alice via key gk_abcdefghij has role developer"):
        authorize(key, Action.ALIAS_SET_PROTECTED, in_project())


@pytest.mark.parametrize("action", list(Action))
def test_non_member_gets_not_found_for_every_action(action):
    stranger = Principal(id=2, name="bob", grants={OTHER_PROJECT_ID: Role.OWNER})
    with pytest.raises(NotFoundError) as info:
        authorize(stranger, action, in_project("deployment", "chat"))
    assert not isinstance(info.value, PermissionDenied)
    # Worded exactly as a missing resource: nothing about roles, projects or permissions.
    assert str(info.value) == "deployment 'chat' not found"
    assert http_status(info.value) == 404


def test_principal_without_any_grant_gets_not_found():
    nobody = Principal(id=3, name="carol")
    with pytest.raises(NotFoundError) as info:
        authorize(nobody, Action.PROJECT_READ, Resource("project", "secret-proj", 9))
    assert str(info.value) == "project 'secret-proj' not found"


def test_grant_in_one_project_gives_nothing_in_another():
    owner_of_a = Principal(id=1, name="alice", grants={OTHER_PROJECT_ID: Role.OWNER})
    authorize(owner_of_a, Action.PROJECT_DELETE, Resource("project", "a", OTHER_PROJECT_ID))
    with pytest.raises(NotFoundError):
        authorize(owner_of_a, Action.PROJECT_READ, Resource("project", "b", PROJECT_ID))


# ------------------------------------------------------------------ admins and the platform


@pytest.mark.parametrize("action", list(Action))
def test_admin_may_do_everything_in_any_project_without_membership(action):
    admin = Principal(id=9, name="root", is_admin=True)
    authorize(admin, action, in_project())
    authorize(admin, action, Resource("platform", "", None))


def test_project_create_allowed_when_self_service_is_on():
    user = Principal(id=4, name="dave", can_create_projects=True)
    authorize(user, Action.PROJECT_CREATE, Resource("project", "new-one", None))


def test_project_create_refused_when_self_service_is_off():
    user = Principal(id=4, name="dave", grants={PROJECT_ID: Role.OWNER})
    with pytest.raises(Forbidden) as info:
        authorize(user, Action.PROJECT_CREATE, Resource("project", "new-one", None))
    assert "only platform admins" in str(info.value)
    assert "GENAI_SELF_SERVICE_PROJECTS" in str(info.value)


@pytest.mark.parametrize("action", [a for a in Action if a is not Action.PROJECT_CREATE])
def test_other_platform_level_actions_are_for_admins_only(action):
    user = Principal(id=4, name="dave", can_create_projects=True, grants={PROJECT_ID: Role.OWNER})
    with pytest.raises(Forbidden, match="only platform admins"):
        authorize(user, action, Resource("platform", "", None))


# ------------------------------------------------------------------ roles


@pytest.mark.parametrize(
    ("text", "role"),
    [
        ("viewer", Role.VIEWER),
        ("developer", Role.DEVELOPER),
        ("Maintainer", Role.MAINTAINER),
        ("OWNER", Role.OWNER),
        (Role.DEVELOPER, Role.DEVELOPER),
    ],
)
def test_parse_role_accepts_names_in_any_case_and_roles(text, role):
    assert parse_role(text) is role


@pytest.mark.parametrize("text", ["admin", "", "own", "viewer ", "superuser"])
def test_parse_role_rejects_unknown_names_listing_the_valid_ones(text):
    with pytest.raises(ValidationError) as info:
        parse_role(text)
    assert info.value.field == "role"
    assert repr(text) in str(info.value)
    assert "viewer, developer, maintainer, owner" in str(info.value)


def test_roles_are_ordered_by_rank():
    assert Role.VIEWER < Role.DEVELOPER < Role.MAINTAINER < Role.OWNER
    assert Role.OWNER > Role.MAINTAINER >= Role.MAINTAINER
    assert max(Role, key=lambda r: r.rank) is Role.OWNER
    # rank order, not alphabetical order (where "developer" < "maintainer" < "owner" < "viewer")
    assert sorted(Role) == [Role.VIEWER, Role.DEVELOPER, Role.MAINTAINER, Role.OWNER]


def test_principal_label_and_role_lookup():
    plain = member(Role.MAINTAINER)
    assert plain.label == "user:alice"
    assert plain.role_in(PROJECT_ID) is Role.MAINTAINER
    assert plain.role_in(OTHER_PROJECT_ID) is None
    service = Principal(id=5, name="ci-bot", kind="service", key_id=1, key_prefix="gk_0123456789")
    assert service.label == "service:ci-bot via key gk_0123456789"
