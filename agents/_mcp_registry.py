"""MCP servers registered per project: an owner registers a server once, and the project's
agents name it (``mcp: {server: NAME}``) instead of its URL.

    servers = MCPServers(client)
    servers.add("shop", "orders", url="https://mcp.internal/orders/mcp")   # owners
    servers.add("shop", "crm", url="https://crm.internal/mcp", token_secret="crm-token")
    servers.list("shop")                                                  # members

A server that wants a token gets it from a project secret (``genai secret set``), sent as
``Authorization: Bearer ...`` with every request: the agent's definition names only the
server, members never see the token, and it goes to the registered URL alone (as a
deployment's ``api_key_secret`` goes to its upstream only).

Registered servers are reached over streamable HTTP only (a registered command would run
wherever any member's agent runs). A run resolves a name in its own project, as its caller:
another project's registrations are not found, as if they did not exist. They live in the
project's options (``agent_mcp_servers``), so registering one is audited like any option.
"""

from __future__ import annotations

import builtins
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from agents._mcp import MCPServer
from genai.errors import NotFoundError, ValidationError
from genai.tenancy import Action
from genai.validation import check_resource_name

if TYPE_CHECKING:
    from genai import Client

__all__ = ["MCPServerInfo", "MCPServers"]

OPTION = "agent_mcp_servers"


@dataclass(frozen=True)
class MCPServerInfo:
    """A registered MCP server of a project."""

    name: str
    url: str
    timeout_s: float
    token_secret: str | None = None  # a project secret: the bearer token it is sent


class MCPServers:
    """The MCP servers registered in projects, as ``client``'s principal may see them:
    members list and use them (``project:read``), owners add and remove them."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def add(
        self,
        project: str,
        name: str,
        *,
        url: str,
        timeout_s: float = 30.0,
        token_secret: str | None = None,
    ) -> MCPServerInfo:
        check_resource_name(name, kind="MCP server name")
        if not url.startswith(("http://", "https://")):
            raise ValidationError(f"MCP server url {url!r} is not an http(s) URL", field="url")
        if not timeout_s > 0:
            raise ValidationError("timeout_s must be positive", field="timeout_s")
        if token_secret is not None and token_secret not in {
            secret.name for secret in self._client.secrets.list(project)
        }:
            raise ValidationError(
                f"project {project!r} has no secret {token_secret!r}: set the server's token "
                f"first with `genai secret set {token_secret} -p {project}`",
                field="token_secret",
            )
        servers = self._read(project)
        entry: dict[str, object] = {"url": url, "timeout_s": float(timeout_s)}
        if token_secret is not None:
            entry["token_secret"] = token_secret
        servers[name] = entry
        self._client.projects.set_option(project, OPTION, json.dumps(servers, sort_keys=True))
        return MCPServerInfo(name, url, float(timeout_s), token_secret)

    def remove(self, project: str, name: str) -> None:
        servers = self._read(project)
        if name not in servers:
            raise NotFoundError(f"MCP server {name!r} is not registered in project {project!r}")
        del servers[name]
        self._client.projects.set_option(project, OPTION, json.dumps(servers, sort_keys=True))

    def list(self, project: str) -> builtins.list[MCPServerInfo]:
        return [
            MCPServerInfo(
                name,
                str(entry["url"]),
                float(str(entry.get("timeout_s", 30.0))),
                str(entry["token_secret"]) if entry.get("token_secret") else None,
            )
            for name, entry in sorted(self._read(project).items())
        ]

    def server(self, project: str, name: str) -> MCPServer:
        """A connection (not started) to the registered server ``name`` of ``project``,
        with its token when it names one."""
        for info in self.list(project):
            if info.name == name:
                headers = None
                if info.token_secret is not None:
                    token = self._token(project, info)
                    headers = {"Authorization": f"Bearer {token}"}
                return MCPServer.http(
                    info.name, info.url, headers=headers, timeout_s=info.timeout_s
                )
        raise NotFoundError(
            f"MCP server {name!r} is not registered in project {project!r}: an owner "
            f"registers it with `genai agent mcp add {name} --url URL -p {project}`"
        )

    def _token(self, project: str, info: MCPServerInfo) -> str:
        """The server's token: the project's secret, read for the run (its caller may use
        the project's servers; the value goes to the server only)."""
        from genai.tenancy import read_secret, secret_sealer

        assert info.token_secret is not None
        ctx = self._client.context
        with ctx.store.session() as s:
            me = ctx.me(s)
            row = ctx.project(s, me, project, Action.PROJECT_READ)
            value = read_secret(s, secret_sealer(ctx.settings), row.id, info.token_secret)
        if value is None:
            raise ValidationError(
                f"MCP server {info.name!r} is sent the project secret {info.token_secret!r}, "
                f"which is not set: `genai secret set {info.token_secret} -p {project}`",
                field="token_secret",
            )
        return value

    def _read(self, project: str) -> dict[str, dict[str, object]]:
        ctx = self._client.context
        with ctx.store.session() as s:
            me = ctx.me(s)
            options = dict(ctx.project(s, me, project, Action.PROJECT_READ).options or {})
        raw = options.get(OPTION)
        if not raw:
            return {}
        value = json.loads(raw) if isinstance(raw, str) else raw
        return dict(value) if isinstance(value, dict) else {}
