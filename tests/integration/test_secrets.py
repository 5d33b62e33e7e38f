"""Project secrets and upstream keys, end to end on SQLite and PostgreSQL: the real gateway
with the admin API, real loopback upstreams that record every request, and the store.

The hole this closes: a deployment target could name any variable of the gateway's
environment as ``api_key_env``, and the gateway sent its value to the target's URL — a
maintainer of one project could receive the operator token. Now a target names a secret of
its own project (``api_key_secret``), or a variable the operator allowed; anything else is
refused at apply time and again per request, before anything is sent, in the same words
whether or not the variable exists.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import select

from apps.admin import mount_admin
from genai.errors import ConfigError, NotFoundError, ValidationError
from genai.gateway import GatewayOptions
from genai.store import schema as t
from genai.tenancy import read_secret, secret_sealer
from genai.testing import FakeOpenAIServer, running_server

OPERATOR = "operator-secret-token-0123456789"
VALUE = "sk-live-4f1d9c2b7e0a"  # a vendor key of project shop


@pytest.fixture
def listener() -> Iterator[FakeOpenAIServer]:
    """An OpenAI-compatible upstream on loopback that records every request it gets."""
    fake = FakeOpenAIServer(base_model="m")
    with running_server(fake.app) as base:
        fake.url = base + "/v1"
        yield fake


@dataclass
class World:
    url: str
    gateway: Any
    admin: Any  # the platform admin's client
    keys: dict[str, str]  # "shop:maintainer", "shop:developer", "shop:viewer", "bank:maintainer"

    def call(self, method: str, path: str, key: str, body: Any = None) -> httpx.Response:
        headers = {"authorization": f"Bearer {key}"}
        return httpx.request(method, self.url + path, headers=headers, json=body, timeout=30)

    def apply(self, who: str, name: str, spec: dict[str, Any]) -> httpx.Response:
        project = who.split(":", maxsplit=1)[0]
        path = f"/api/projects/{project}/deployments/{name}/revisions"
        return self.call("POST", path, self.keys[who], {"spec": spec})

    def put_secret(self, who: str, name: str, value: str) -> httpx.Response:
        project = who.split(":", maxsplit=1)[0]
        path = f"/api/projects/{project}/secrets/{name}"
        return self.call("PUT", path, self.keys[who], {"value": value})

    def chat(self, who: str, model: str, *, stream: bool = False) -> httpx.Response:
        body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": stream}
        return self.call("POST", "/v1/chat/completions", self.keys[who], body)


def make_world(
    platform: Callable[..., Any], settings: Any, gateway_server: Any, allow: tuple[str, ...] = ()
) -> World:
    admin = platform()
    keys = {}
    for project in ("shop", "bank"):
        admin.projects.create(project)
    for role in ("maintainer", "developer", "viewer"):
        keys[f"shop:{role}"] = admin.keys.create("shop", role=role, name=role).secret
    keys["bank:maintainer"] = admin.keys.create("bank", role="maintainer", name="m").secret
    served = settings.model_copy(
        update={"admin_token": SecretStr(OPERATOR), "secret_env_allowlist": list(allow)}
    )
    options = GatewayOptions(
        ledger_interval_s=0.02, secrets=secret_sealer(served), secret_env_allowlist=allow
    )
    assert options.key_cache_ttl_s >= 5  # a rotation must apply through invalidation
    live = gateway_server(served, admin=mount_admin, options=options)
    return World(live.url, live.gateway, admin, keys)


@pytest.fixture
def world(platform: Callable[..., Any], settings: Any, gateway_server: Any) -> World:
    return make_world(platform, settings, gateway_server)


def target(url: str, **key: str) -> dict[str, Any]:
    return {"name": "t", "url": url, "model": "m", **key}


def spec_of(url: str, **key: str) -> dict[str, Any]:
    return {"targets": [target(url, **key)], "retries": 0}


# ------------------------------------------------------------------ the exfiltration repro


def test_a_maintainer_cannot_send_the_operator_token_to_its_own_listener(
    world: World, listener: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GENAI_ADMIN_TOKEN", OPERATOR)  # as the gateway's operator runs it
    spec = spec_of(listener.url, api_key_env="GENAI_ADMIN_TOKEN")

    refused = world.apply("bank:maintainer", "x", spec)
    assert refused.status_code == 400, refused.text
    message = refused.json()["error"]["message"]
    assert "environment variable GENAI_ADMIN_TOKEN" in message
    assert "GENAI_SECRET_ENV_ALLOWLIST" in message
    assert "`genai secret set genai-admin-token --project bank`" in message
    assert "PUT /api/projects/bank/secrets/genai-admin-token" in message
    assert "`api_key_secret: genai-admin-token`" in message
    assert OPERATOR not in refused.text

    # a spec stored before this fix (or through the registry, which does not check specs)
    world.admin.registry.deployments.create("bank", "x", spec=spec)
    for stream in (False, True):
        answer = world.chat("bank:maintainer", "x", stream=stream)
        assert answer.status_code == 502, answer.text
        error = answer.json()["error"]
        assert "not allowed (GENAI_SECRET_ENV_ALLOWLIST)" in error["message"]
        assert "api_key_secret: genai-admin-token" in error["message"]
        assert OPERATOR not in answer.text
    assert listener.requests == []  # nothing reached the listener, not even a connection


def test_a_shadow_target_cannot_send_the_operator_token_either(
    world: World,
    listener: FakeOpenAIServer,
    monkeypatch: pytest.MonkeyPatch,
    wait_until: Callable[..., bool],
) -> None:
    monkeypatch.setenv("GENAI_ADMIN_TOKEN", OPERATOR)
    with running_server(FakeOpenAIServer(base_model="m").app) as live:
        shadow = {**target(listener.url, api_key_env="GENAI_ADMIN_TOKEN"), "name": "s"}
        spec = {"targets": [target(live + "/v1")], "shadow": {"target": shadow, "sample": 1.0}}
        assert world.apply("bank:maintainer", "x", spec).status_code == 400
        world.admin.registry.deployments.create("bank", "x", spec=spec)
        answer = world.chat("bank:maintainer", "x")
        assert answer.status_code == 200, answer.text

        def shadow_statuses() -> list[str]:
            with world.admin.store.session() as s:
                return list(s.scalars(select(t.ShadowResult.status)).all())

        assert wait_until(lambda: shadow_statuses() != [], timeout=10)
    assert shadow_statuses()[0].startswith("error")
    assert OPERATOR not in shadow_statuses()[0]
    assert listener.requests == []


def _normalized(response: httpx.Response, *names: str) -> tuple[int, str]:
    text = response.text
    for name in names:
        text = text.replace(name, "NAME")
    return response.status_code, text


def test_refusals_do_not_tell_whether_a_variable_exists(
    world: World, listener: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GENAI_ADMIN_TOKEM", "set")  # exists; GENAI_ADMIN_TOKEX does not
    assert "GENAI_ADMIN_TOKEX" not in os.environ
    variables = ("GENAI_ADMIN_TOKEM", "GENAI_ADMIN_TOKEX")
    applied = {}
    for n, variable in enumerate(variables):  # stored before the first call caches the routes
        spec = spec_of(listener.url, api_key_env=variable)
        applied[variable] = world.apply("bank:maintainer", f"x{n}", spec)
        world.admin.registry.deployments.create("bank", f"x{n}", spec=spec)
    seen = {}
    for n, variable in enumerate(variables):
        called = world.chat("bank:maintainer", f"x{n}")
        names = (variable, variable.lower().replace("_", "-"))
        seen[variable] = (_normalized(applied[variable], *names), _normalized(called, *names))
    assert seen["GENAI_ADMIN_TOKEM"] == seen["GENAI_ADMIN_TOKEX"]
    (apply_status, _), (call_status, _) = seen["GENAI_ADMIN_TOKEX"]
    assert (apply_status, call_status) == (400, 502)
    assert listener.requests == []


# ------------------------------------------------------------------ what works


def test_an_allowlisted_variable_is_sent(
    platform: Callable[..., Any],
    settings: Any,
    gateway_server: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("VENDOR_KEY", "sk-operator-vendor")
    world = make_world(platform, settings, gateway_server, allow=("VENDOR_KEY", "UNSET_KEY"))
    fake = FakeOpenAIServer(base_model="m", api_key="sk-operator-vendor")  # 401 otherwise
    with running_server(fake.app) as base:
        applied = world.apply(
            "shop:maintainer", "v", spec_of(base + "/v1", api_key_env="VENDOR_KEY")
        )
        assert applied.status_code == 201, applied.text
        answer = world.chat("shop:developer", "v")
        assert answer.status_code == 200, answer.text
        assert fake.requests[-1].headers["authorization"] == "Bearer sk-operator-vendor"

        unset = spec_of(base + "/v1", api_key_env="UNSET_KEY")
        assert world.apply("shop:maintainer", "u", unset).status_code == 201  # allowed
        answer = world.chat("shop:developer", "u")
        assert answer.status_code == 502
        assert "allowed but did not set" in answer.json()["error"]["message"]
        assert len(fake.requests) == 1


def test_a_project_secret_is_sent_and_a_rotation_applies_at_once(
    world: World, listener: FakeOpenAIServer
) -> None:
    refused = world.apply("shop:maintainer", "v", spec_of(listener.url, api_key_secret="vendor"))
    assert refused.status_code == 400
    assert "`genai secret set vendor --project shop`" in refused.json()["error"]["message"]

    put = world.put_secret("shop:maintainer", "vendor", VALUE)
    assert put.status_code == 200, put.text
    assert set(put.json()) == {
        "name",
        "project",
        "created_at",
        "created_by",
        "updated_at",
        "updated_by",
    }
    applied = world.apply("shop:maintainer", "v", spec_of(listener.url, api_key_secret="vendor"))
    assert applied.status_code == 201, applied.text
    assert world.chat("shop:developer", "v").status_code == 200
    assert world.chat("shop:developer", "v", stream=True).status_code == 200
    assert [r.headers["authorization"] for r in listener.requests] == [f"Bearer {VALUE}"] * 2

    assert world.put_secret("shop:maintainer", "vendor", "sk-rotated").status_code == 200
    assert world.chat("shop:developer", "v").status_code == 200
    assert listener.requests[-1].headers["authorization"] == "Bearer sk-rotated"

    gone = world.call("DELETE", "/api/projects/shop/secrets/vendor", world.keys["shop:maintainer"])
    assert gone.status_code == 204
    answer = world.chat("shop:developer", "v")
    assert answer.status_code == 502
    message = answer.json()["error"]["message"]
    assert "'vendor', which is not set in project 'shop'" in message
    assert "genai secret set vendor --project shop" in message
    assert len(listener.requests) == 3


def test_another_projects_secret_is_the_same_as_a_missing_one(
    world: World, listener: FakeOpenAIServer
) -> None:
    assert world.put_secret("shop:maintainer", "vendor", VALUE).status_code == 200
    names = ("vendor", "absent")  # shop has "vendor"; bank has neither
    applied = {}
    for name in names:
        spec = spec_of(listener.url, api_key_secret=name)
        applied[name] = world.apply("bank:maintainer", name, spec)
        world.admin.registry.deployments.create("bank", name, spec=spec)
    seen = {}
    for name in names:
        called = world.chat("bank:maintainer", name)
        seen[name] = (_normalized(applied[name], name), _normalized(called, name))
    assert seen["vendor"] == seen["absent"]
    assert seen["vendor"][0][0] == 400 and seen["vendor"][1][0] == 502
    assert "shop" not in json.dumps(seen)
    assert listener.requests == []


# ------------------------------------------------------------------ values never come back


def test_values_never_come_back(
    world: World, listener: FakeOpenAIServer, caplog: pytest.LogCaptureFixture
) -> None:
    texts = []
    with caplog.at_level(logging.DEBUG):
        texts.append(world.put_secret("shop:maintainer", "vendor", VALUE).text)
        texts.append(world.put_secret("shop:maintainer", "other", "sk-second-value").text)
        applied = world.apply(
            "shop:maintainer", "v", spec_of(listener.url, api_key_secret="vendor")
        )
        texts.append(applied.text)
        texts.append(world.chat("shop:developer", "v").text)
        for who in ("shop:viewer", "shop:maintainer"):
            listed = world.call("GET", "/api/projects/shop/secrets", world.keys[who])
            assert listed.status_code == 200
            assert [s["name"] for s in listed.json()] == ["other", "vendor"]
            texts.append(listed.text)
        texts.append(
            world.call("GET", "/api/projects/shop/deployments/v", world.keys["shop:viewer"]).text
        )
    texts.append(caplog.text)
    texts.append(json.dumps([e.model_dump(mode="json") for e in world.admin.audit.list("shop")]))
    texts.append(json.dumps([s.model_dump(mode="json") for s in world.admin.secrets.list("shop")]))
    for text in texts:
        assert VALUE not in text and "sk-second-value" not in text
    actions = [e.action for e in world.admin.audit.list("shop", action="secret.set")]
    assert actions == ["secret.set", "secret.set"]
    assert listener.requests[-1].headers["authorization"] == f"Bearer {VALUE}"  # but it works

    with world.admin.store.session() as s:
        row = s.scalars(select(t.ProjectSecret).where(t.ProjectSecret.name == "vendor")).one()
        stored = " ".join(str(getattr(row, c.name)) for c in t.ProjectSecret.__table__.columns)
        audit = json.dumps([e.details for e in s.scalars(select(t.AuditEvent))])
    assert VALUE not in stored and VALUE.encode() not in base64.b64decode(row.ciphertext)
    assert VALUE not in audit


# ------------------------------------------------------------------ who may do what


def test_roles_and_other_projects(world: World) -> None:
    dev, viewer = world.keys["shop:developer"], world.keys["shop:viewer"]
    outsider = world.keys["bank:maintainer"]
    for key in (dev, viewer):
        put = world.call("PUT", "/api/projects/shop/secrets/k", key, {"value": VALUE})
        assert put.status_code == 403, put.text
        assert "secret:write" in put.json()["error"]["message"]
    assert world.put_secret("shop:maintainer", "k", VALUE).status_code == 200
    assert world.call("DELETE", "/api/projects/shop/secrets/k", dev).status_code == 403
    listed = world.call("GET", "/api/projects/shop/secrets", viewer)
    assert listed.status_code == 200 and [set(s) for s in listed.json()] == [
        {"name", "project", "created_at", "created_by", "updated_at", "updated_by"}
    ]

    for method, tail, body in (
        ("GET", "", None),
        ("PUT", "/k", {"value": "sk-mine"}),
        ("DELETE", "/k", None),
    ):
        theirs = world.call(method, f"/api/projects/shop/secrets{tail}", outsider, body)
        nowhere = world.call(method, f"/api/projects/nowhere/secrets{tail}", outsider, body)
        assert theirs.status_code == nowhere.status_code == 404
        assert theirs.text.replace("shop", "P") == nowhere.text.replace("nowhere", "P")
    assert [s.name for s in world.admin.secrets.list("shop")] == ["k"]

    bad = world.call(
        "PUT", "/api/projects/shop/secrets/k", world.keys["shop:maintainer"], {"value": "a\nb"}
    )
    assert bad.status_code == 400 and "one line" in bad.json()["error"]["message"]
    missing = world.call("DELETE", "/api/projects/shop/secrets/none", world.keys["shop:maintainer"])
    assert missing.status_code == 404


# ------------------------------------------------------------------ the service and its key


def test_the_python_api_checks_names_and_values_without_echoing_them(platform: Any) -> None:
    admin = platform()
    admin.projects.create("shop")
    long = "k" * 8193
    for value, words in (
        ("", "must not be empty"),
        ("sk-abc\n", "one line"),
        ("sk-\x00abc", "one line"),
        (long, "at most 8192 bytes"),
    ):
        with pytest.raises(ValidationError, match=words) as caught:
            admin.secrets.set("shop", "k", value)
        assert (value.strip() or "<empty>") not in caught.value.message
    with pytest.raises(ValidationError, match="invalid secret name"):
        admin.secrets.set("shop", "bad name", VALUE)
    with pytest.raises(NotFoundError, match="secret 'k' not found in project 'shop'"):
        admin.secrets.delete("shop", "k")
    with pytest.raises(NotFoundError, match="project 'nowhere' not found"):
        admin.secrets.set("nowhere", "k", VALUE)

    first = admin.secrets.set("shop", "k", SecretStr(VALUE))
    second = admin.secrets.set("shop", "k", "sk-new")
    assert first.created_at == second.created_at and second.updated_by == "user:admin"
    details = [e.details for e in admin.audit.list("shop", action="secret.set")]
    assert details == [{"replaced": True}, {"replaced": False}]  # newest first
    admin.secrets.delete("shop", "k")
    assert admin.secrets.list("shop") == []
    assert [e.resource for e in admin.audit.list("shop", action="secret.delete")] == ["secret:k"]


def test_a_ciphertext_is_bound_to_its_project_and_name(platform: Any, settings: Any) -> None:
    admin = platform()
    for project in ("shop", "bank"):
        admin.projects.create(project)
    admin.secrets.set("shop", "vendor", VALUE)
    admin.secrets.set("bank", "vendor", "sk-bank")
    sealer = secret_sealer(settings)
    with admin.store.session() as s:
        rows = {r.project_id: r for r in s.scalars(select(t.ProjectSecret))}
        shop, bank = sorted(rows)
        assert read_secret(s, sealer, shop, "vendor") == VALUE
        rows[bank].ciphertext = rows[shop].ciphertext  # copied into another project's row
    with admin.store.session() as s, pytest.raises(ConfigError, match="cannot be decrypted"):
        read_secret(s, sealer, bank, "vendor")
    with admin.store.session() as s:
        assert read_secret(s, sealer, shop, "other") is None
    admin.projects.delete("shop")
    with admin.store.session() as s:  # deleted with its project
        assert [r.project_id for r in s.scalars(select(t.ProjectSecret))] == [bank]


def test_the_key_file_is_made_once_private_and_apart_from_the_dlp_key(
    settings_factory: Callable[..., Any], tmp_path: Path
) -> None:
    settings = settings_factory()
    first = secret_sealer(settings)
    path = settings.home / "secret.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not (settings.home / "dlp.key").exists()
    sealed = first.seal(VALUE, "project-secret", 1, "k")
    assert secret_sealer(settings).open(sealed, "project-secret", 1, "k") == VALUE

    configured = settings_factory(secret_key="a configured secret key, long enough")
    with pytest.raises(ConfigError, match="GENAI_SECRET_KEY"):
        secret_sealer(configured).open(sealed, "project-secret", 1, "k")
    with pytest.raises(ConfigError, match="GENAI_SECRET_KEY is too short"):
        secret_sealer(settings_factory(secret_key="short"))
    os.chmod(path, 0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        secret_sealer(settings)
