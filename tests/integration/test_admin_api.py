"""The admin API under ``/api``, through a real gateway on a loopback port: every route, the
roles, isolation between projects, the operator token and the OpenAPI schema."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
from _admin_world import OPERATOR, World, spec_for

from apps.admin import mount_admin

# ------------------------------------------------------------------ every route


def test_an_owner_key_manages_its_project(
    admin_world: World, fake_upstream: str, wait_until: Callable[..., bool]
) -> None:
    w, key = admin_world, admin_world.owner
    assert w.call("GET", "/api/projects/shop", key).json()["name"] == "shop"
    assert [p["name"] for p in w.call("GET", "/api/projects", key).json()] == ["shop"]

    added = w.call("POST", "/api/projects/shop/members", key, {"name": "bob", "role": "viewer"})
    assert added.status_code == 200 and added.json()["role"] == "viewer"
    members = w.call("GET", "/api/projects/shop/members", key).json()
    assert {(m["name"], m["role"]) for m in members} == {("admin", "owner"), ("bob", "viewer")}
    assert w.call("DELETE", "/api/projects/shop/members/bob", key).status_code == 204
    assert len(w.call("GET", "/api/projects/shop/members", key).json()) == 1

    created = w.call("POST", "/api/projects/shop/keys", key, {"role": "developer", "name": "ci"})
    assert created.status_code == 201
    new = created.json()
    assert new["secret"].startswith(new["prefix"] + "_") and new["role"] == "developer"
    listed = w.call("GET", "/api/projects/shop/keys", key).json()
    assert new["prefix"] in {k["prefix"] for k in listed}
    assert all("secret" not in k for k in listed)  # shown once
    revoked = w.call("DELETE", f"/api/projects/shop/keys/{new['prefix']}", key).json()
    assert revoked["revoked_at"] is not None
    active = w.call("GET", "/api/projects/shop/keys", key).json()
    assert new["prefix"] not in {k["prefix"] for k in active}
    everything = w.call("GET", "/api/projects/shop/keys", key, include_revoked="true").json()
    assert new["prefix"] in {k["prefix"] for k in everything}

    limits = w.call("PATCH", "/api/projects/shop/quota", key, {"tokens_per_day": 5000}).json()
    assert limits["tokens_per_day"] == 5000 and limits["requests_per_minute"] is None
    cleared = w.call("PATCH", "/api/projects/shop/quota", key, {"tokens_per_day": None}).json()
    assert cleared["tokens_per_day"] is None
    status = w.call("GET", "/api/projects/shop/quota", key).json()
    assert status["limits"]["tokens_per_day"] is None and "tokens_today" in status

    applied = w.apply(key, spec_for(fake_upstream))
    assert applied.status_code == 201 and applied.json()["version"] == 1
    assert w.chat(key).json()["choices"][0]["message"]["content"] == "the answer is forty two"

    def usage() -> Any:
        return w.call("GET", "/api/projects/shop/usage", key, group_by="model").json()

    assert wait_until(lambda: usage()["total"]["requests"] == 1)  # the ledger writes behind
    assert [(r["model"], r["requests"]) for r in usage()["rows"]] == [("chat", 1)]
    audit = w.call("GET", "/api/projects/shop/audit", key).json()
    actions = [e["action"] for e in audit]
    for expected in ("deployment.register", "quota.set", "key.revoke", "key.create"):
        assert expected in actions
    assert all("via key gk_" in e["actor"] for e in audit if e["action"] == "quota.set")


def test_deployments_apply_show_and_traffic(admin_world: World, fake_upstream: str) -> None:
    w, key, base = admin_world, admin_world.owner, "/api/projects/shop/deployments"
    spec = {
        "targets": [
            {"name": "stable", "url": fake_upstream, "model": "tiny", "weight": 90},
            {"name": "canary", "url": fake_upstream, "model": "tiny", "weight": 10},
        ],
        "fallbacks": [{"name": "spare", "url": fake_upstream, "model": "tiny"}],
    }
    w.call("POST", f"{base}/chat/revisions", key, {"spec": spec, "description": "first"})
    moved = w.call(
        "POST", f"{base}/chat/traffic", key, {"weights": {"stable": 50, "canary": 50}}
    ).json()
    assert moved["version"] == 2 and "weights stable=50, canary=50" in moved["description"]
    assert [t["weight"] for t in moved["spec"]["targets"]] == [50, 50]
    shadowed = w.call(
        "POST", f"{base}/chat/traffic", key, {"shadow": "canary", "shadow_sample": 0.25}
    ).json()["spec"]
    assert [t["name"] for t in shadowed["targets"]] == ["stable"]
    assert shadowed["shadow"]["target"]["name"] == "canary" and shadowed["shadow"]["sample"] == 0.25
    ab = w.call(
        "POST", f"{base}/chat/traffic", key, {"policy": "ab", "sticky_header": "x-genai-team"}
    ).json()["spec"]
    assert ab["policy"] == "ab" and ab["sticky_header"] == "x-genai-team" and ab["shadow"]
    dropped = w.call("POST", f"{base}/chat/traffic", key, {"shadow": None}).json()
    assert "shadow" not in dropped["spec"] and dropped["version"] == 5

    newest = w.call("GET", f"{base}/chat", key).json()
    assert newest["version"] == 5 and newest["spec"]["fallbacks"][0]["name"] == "spare"
    assert w.call("GET", f"{base}/chat", key, revision=1).json()["description"] == "first"
    assert [r["version"] for r in w.call("GET", f"{base}/chat/revisions", key).json()] == [
        5,
        4,
        3,
        2,
        1,
    ]
    assert [d["name"] for d in w.call("GET", base, key).json()] == ["chat"]

    unknown = w.call("POST", f"{base}/chat/traffic", key, {"weights": {"ghost": 1}})
    assert unknown.status_code == 400 and "no target named 'ghost'" in unknown.text
    assert unknown.json()["error"]["param"] == "weights"
    nothing = w.call("POST", f"{base}/chat/traffic", key, {})
    assert nothing.status_code == 400 and "nothing to change" in nothing.text
    missing = w.call("GET", f"{base}/ghost", key)
    assert missing.status_code == 404


def test_a_bad_spec_is_400_naming_the_field(admin_world: World) -> None:
    bad = {"targets": [{"name": "x", "url": "ftp://nowhere", "model": "m"}]}
    answer = admin_world.call(
        "POST", "/api/projects/shop/deployments/chat/revisions", admin_world.owner, {"spec": bad}
    )
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["param"] == "targets.0" and "is not an http(s) URL" in error["message"]
    assert error["type"] == "invalid_request_error"
    typo = admin_world.call("PATCH", "/api/projects/shop/quota", admin_world.owner, {"rpm": 5})
    assert typo.status_code == 400 and typo.json()["error"]["param"] == "rpm"
    assert admin_world.call("GET", "/api/projects/shop/deployments", admin_world.owner).json() == []


# ------------------------------------------------------------------ roles


def test_a_viewer_key_reads_but_cannot_create_keys_or_deploy(
    admin_world: World, fake_upstream: str
) -> None:
    w, viewer = admin_world, admin_world.viewer
    assert w.call("GET", "/api/projects/shop/deployments", viewer).status_code == 200
    assert w.call("GET", "/api/projects/shop/members", viewer).status_code == 200
    refused = [
        w.call("POST", "/api/projects/shop/keys", viewer, {"role": "viewer"}),
        w.apply(viewer, spec_for(fake_upstream)),
        # refused for the role before the (bad) spec is even read
        w.apply(viewer, {}),
        w.call("POST", "/api/projects/shop/deployments/chat/traffic", viewer, {"policy": "ab"}),
        w.call("PATCH", "/api/projects/shop/quota", viewer, {"requests_per_minute": 1}),
        w.call("GET", "/api/projects/shop/audit", viewer),
    ]
    for answer in refused:
        assert answer.status_code == 403, answer.text
        assert answer.json()["error"]["code"] == "forbidden"
        assert "role viewer" in answer.json()["error"]["message"]
    assert len(admin_world.admin.keys.list("shop")) == 2  # nothing was created
    assert admin_world.admin.registry.deployments.list("shop") == []


def _project_routes(upstream: str) -> list[tuple[str, str, Any]]:
    """Every /api route of a project, with a body that would be valid."""
    p, d = "/api/projects/{p}", "/api/projects/{p}/deployments"
    return [
        ("GET", p, None),
        ("DELETE", p, None),
        ("GET", p + "/members", None),
        ("POST", p + "/members", {"name": "eve", "role": "viewer"}),
        ("DELETE", p + "/members/{name}", None),
        ("GET", p + "/keys", None),
        ("POST", p + "/keys", {"role": "viewer"}),
        ("DELETE", p + "/keys/{key}", None),
        ("GET", p + "/quota", None),
        ("PATCH", p + "/quota", {"requests_per_minute": 1}),
        ("GET", p + "/usage", None),
        ("GET", p + "/audit", None),
        ("GET", d, None),
        ("GET", d + "/{name}", None),
        ("GET", d + "/{name}/revisions", None),
        ("POST", d + "/{name}/revisions", {"spec": spec_for(upstream)}),
        ("POST", d + "/{name}/traffic", {"weights": {"stable": 1}}),
        ("GET", p + "/secrets", None),
        ("PUT", p + "/secrets/{name}", {"value": "sk-probe"}),
        ("DELETE", p + "/secrets/{name}", None),
        ("GET", p + "/agent-approvals", None),
        ("POST", p + "/agent-approvals/{run_id}/{call_id}", {"decision": "approve"}),
    ]


def test_another_projects_routes_are_404_as_if_it_did_not_exist(
    admin_world: World, fake_upstream: str
) -> None:
    w = admin_world
    w.apply(w.owner, spec_for(fake_upstream))
    prefix = w.admin.keys.list("shop")[0].prefix
    routes = _project_routes(fake_upstream)
    documented = {
        (method.upper(), path.replace("{project}", "{p}"))
        for path, ops in w.call("GET", "/openapi.json", None).json()["paths"].items()
        if path.startswith("/api/projects/{project}")
        for method in ops
    }
    assert documented == {(m, path) for m, path, _ in routes}  # a new route must be probed here
    for method, template, body in routes:
        path = template.format(p="{p}", name="chat", key=prefix, run_id="run_x", call_id="c1")
        probe = w.call(method, path.replace("{p}", "shop"), w.outsider, body)
        ghost = w.call(method, path.replace("{p}", "ghost"), w.outsider, body)
        assert probe.status_code == ghost.status_code == 404, (method, path, probe.text)
        assert probe.json() == {
            "error": {
                "message": "project 'shop' not found",
                "type": "invalid_request_error",
                "param": None,
                "code": "not_found",
            }
        }
        assert ghost.text.replace("ghost", "shop") == probe.text
    invalid = w.call("POST", "/api/projects/shop/keys", w.outsider, {"role": "boss"})
    assert invalid.status_code == 404  # the project is checked before the body
    # and nothing of shop changed
    assert w.admin.projects.get("shop").members == 1
    assert len(w.admin.keys.list("shop")) == 2
    assert [d.version for d in w.admin.registry.deployments.list("shop")] == [1]
    assert w.admin.quotas.get("shop").limits.requests_per_minute is None


def test_credentials_are_required_and_checked(admin_world: World) -> None:
    none = admin_world.call("GET", "/api/projects/shop", None)
    assert none.status_code == 401 and "Authorization: Bearer" in none.json()["error"]["message"]
    garbage = admin_world.call("GET", "/api/projects/shop", "not-a-key")
    assert garbage.status_code == 401 and garbage.json()["error"]["code"] == "invalid_api_key"
    nowhere = admin_world.call("GET", "/api/nowhere", admin_world.owner)
    assert nowhere.status_code == 404 and nowhere.json()["error"]["code"] == "not_found"
    wrong_method = admin_world.call("PUT", "/api/projects/shop", admin_world.owner)
    assert wrong_method.status_code == 405 and "/docs" in wrong_method.json()["error"]["message"]
    assert admin_world.call("GET", "/nowhere", None).json() == {"detail": "Not Found"}  # not /api
    admin_world.admin.keys.revoke("shop", admin_world.viewer)
    revoked = admin_world.call("GET", "/api/projects/shop", admin_world.viewer)
    assert revoked.status_code == 401 and "was revoked" in revoked.text


# ------------------------------------------------------------------ the operator


def test_the_operator_token_spans_the_platform(admin_world: World) -> None:
    w = admin_world
    created = w.call("POST", "/api/projects", OPERATOR, {"name": "lab", "description": "R&D"})
    assert created.status_code == 201 and created.json()["name"] == "lab"
    assert w.admin.projects.get("lab").created_by == "admin"  # acts as the platform admin
    names = [p["name"] for p in w.call("GET", "/api/projects", OPERATOR).json()]
    assert names == ["bank", "lab", "shop"]
    assert w.call("GET", "/api/projects/bank/keys", OPERATOR).status_code == 200
    whole = w.call("GET", "/api/audit", OPERATOR, action="project.create").json()
    assert {e["project"] for e in whole} == {"bank", "lab", "shop"}
    report = w.call("GET", "/api/usage", OPERATOR, group_by="project").json()
    assert report["group_by"] == ["project"]

    as_key = w.call("POST", "/api/projects", w.owner, {"name": "sneaky"})
    assert as_key.status_code == 403 and "operator token" in as_key.json()["error"]["message"]
    assert w.call("GET", "/api/audit", w.owner).status_code == 403
    wrong = w.call("POST", "/api/projects", "wrong-token", {"name": "sneaky"})
    assert wrong.status_code == 401
    assert "sneaky" not in [p.name for p in w.admin.projects.list()]
    duplicate = w.call("POST", "/api/projects", OPERATOR, {"name": "shop"})
    assert duplicate.status_code == 409


def test_platform_operations_are_off_without_a_token(
    platform: Callable[..., Any], settings: Any, gateway_server: Any
) -> None:
    admin = platform()
    admin.projects.create("shop")
    key = admin.keys.create("shop", role="owner").secret
    live = gateway_server(settings, admin=mount_admin)
    headers = {"authorization": f"Bearer {key}"}
    for method, path in (("POST", "/api/projects"), ("GET", "/api/audit")):
        answer = httpx.request(method, live.url + path, headers=headers, json={"name": "x"})
        assert answer.status_code == 403
        assert "set GENAI_ADMIN_TOKEN" in answer.json()["error"]["message"]
    mine = httpx.get(live.url + "/api/projects", headers=headers).json()
    assert [p["name"] for p in mine] == ["shop"]  # a key still lists its own project


def test_openapi_documents_the_admin_api(admin_world: World) -> None:
    schema = admin_world.call("GET", "/openapi.json", None).json()
    paths = schema["paths"]
    expected = {
        "/api/projects": {"get", "post"},
        "/api/projects/{project}": {"get", "delete"},
        "/api/projects/{project}/members": {"get", "post"},
        "/api/projects/{project}/members/{name}": {"delete"},
        "/api/projects/{project}/keys": {"get", "post"},
        "/api/projects/{project}/keys/{key}": {"delete"},
        "/api/projects/{project}/quota": {"get", "patch"},
        "/api/projects/{project}/deployments": {"get"},
        "/api/projects/{project}/deployments/{name}": {"get"},
        "/api/projects/{project}/deployments/{name}/revisions": {"get", "post"},
        "/api/projects/{project}/deployments/{name}/traffic": {"post"},
        "/api/projects/{project}/usage": {"get"},
        "/api/projects/{project}/audit": {"get"},
        "/api/usage": {"get"},
        "/api/audit": {"get"},
    }
    for path, methods in expected.items():
        assert set(paths[path]) == methods, path
    components = schema["components"]["schemas"]
    for model in ("ProjectInfo", "CreatedKey", "QuotaStatus", "DeploymentRevision", "UsageReport"):
        assert model in components
    assert "secret" in components["CreatedKey"]["properties"]
    assert set(components["TrafficChange"]["properties"]) == {
        "weights",
        "policy",
        "sticky_header",
        "shadow",
        "shadow_sample",
    }
    assert schema["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    create = paths["/api/projects/{project}/keys"]["post"]
    assert create["responses"]["201"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/CreatedKey"
    }
