"""`genai up` (what `make run` runs): idempotent set-up of the demo project and its
knowledge bot over this project's README, and a gateway that answers the calls it prints,
as printed, with citations."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from _browser import chromium
from _cli import Cli, UpProcess
from _servers import free_port

from apps.cli._up import QUESTION

CITATION = re.compile(r"\[(\d+)\]")


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    """On SQLite only: the demo adds nothing database-specific, and each command is a process."""
    cli = Cli(tmp_path / "home", f"sqlite:///{tmp_path / 'genai.db'}")
    cli("init")
    return cli


def _key(out: str) -> str:
    (key,) = [line for line in out.splitlines() if line.startswith("gk_") and len(line) > 50]
    return key


def _snippet(out: str, first: str, last: str) -> str:
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(first))
    end = next(i for i in range(start, len(lines)) if lines[i].startswith(last))
    return "\n".join(lines[start : end + 1])


def _python(out: str) -> str:
    return _snippet(out, "from openai import OpenAI", "    print(f")


def _run_printed(code: str, cli: Cli) -> list[str]:
    """What a printed Python snippet prints, run as a user would."""
    ran = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=180, env=cli.env
    )
    assert ran.returncode == 0, ran.stderr
    return ran.stdout.strip().splitlines()


def _curl(out: str) -> str:
    return _snippet(out, "curl -s ", "  -d '")


def test_up_without_serving_is_idempotent(cli: Cli) -> None:
    first = cli("up", "--no-serve").stdout
    second = cli("up", "--no-serve").stdout
    assert "project demo created" in first and "project demo exists" in second
    assert "knowledge base docs (version 1): 1 added" in first
    assert "knowledge base docs (version 1): 0 added, 0 updated, 0 deleted, 1 unchanged" in second
    for out in (first, second):
        assert "prompt qa@1 at production" in out
        assert "deployment docs-bot (revision 1)" in out
        assert "deployment assistant (revision 1): the project assistant" in out
        assert "deployment assistant-llm (revision 1)" in out
        assert "the semantic cache is on for docs-bot" in out  # turned on by the demo itself
        assert "the gateway: http://127.0.0.1:4000/v1" in out
        assert "http://127.0.0.1:4000/v1/chat/completions" in _curl(out)
        assert f'api_key="{_key(out)}"' in _python(out) and "citations" in _python(out)
        assert f"Bearer {_key(out)}" in _curl(out)
        assert "total: 0 requests" in out  # the usage report, printed without serving
    assert _key(first) != _key(second)
    deployed = {(d["name"], d["version"]) for d in cli.json("deploy", "list", "-p", "demo")}
    assert deployed == {("docs-bot", 1), ("assistant", 1), ("assistant-llm", 1)}
    keys = cli.json("key", "list", "-p", "demo", "--all")
    active = [(k["prefix"], k["revoked_at"] is None) for k in keys if k["name"] == "demo"]
    hub = [k["revoked_at"] is None for k in keys if k["name"] == "hub-sign-in"]
    assert sorted(hub) == [False, True]  # the earlier sign-in link's key is revoked
    assert active == [(_key(first)[:13], False), (_key(second)[:13], True)]
    assert [p["name"] for p in cli.json("project", "list")] == ["demo"]
    assert cli.json("prompt", "get", "qa@production", "-p", "demo")["version"] == 1


def test_up_serves_the_calls_it_prints_with_citations(cli: Cli) -> None:
    with UpProcess(cli, free_port()) as up:
        up.wait_until_serving()
        out = up.out
        # the first call: the question, the bot's answer quoting the README, its citations
        answer, said = [line[3:] for line in out.splitlines() if line.startswith("A: ")]
        numbers = CITATION.findall(answer)
        assert numbers, answer
        assert f"   [{numbers[0]}] " in out and "README.md" in out.split("A: ", 1)[1]
        printed = _run_printed(_python(out), cli)
        assert printed[0] == answer  # the same question: the same answer (from the cache)
        assert any(
            line.startswith(f"[{numbers[0]}] ") and "README.md" in line for line in printed[1:]
        ), printed
        calls = 2
        if shutil.which("curl") and shutil.which("bash"):
            calls += 1
            shell = subprocess.run(
                ["bash", "-c", _curl(out)], capture_output=True, text=True, timeout=60
            )
            assert shell.returncode == 0, shell.stderr
            body = json.loads(shell.stdout)
            assert body["choices"][0]["message"]["content"] == answer
            assert body["genai"]["prompt_version"] == "qa@1"
        # the project assistant: the agent's snippet, its answer from the deployments tool
        shown = out.split("the project assistant, an agent", 1)[1]
        printed = _run_printed(_snippet(shown, "from openai", "print(answer.model"), cli)
        assert printed[0] == "deployments (3):" and printed[-1] == "completed", printed
        assert any(line.startswith("- name=docs-bot, revision=1") for line in printed), printed
        assert said == "deployments (3):"  # `genai up` asked it too
    assert up.process.returncode == 0, up.out
    report = cli.json("usage", "report", "-p", "demo", "--by", "model")
    rows = {r["model"]: r["requests"] for r in report["rows"]}
    # each agent run: its own row and one per model call (a tool call, then the answer)
    assert rows == {"docs-bot": calls, "assistant": 2, "assistant-llm": 4}


@pytest.mark.slow
def test_up_prints_the_hub_where_the_docs_bot_answers_in_the_browser_with_citations(
    cli: Cli,
) -> None:
    with chromium() as browser, UpProcess(cli, free_port()) as up:
        up.wait_until_serving()
        base = f"http://127.0.0.1:{up.port}"
        assert f"the Hub (the web UI): {base}/hub/" in up.out
        (link,) = [line for line in up.out.splitlines() if "/hub/signin/link?token=" in line]
        page = browser.new_page()
        page.set_default_timeout(120_000)  # a bound on each wait, not a speed claim
        page.goto(link.strip())
        page.wait_for_url(f"{base}/hub/p/demo")  # signed in by the link, in the project
        page.click("nav >> text=Deployments")
        page.click("text=Chat with docs-bot")
        page.fill("#chat-input", QUESTION)
        page.click("#chat-form button[type=submit]")
        page.locator(".msg-assistant[data-done=true]").wait_for()
        assert "make test" in page.locator(".msg-assistant .text").inner_text()
        cited = page.locator(".citations details").first
        assert "README.md" in cited.locator("summary").inner_text()
        page.goto(link.strip())  # a link signs in once
        assert "/hub/signin" in page.url
