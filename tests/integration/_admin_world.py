"""What the admin API tests share: two projects with keys, and a gateway serving ``/api``.

world = make_world(platform, settings, gateway_server)
world.call("GET", "/api/projects/shop", world.owner)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import SecretStr

from apps.admin import mount_admin

OPERATOR = "operator-secret-token"


@dataclass
class World:
    """Projects shop and bank, each owned by the admin user, and keys of both."""

    url: str
    gateway: Any
    owner: str  # shop, role owner
    viewer: str  # shop, role viewer
    outsider: str  # bank, role owner
    admin: Any  # a genai.Client of the platform admin

    def call(
        self, method: str, path: str, key: str | None, json: Any = None, **params: Any
    ) -> httpx.Response:
        headers = {"authorization": f"Bearer {key}"} if key else {}
        return httpx.request(
            method,
            self.url + path,
            headers=headers,
            json=json,
            params=params or None,
            timeout=30,
        )

    def chat(self, key: str, model: str = "chat") -> httpx.Response:
        body = {"model": model, "messages": [{"role": "user", "content": "hello there"}]}
        return self.call("POST", "/v1/chat/completions", key, json=body)

    def apply(self, key: str, spec: dict[str, Any], name: str = "chat") -> httpx.Response:
        path = f"/api/projects/shop/deployments/{name}/revisions"
        return self.call("POST", path, key, {"spec": spec})


def make_world(platform: Callable[..., Any], settings: Any, gateway_server: Any) -> World:
    """The projects, their keys, and a gateway with the admin API and an operator token."""
    admin = platform()
    for name in ("shop", "bank"):
        admin.projects.create(name)
    owner = admin.keys.create("shop", role="owner", name="ops").secret
    viewer = admin.keys.create("shop", role="viewer", name="dash").secret
    outsider = admin.keys.create("bank", role="owner", name="ops").secret
    with_token = settings.model_copy(update={"admin_token": SecretStr(OPERATOR)})
    live = gateway_server(with_token, admin=mount_admin)
    return World(live.url, live.gateway, owner, viewer, outsider, admin)


def spec_for(upstream: str, **extra: Any) -> dict[str, Any]:
    """A one-target spec sending everything to ``upstream`` (model ``tiny``)."""
    return {"targets": [{"name": "stable", "url": upstream, "model": "tiny"}], **extra}
