"""Changes made through the admin API apply to ``/v1`` of the same gateway at once (its
cached keys, quotas and routes of the project are dropped), well within the cache TTLs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from _admin_world import World, spec_for

from genai.testing import FakeOpenAIServer, running_server

# ------------------------------------------------------------------ changes apply at once


def test_a_key_revoked_through_the_api_is_refused_on_v1_at_once(admin_world: World) -> None:
    w = admin_world
    assert w.gateway.options.key_cache_ttl_s >= 5  # without invalidation it would still pass
    spare = w.admin.keys.create("shop", role="developer", name="spare").secret
    assert w.call("GET", "/v1/models", spare).status_code == 200  # now cached
    assert w.call("DELETE", f"/api/projects/shop/keys/{spare[:13]}", w.owner).status_code == 200
    refused = w.call("GET", "/v1/models", spare)
    assert refused.status_code == 401 and "was revoked" in refused.text


def test_a_member_removed_through_the_api_loses_v1_at_once(
    admin_world: World, platform: Callable[..., Any]
) -> None:
    w = admin_world
    w.admin.projects.add_member("shop", "carol", role="developer")
    key = platform("carol").keys.create("shop", role="developer").secret
    assert w.call("GET", "/v1/models", key).status_code == 200  # now cached
    assert w.call("DELETE", "/api/projects/shop/members/carol", w.owner).status_code == 204
    refused = w.call("GET", "/v1/models", key)
    assert refused.status_code == 401 and "revoked" in refused.text


def test_deployments_and_traffic_changed_through_the_api_route_at_once(
    admin_world: World, fake_upstream: str
) -> None:
    w, key = admin_world, admin_world.owner
    assert w.gateway.options.route_cache_ttl_s >= 5
    assert w.chat(key).status_code == 404  # the project's routes are cached now
    applied = w.apply(key, spec_for(fake_upstream))
    assert applied.status_code == 201
    answer = w.chat(key)
    assert answer.status_code == 200, answer.text
    with running_server(FakeOpenAIServer(base_model="tiny", reply="from the canary").app) as b:
        spec = spec_for(fake_upstream)
        spec["targets"].append({"name": "canary", "url": b + "/v1", "model": "tiny", "weight": 0})
        w.apply(key, spec)
        assert w.chat(key).json()["choices"][0]["message"]["content"] == "the answer is forty two"
        moved = w.call(
            "POST",
            "/api/projects/shop/deployments/chat/traffic",
            key,
            {"weights": {"stable": 0, "canary": 1}},
        )
        assert moved.status_code == 201
        for _ in range(3):
            assert w.chat(key).json()["choices"][0]["message"]["content"] == "from the canary"


def test_a_quota_set_through_the_api_applies_at_once(
    admin_world: World, fake_upstream: str
) -> None:
    w, key = admin_world, admin_world.owner
    w.apply(key, spec_for(fake_upstream))
    assert w.chat(key).status_code == 200  # the caller and its (unlimited) quota are cached
    w.call("PATCH", "/api/projects/shop/quota", key, {"requests_per_minute": 1})
    statuses = [w.chat(key).status_code for _ in range(3)]
    assert 429 in statuses
    for _ in range(3):
        status = w.call("GET", "/api/projects/shop/quota", key).json()
        if status["requests_this_minute"] >= 1:
            break
        w.chat(key)  # the minute turned between the chats and the read: one in this one
    assert status["limits"]["requests_per_minute"] == 1
    assert status["requests_this_minute"] >= 1  # the gateway's own counters


def test_deleting_a_project_through_the_api_stops_its_keys(admin_world: World) -> None:
    w = admin_world
    assert w.call("GET", "/v1/models", w.outsider).status_code == 200
    assert w.call("DELETE", "/api/projects/bank", w.outsider).status_code == 204
    assert w.call("GET", "/v1/models", w.outsider).status_code == 401
    assert "bank" not in [p.name for p in w.admin.projects.list()]
