"""``agents.MCPServer`` against real MCP servers (``_mcp_servers.py``, the SDK's server API)
over stdio and streamable HTTP: listing and calling tools, errors, timeouts, a server that
dies mid-run, a call from another task than the one that started the connection (the
"cancel scope in a different task" bug), and repeated connect/close cycles that must leak
no asyncio task and no file descriptor.

The cycle tests: an HTTP cycle costs a few hundredths of a second, so it runs 200 times; a
stdio cycle spawns a Python process that imports the SDK (about 0.9 s on a 2-core machine,
so 200 would take minutes), so it runs ``MCP_STDIO_CYCLES`` times (default 20; set 200 for
the full soak).
"""

from __future__ import annotations

import asyncio
import gc
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest
from _mcp_servers import start_http_server, stdio_args

from agents._mcp import MCPServer
from agents._tools import Tool
from genai.errors import BackendError

T = TypeVar("T")

#: No single step of these tests may take longer than this (a bound against a hang).
HANG = 60.0
STDIO_CYCLES = int(os.environ.get("MCP_STDIO_CYCLES", "20"))
HTTP_CYCLES = 200
#: File descriptors that may differ after the cycles: the test's own process counts fds
#: of things outside it (pytest's capture, the loop's selector and self-pipe exist already;
#: a warm-up cycle before the baseline takes any lazily made one), so a per-cycle leak
#: would show as N extra fds; 2 of slack absorbs a socket the collector has not reached.
FD_SLACK = 2


def run(coro: Awaitable[T]) -> T:
    async def bounded() -> T:
        async with asyncio.timeout(HANG * 5):  # no extra task, unlike wait_for
            return await coro

    return asyncio.run(bounded())


def stdio_server(name: str = "calc", **options: Any) -> MCPServer:
    return MCPServer.stdio(name, sys.executable, stdio_args(), **options)


@pytest.fixture
def http_url() -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    process, url = start_http_server(timeout=HANG)
    try:
        yield process, url
    finally:
        process.kill()
        process.wait(HANG)


def by_name(tools: list[Tool]) -> dict[str, Tool]:
    return {tool.name: tool for tool in tools}


async def check_list_and_invoke(server: MCPServer) -> None:
    tools = by_name(await server.tools())
    assert sorted(tools) == ["calc__add", "calc__crash", "calc__echo", "calc__fail", "calc__sleep"]
    add = tools["calc__add"]
    assert add.description == "Add two integers."
    assert add.parameters["type"] == "object"
    assert add.parameters["required"] == ["a", "b"]
    assert add.parameters["properties"]["a"]["type"] == "integer"
    assert tools["calc__echo"].parameters["properties"]["text"]["type"] == "string"
    assert tools["calc__sleep"].parameters["properties"]["seconds"]["type"] == "number"
    assert add.spec()["function"]["name"] == "calc__add"
    assert add.timeout_s == server.timeout_s
    assert add.side_effects  # not marked readOnlyHint

    outcome = await add.invoke({"a": 2, "b": 40})
    assert (outcome.status, outcome.content) == ("ok", '{"result": 42}')
    outcome = await tools["calc__echo"].invoke('{"text": "héllo"}')
    assert (outcome.status, outcome.content) == ("ok", '{"result": "héllo"}')
    assert await server.call_tool("echo", {"text": "direct"}) == '{"result": "direct"}'

    outcome = await tools["calc__fail"].invoke({})
    assert outcome.status == "error"
    assert "the fail tool failed on purpose" in outcome.content

    outcome = await add.invoke({"a": 1})
    assert outcome.status == "invalid_arguments"
    assert "b" in outcome.content

    outcome = await add.invoke({"a": "x", "b": 1})  # the server's own validation
    assert outcome.status == "error"


async def check_timeout(server: MCPServer) -> None:
    tools = by_name(await server.tools())
    outcome = await tools["calc__sleep"].invoke({"seconds": 30})
    assert outcome.status == "timeout"
    # The abandoned call is cancelled, the connection stays usable.
    assert server.running
    outcome = await tools["calc__add"].invoke({"a": 1, "b": 1})
    assert (outcome.status, outcome.content) == ("ok", '{"result": 2}')


def test_tool_names_are_prefixed_sanitized_and_unique() -> None:
    server = MCPServer.stdio("my.calc server", sys.executable)
    assert server._tool_name("add", set()) == "my_calc_server__add"
    assert server._tool_name("files/read.v2", set()) == "my_calc_server__files_read_v2"
    # a clash after sanitizing, and a name past 64 characters, end in a hash of the MCP name
    clash = server._tool_name("a.b", {"my_calc_server__a_b"})
    assert clash != "my_calc_server__a_b" and clash.startswith("my_calc_server__a_b_")
    long = server._tool_name("x" * 100, set())
    assert len(long) == 64 and long != server._tool_name("x" * 101, set())
    for name in (clash, long):
        assert all(c.isalnum() or c in "_-" for c in name)


# -- stdio ------------------------------------------------------------------------------------


def test_stdio_lists_and_invokes_tools() -> None:
    async def main() -> None:
        async with stdio_server() as server:
            assert server.running
            await check_list_and_invoke(server)
        assert not server.running

    run(main())


def test_stdio_call_past_timeout_is_a_timeout() -> None:
    async def main() -> None:
        async with stdio_server(timeout_s=0.5) as server:
            await check_timeout(server)

    run(main())


def test_stdio_server_that_dies_mid_run_fails_fast() -> None:
    async def main() -> None:
        async with stdio_server(timeout_s=HANG) as server:
            tools = by_name(await server.tools())
            outcome = await tools["calc__crash"].invoke({})
            assert outcome.status == "error"
            assert "MCP server 'calc' is not running" in outcome.content
            assert "exited" in outcome.content
            assert not server.running
            for _ in range(3):  # later calls fail at once too
                outcome = await tools["calc__echo"].invoke({"text": "anyone?"})
                assert outcome.status == "error"
                assert "MCP server 'calc' is not running" in outcome.content
            with pytest.raises(BackendError, match="not running"):
                await server.tools()
        # close() then start() reconnects
        async with server:
            assert await server.call_tool("add", {"a": 1, "b": 2}) == '{"result": 3}'

    run(main())


def test_stdio_server_that_cannot_start_is_a_clear_error(tmp_path: Any) -> None:
    async def main() -> None:
        missing = MCPServer.stdio("nope", str(tmp_path / "no-such-server"), connect_timeout_s=HANG)
        with pytest.raises(BackendError, match=r"MCP server 'nope'.*could not start.*no such"):
            await missing.tools()
        await missing.close()

        quits = MCPServer.stdio("quits", sys.executable, ["-c", "pass"], connect_timeout_s=HANG)
        with pytest.raises(BackendError, match=r"MCP server 'quits'.*could not start"):
            await quits.tools()
        await quits.close()

        # a process that never answers the handshake: bounded by connect_timeout_s
        mute = MCPServer.stdio(
            "mute", sys.executable, ["-c", "import time; time.sleep(60)"], connect_timeout_s=1
        )
        with pytest.raises(BackendError, match=r"MCP server 'mute'.*did not start within 1s"):
            await mute.start()
        await mute.close()
        assert len(asyncio.all_tasks()) == 1

    run(main())


def test_calls_from_other_tasks_than_the_one_that_started_it() -> None:
    """openai-agents-python#840: start in one task, call from others, close from another."""

    async def main() -> None:
        server = stdio_server()
        await asyncio.create_task(server.start())
        tools = by_name(await asyncio.create_task(server.tools()))
        outcomes = await asyncio.gather(
            *(asyncio.create_task(tools["calc__add"].invoke({"a": i, "b": i})) for i in range(10))
        )
        assert [o.content for o in outcomes] == [f'{{"result": {2 * i}}}' for i in range(10)]
        await asyncio.create_task(server.close())
        assert not server.running
        outcome = await tools["calc__add"].invoke({"a": 1, "b": 1})
        assert outcome.status == "error"
        assert "not running: it was closed" in outcome.content
        assert len(asyncio.all_tasks()) == 1

    run(main())


# -- streamable HTTP --------------------------------------------------------------------------


def test_http_lists_and_invokes_tools(http_url: tuple[subprocess.Popen[bytes], str]) -> None:
    _, url = http_url

    async def main() -> None:
        async with MCPServer.http("calc", url) as server:
            await check_list_and_invoke(server)

    run(main())


def test_http_call_past_timeout_is_a_timeout(
    http_url: tuple[subprocess.Popen[bytes], str],
) -> None:
    _, url = http_url

    async def main() -> None:
        async with MCPServer.http("calc", url, timeout_s=0.5) as server:
            await check_timeout(server)

    run(main())


def test_http_server_killed_mid_run_fails_fast(
    http_url: tuple[subprocess.Popen[bytes], str],
) -> None:
    process, url = http_url

    async def main() -> None:
        async with MCPServer.http("calc", url, timeout_s=HANG) as server:
            tools = by_name(await server.tools())
            pending = asyncio.create_task(tools["calc__sleep"].invoke({"seconds": HANG}))
            await asyncio.sleep(0.5)  # let the call reach the server (correct either way)
            process.kill()
            await asyncio.to_thread(process.wait, HANG)
            outcome = await pending
            assert outcome.status == "error"
            assert "MCP server 'calc' is not running" in outcome.content
            outcome = await tools["calc__echo"].invoke({"text": "anyone?"})
            assert outcome.status == "error"
            assert "MCP server 'calc' is not running" in outcome.content
            assert not server.running

    run(main())


def test_http_server_that_cannot_be_reached_is_a_clear_error() -> None:
    from _servers import free_port

    async def main() -> None:
        server = MCPServer.http("gone", f"http://127.0.0.1:{free_port()}/mcp")
        with pytest.raises(BackendError, match=r"MCP server 'gone'.*could not start.*Connect"):
            await server.tools()
        await server.close()
        assert len(asyncio.all_tasks()) == 1

    run(main())


# -- connect/close cycles ---------------------------------------------------------------------


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


async def cycle_leaks(make: Callable[[], MCPServer], cycles: int) -> tuple[int, int, int]:
    """Open, use and close ``cycles`` connections; return (fds before, fds after, tasks)."""

    async def once() -> None:
        async with make() as server:
            tools = by_name(await server.tools())
            outcome = await tools["calc__add"].invoke({"a": 1, "b": 2})
            assert outcome.content == '{"result": 3}'

    await once()  # warm-up: lazily made state (imports, the loop's child watcher) exists now
    gc.collect()
    tasks_before = asyncio.all_tasks()
    fds_before = fd_count()
    for _ in range(cycles):
        await once()
        assert asyncio.all_tasks() == tasks_before
    gc.collect()
    leaked_tasks = len(asyncio.all_tasks() - tasks_before)
    return fds_before, fd_count(), leaked_tasks


@pytest.mark.slow
def test_stdio_connect_close_cycles_leak_nothing() -> None:
    fds_before, fds_after, leaked_tasks = run(cycle_leaks(stdio_server, STDIO_CYCLES))
    assert leaked_tasks == 0
    assert fds_after <= fds_before + FD_SLACK, (fds_before, fds_after)


@pytest.mark.slow
def test_http_connect_close_cycles_leak_nothing(
    http_url: tuple[subprocess.Popen[bytes], str],
) -> None:
    _, url = http_url
    fds_before, fds_after, leaked_tasks = run(
        cycle_leaks(lambda: MCPServer.http("calc", url), HTTP_CYCLES)
    )
    assert leaked_tasks == 0
    assert fds_after <= fds_before + FD_SLACK, (fds_before, fds_after)
