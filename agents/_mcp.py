"""``MCPServer``: an MCP server as a source of :class:`~agents._tools.Tool` objects for agents.

One ``MCPServer`` is one connection to one Model Context Protocol server, over stdio (the
server is a subprocess) or streamable HTTP, made with the official ``mcp`` SDK::

    async with MCPServer.stdio("files", "npx", args=("-y", "@mcp/server-files", ".")) as files:
        tools = await files.tools()          # [Tool(name="files__read_file", ...), ...]
        outcome = await tools[0].invoke({"path": "README.md"})

Why a connection has an owner task: the SDK's clients (``stdio_client``,
``streamable_http_client``, ``ClientSession``) are anyio context managers whose cancel
scopes must be entered and exited in the same task. An agent runtime calls tools from
whichever task runs the step, and closes servers from yet another, which is how a
connection otherwise dies with "Attempted to exit cancel scope in a different task"
(openai-agents-python#840). So :meth:`MCPServer.start` spawns one task that enters the
transport and the session, initializes, and then serves requests (list tools, call a tool)
from a queue until :meth:`MCPServer.close`; callers from any task enqueue a request and
await a future. Each request runs in a child task of the owner, so calls run concurrently
and a caller that gives up (a tool timeout cancels it) cancels its request on the server.

Failure is reported, never raised into the host: when the server process exits or the HTTP
server goes away, the owner task ends, records why, and fails every pending and later call
at once with :class:`~genai.errors.BackendError` ("MCP server 'files' is not running: ...");
nothing escapes from a background task and every wait is bounded (``connect_timeout_s`` to
start, ``timeout_s`` per call, ``close_timeout_s`` to shut down). A server that cannot start
(a command that does not exist, a refused connection, a handshake that never completes)
fails :meth:`~MCPServer.start` or :meth:`~MCPServer.tools` with a ``BackendError`` naming
the server and the cause. A dead server stays dead: ``close()`` and ``start()`` reconnect.

Tool names are ``<server>__<tool>``, so two servers' ``search`` tools do not clash, with
every character outside ``[A-Za-z0-9_-]`` replaced by ``_`` (OpenAI's rule for function
names); a name longer than 64 characters, or one that clashes after that replacement, is
shortened and ends with 8 hex digits of a hash of the MCP name. A tool's result is its
``structuredContent`` as JSON when the server gives one, else its text contents joined by
newlines (other content kinds are named in brackets); an ``isError`` result raises, so
:meth:`Tool.invoke` reports status ``"error"`` with the server's message. Tools count as
having side effects unless the server marks them ``readOnlyHint``.

The ``mcp`` package (the ``agents`` extra) is imported when a connection starts, not when
this module is imported.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from agents._tools import Tool
from genai.errors import BackendError, ConfigError, MissingDependencyError

if TYPE_CHECKING:
    from mcp.client.session import ClientSession

__all__ = ["MCPServer"]

_NAME_CHARS = re.compile(r"[^A-Za-z0-9_-]")
_MAX_NAME = 64
#: The JSON-RPC code the SDK uses when a connection closes under a request.
_CONNECTION_CLOSED = -32000
#: How much longer than a tool's ``timeout_s`` its handler waits, so that the tool's own
#: timeout (status "timeout") always fires first.
_BACKSTOP_S = 1.0


@dataclass(frozen=True)
class _Stdio:
    command: str
    args: tuple[str, ...]
    env: Mapping[str, str] | None
    cwd: str | Path | None
    stderr: TextIO | None

    def describe(self) -> str:
        return " ".join([self.command, *self.args])


@dataclass(frozen=True)
class _Http:
    url: str
    headers: Mapping[str, str] | None

    def describe(self) -> str:
        return self.url


@dataclass
class _Request:
    """One call for the owner task: ``list`` the tools or ``call`` one."""

    kind: str
    future: asyncio.Future[Any]
    tool: str = ""
    arguments: dict[str, Any] = field(default_factory=dict)


_STOP = object()


class MCPServer:
    """One MCP server an agent uses for tools; see the module docstring.

    Build it with :meth:`stdio` or :meth:`http`. ``timeout_s`` bounds each call (and is the
    ``timeout_s`` of the tools it lists), ``connect_timeout_s`` the start (spawn or connect
    and the MCP handshake), ``close_timeout_s`` the shutdown.
    """

    def __init__(
        self,
        name: str,
        transport: _Stdio | _Http,
        *,
        timeout_s: float = 30.0,
        connect_timeout_s: float = 10.0,
        close_timeout_s: float = 10.0,
    ) -> None:
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"an MCP server needs a non-empty name, not {name!r}")
        for label, value in (
            ("timeout_s", timeout_s),
            ("connect_timeout_s", connect_timeout_s),
            ("close_timeout_s", close_timeout_s),
        ):
            if not value > 0:
                raise ConfigError(f"MCP server {name!r}: {label} must be positive, not {value!r}")
        self.name = name
        self.transport = transport
        self.timeout_s = float(timeout_s)
        self.connect_timeout_s = float(connect_timeout_s)
        self.close_timeout_s = float(close_timeout_s)
        self._prefix = _NAME_CHARS.sub("_", name)
        self._task: asyncio.Task[None] | None = None
        self._queue: asyncio.Queue[_Request | object] = asyncio.Queue()
        self._pending: set[asyncio.Future[Any]] = set()
        # Set once the start is decided: None (up) or the error. A result, never a future's
        # exception, so an abandoned start leaves no "exception was never retrieved" report.
        self._ready: asyncio.Future[BackendError | None] | None = None
        self._failure: str | None = None
        self._closed = False
        self._start_lock = asyncio.Lock()

    # -- construction -------------------------------------------------------------------

    @classmethod
    def stdio(
        cls,
        name: str,
        command: str,
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        cwd: str | Path | None = None,
        *,
        stderr: TextIO | None = None,
        timeout_s: float = 30.0,
        connect_timeout_s: float = 10.0,
        close_timeout_s: float = 10.0,
    ) -> MCPServer:
        """A server run as a subprocess speaking MCP on its stdin/stdout. ``env`` is merged
        over the SDK's safe default environment (``PATH``, ``HOME``, ...); the server's
        stderr goes to ``stderr`` (default: this process's ``sys.stderr``)."""
        if not command:
            raise ConfigError(f"MCP server {name!r}: the stdio command is empty")
        transport = _Stdio(command, tuple(args), dict(env) if env else None, cwd, stderr)
        return cls(
            name,
            transport,
            timeout_s=timeout_s,
            connect_timeout_s=connect_timeout_s,
            close_timeout_s=close_timeout_s,
        )

    @classmethod
    def http(
        cls,
        name: str,
        url: str,
        headers: Mapping[str, str] | None = None,
        *,
        timeout_s: float = 30.0,
        connect_timeout_s: float = 10.0,
        close_timeout_s: float = 10.0,
    ) -> MCPServer:
        """A server reached over streamable HTTP at ``url`` (e.g. ``http://host:8000/mcp``),
        sending ``headers`` (an ``Authorization`` header, say) with every request."""
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"MCP server {name!r}: {url!r} is not an http(s) URL")
        return cls(
            name,
            _Http(url, dict(headers) if headers else None),
            timeout_s=timeout_s,
            connect_timeout_s=connect_timeout_s,
            close_timeout_s=close_timeout_s,
        )

    def __repr__(self) -> str:
        return f"MCPServer({self.name!r}, {self.transport.describe()!r})"

    # -- lifecycle ----------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether the connection is up (started, not closed, not failed)."""
        return (
            self._task is not None
            and not self._task.done()
            and self._ready is not None
            and self._ready.done()
            and not self._ready.cancelled()
            and self._ready.result() is None
            and self._failure is None
        )

    async def __aenter__(self) -> MCPServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Connect (spawn the process or reach the URL) and do the MCP handshake, within
        ``connect_timeout_s``. Idempotent while running; after :meth:`close` it reconnects.
        Raises :class:`~genai.errors.BackendError` when the server cannot start and
        when it has failed since it started (close it, then start it again)."""
        async with self._start_lock:
            if self._task is not None:
                if self._failure is not None:
                    raise self._not_running()
                return
            self._closed = False
            self._failure = None
            self._queue = asyncio.Queue()
            loop = asyncio.get_running_loop()
            ready: asyncio.Future[BackendError | None] = loop.create_future()
            self._ready = ready
            self._task = asyncio.create_task(self._own(ready), name=f"mcp-server:{self.name}")
            try:
                error = await asyncio.wait_for(asyncio.shield(ready), self.connect_timeout_s)
                if error is not None:
                    raise error
            except TimeoutError:
                self._failure = f"it did not start within {self.connect_timeout_s:g}s"
                await self._stop_owner()
                raise BackendError(
                    f"MCP server {self.name!r} ({self.transport.describe()}) did not start "
                    f"within {self.connect_timeout_s:g}s; check that it is an MCP server and "
                    "that it is reachable, or raise connect_timeout_s",
                    backend=self._backend,
                    retryable=True,
                ) from None
            except BaseException:
                # the start failed, or our caller was cancelled
                await self._stop_owner()
                raise

    async def close(self) -> None:
        """End the connection (from any task): pending calls fail, the owner task exits the
        SDK's contexts (a stdio server's process is stopped), within ``close_timeout_s``.
        Idempotent; never raises for the server's own failures."""
        self._closed = True
        if self._failure is None:
            self._failure = "it was closed"
        await self._stop_owner()

    async def _stop_owner(self) -> None:
        task = self._task
        if task is None:
            return
        if not task.done():
            started = self._ready is not None and self._ready.done()
            done: set[asyncio.Task[None]] = set()
            if started:  # let it finish the calls under way and leave the contexts
                self._queue.put_nowait(_STOP)
                done, _ = await asyncio.wait({task}, timeout=self.close_timeout_s)
            if not done:  # still starting (nothing to finish), or stuck
                task.cancel()
                await asyncio.wait({task}, timeout=self.close_timeout_s)
        if task.done() and not task.cancelled():
            task.exception()  # retrieved: the owner records its failures itself
        self._fail_pending()
        self._task = None

    # -- tools --------------------------------------------------------------------------

    async def tools(self) -> list[Tool]:
        """The server's tools as :class:`Tool` objects whose handlers call this server
        (starting the connection first if it is not started)."""
        if self._task is None:
            await self.start()
        listing = await self._request(
            _Request("list", self._new_future()), "tools/list", self.timeout_s
        )
        used: set[str] = set()
        tools = []
        for mcp_tool in listing:
            name = self._tool_name(mcp_tool.name, used)
            used.add(name)
            annotations = mcp_tool.annotations
            read_only = bool(annotations is not None and annotations.read_only_hint)
            schema = dict(mcp_tool.input_schema or {})
            schema.setdefault("type", "object")
            tools.append(
                Tool(
                    name=name,
                    description=mcp_tool.description or mcp_tool.title or "",
                    parameters=schema,
                    handler=self._handler(mcp_tool.name),
                    validate=_required_check(schema),
                    side_effects=not read_only,
                    timeout_s=self.timeout_s,
                )
            )
        return tools

    async def call_tool(self, tool: str, arguments: Mapping[str, Any] | None = None) -> str:
        """Call the MCP tool ``tool`` (its name on the server) and return its result as
        text, within ``timeout_s``; an ``isError`` result, no answer in time or a dead
        server raises :class:`BackendError`."""
        return await self._call_tool(tool, arguments, self.timeout_s)

    async def _call_tool(
        self, tool: str, arguments: Mapping[str, Any] | None, timeout_s: float
    ) -> str:
        request = _Request("call", self._new_future(), tool=tool, arguments=dict(arguments or {}))
        return str(await self._request(request, f"tool {tool!r}", timeout_s))

    def _handler(self, mcp_name: str) -> Any:
        # Tool.invoke enforces timeout_s (status "timeout"); the wait here is a backstop.
        async def handler(**arguments: Any) -> str:
            return await self._call_tool(mcp_name, arguments, self.timeout_s + _BACKSTOP_S)

        handler.__name__ = _NAME_CHARS.sub("_", mcp_name)
        return handler

    def _tool_name(self, mcp_name: str, used: set[str]) -> str:
        name = f"{self._prefix}__{_NAME_CHARS.sub('_', mcp_name)}"
        if len(name) > _MAX_NAME or name in used:
            digest = hashlib.sha256(f"{self.name}\0{mcp_name}".encode()).hexdigest()[:8]
            name = f"{name[: _MAX_NAME - 9]}_{digest}"
        return name

    # -- requests -----------------------------------------------------------------------

    @property
    def _backend(self) -> str:
        return f"mcp:{self.name}"

    def _new_future(self) -> asyncio.Future[Any]:
        future = asyncio.get_running_loop().create_future()
        # Marked retrieved: a caller torn down with its loop leaves no "never retrieved" report.
        future.add_done_callback(_retrieve)
        return future

    def _not_running(self) -> BackendError:
        reason = self._failure or "it has not been started"
        return BackendError(
            f"MCP server {self.name!r} is not running: {reason}",
            backend=self._backend,
            retryable=not self._closed,
        )

    async def _request(self, request: _Request, what: str, timeout_s: float) -> Any:
        if self._task is None or self._task.done() or self._failure is not None:
            raise self._not_running()
        future = request.future
        self._pending.add(future)
        future.add_done_callback(self._pending.discard)
        self._queue.put_nowait(request)
        try:
            return await asyncio.wait_for(future, timeout_s)
        except TimeoutError:
            raise BackendError(
                f"MCP server {self.name!r} did not answer {what} within {timeout_s:g}s",
                backend=self._backend,
                retryable=True,
            ) from None

    def _fail_pending(self) -> None:
        for future in list(self._pending):
            if not future.done():
                future.set_exception(self._not_running())
        self._pending.clear()

    # -- the owner task -----------------------------------------------------------------

    async def _own(self, ready: asyncio.Future[BackendError | None]) -> None:
        """Enter the transport and the session, initialize, serve requests until stopped.
        Never raises: a failure is recorded in ``_failure`` and reported to callers."""
        try:
            try:
                import anyio
                from mcp.client.session import ClientSession
            except ImportError as exc:  # pragma: no cover - the agents extra is missing
                raise MissingDependencyError(
                    "mcp", extra="agents", purpose="Connecting MCP servers"
                ) from exc
            async with contextlib.AsyncExitStack() as stack:
                read, write = await stack.enter_async_context(self._transport_context(stack))
                session = await stack.enter_async_context(ClientSession(read, write))
                await session.initialize()
                if not ready.done():
                    ready.set_result(None)
                async with anyio.create_task_group() as group:
                    while True:
                        request = await self._queue.get()
                        if not isinstance(request, _Request):
                            break
                        group.start_soon(self._serve, session, request)
                    group.cancel_scope.cancel()
            if self._failure is None:
                self._failure = "the connection ended"
        except asyncio.CancelledError:
            if self._failure is None:
                self._failure = "its connection task was cancelled"
        except Exception as exc:  # recorded and reported, never raised here
            cause = _describe(exc)
            if self._failure is None:
                self._failure = cause
            if not ready.done():
                ready.set_result(
                    BackendError(
                        f"MCP server {self.name!r} ({self.transport.describe()}) could not "
                        f"start: {cause}",
                        backend=self._backend,
                        retryable=True,
                    )
                )
        finally:
            if self._failure is None:
                self._failure = "the connection ended"
            if not ready.done():
                ready.set_result(self._not_running())
            self._fail_pending()

    def _transport_context(self, stack: contextlib.AsyncExitStack) -> Any:
        transport = self.transport
        if isinstance(transport, _Stdio):
            from mcp.client.stdio import StdioServerParameters, stdio_client

            params = StdioServerParameters(
                command=transport.command,
                args=list(transport.args),
                env=dict(transport.env) if transport.env else None,
                cwd=transport.cwd,
            )
            return stdio_client(params, errlog=_errlog(transport.stderr))
        import httpx2
        from mcp.client.streamable_http import streamable_http_client
        from mcp.shared._httpx_utils import create_mcp_http_client

        client = create_mcp_http_client(
            headers=dict(transport.headers) if transport.headers else None,
            timeout=httpx2.Timeout(30.0, connect=self.connect_timeout_s, read=300.0),
        )
        stack.push_async_callback(client.aclose)
        return streamable_http_client(transport.url, http_client=client)

    async def _serve(self, session: ClientSession, request: _Request) -> None:
        """Run one request in a child task of the owner; its outcome goes to its future.
        A caller that stops waiting (its future cancelled) cancels the request."""
        import anyio
        from mcp.shared.exceptions import MCPError

        future = request.future
        if future.done():
            return
        with anyio.CancelScope() as scope:

            def abandoned(done: asyncio.Future[Any]) -> None:
                if done.cancelled():
                    scope.cancel()

            future.add_done_callback(abandoned)
            try:
                if request.kind == "list":
                    result: Any = await self._list(session)
                else:
                    result = await self._call(session, request)
            except MCPError as exc:
                if exc.code == _CONNECTION_CLOSED:
                    self._die(self._closed_reason(exc.message))
                    error: Exception = self._not_running()
                else:
                    error = BackendError(
                        f"MCP server {self.name!r} refused {request.kind} "
                        f"{request.tool!r}: {exc.message} (code {exc.code})",
                        backend=self._backend,
                    )
                if not future.done():
                    future.set_exception(error)
            except BackendError as exc:
                if not future.done():
                    future.set_exception(exc)
            except Exception as exc:  # reported to the caller
                if not future.done():
                    future.set_exception(
                        BackendError(
                            f"MCP server {self.name!r}: {request.kind} {request.tool!r} "
                            f"failed: {_describe(exc)}",
                            backend=self._backend,
                        )
                    )
            else:
                if not future.done():
                    future.set_result(result)
            finally:
                future.remove_done_callback(abandoned)

    def _closed_reason(self, detail: str) -> str:
        if isinstance(self.transport, _Stdio):
            reason = "its process exited or closed its stdout"
        else:
            reason = "the connection to it closed"
        if detail and detail.lower() != "connection closed":
            reason = f"{reason} ({detail})"
        return reason

    def _die(self, reason: str) -> None:
        if self._failure is None:
            self._failure = reason
        self._queue.put_nowait(_STOP)

    async def _list(self, session: ClientSession) -> list[Any]:
        import mcp_types

        tools: list[Any] = []
        cursor: str | None = None
        while True:
            params = mcp_types.PaginatedRequestParams(cursor=cursor) if cursor else None
            page = await session.list_tools(params=params)
            tools.extend(page.tools)
            cursor = page.next_cursor
            if not cursor:
                return tools

    async def _call(self, session: ClientSession, request: _Request) -> str:
        result = await session.call_tool(request.tool, request.arguments)
        text = _result_text(result)
        if result.is_error:
            raise BackendError(
                text or f"MCP tool {request.tool!r} failed without a message",
                backend=self._backend,
            )
        return text


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


def _errlog(stderr: TextIO | None) -> TextIO:
    """Where a stdio server's stderr goes: ``stderr``, else ``sys.stderr`` when it is a real
    file (a child process needs a file descriptor; a test runner's in-memory capture has
    none), else the process's original stderr."""
    if stderr is not None:
        return stderr
    try:
        sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        return sys.__stderr__ or sys.stderr
    return sys.stderr


def _required_check(schema: Mapping[str, Any]) -> Any:
    """A light check before the call (the server validates fully): the arguments name every
    ``required`` property, so a model that forgot one gets ``invalid_arguments`` at once."""
    required = [name for name in schema.get("required") or () if isinstance(name, str)]

    def validate(arguments: Mapping[str, Any]) -> Mapping[str, Any]:
        missing = [name for name in required if name not in arguments]
        if missing:
            raise ValueError(f"missing required argument(s): {', '.join(missing)}")
        return arguments

    return validate


def _result_text(result: Any) -> str:
    """A ``CallToolResult`` as text: structured content as JSON, else the contents."""
    if result.structured_content is not None and not result.is_error:
        return json.dumps(result.structured_content, ensure_ascii=False, default=str)
    parts = []
    for block in result.content:
        kind = getattr(block, "type", "")
        if kind == "text":
            parts.append(block.text)
        elif kind in ("image", "audio"):
            parts.append(f"[{kind}: {block.mime_type}, {len(block.data)} base64 characters]")
        elif kind == "resource_link":
            parts.append(f"[resource: {block.uri}]")
        elif kind == "resource":
            text = getattr(block.resource, "text", None)
            parts.append(text if text is not None else f"[resource: {block.resource.uri}]")
        else:
            parts.append(f"[{kind or type(block).__name__} content]")
    return "\n".join(parts)


def _describe(exc: BaseException) -> str:
    """The innermost useful message of an exception (unwrapping anyio's exception groups)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    if isinstance(exc, BackendError):
        return exc.message
    text = str(exc) or type(exc).__name__
    if isinstance(exc, FileNotFoundError):
        return f"no such command or file ({text})"
    if type(exc).__name__ == "MCPError" and getattr(exc, "code", None) == _CONNECTION_CLOSED:
        return f"it closed the connection during the MCP handshake ({text})"
    return f"{type(exc).__name__}: {text}"
