"""`pangea-mcp proxy`: another MCP server served again behind AI Guard.

In-process: the upstream is tests/proxy_upstream.py built in memory, the proxy is `proxy.build(...)`, the
client FastMCP's. End to end: the installed `pangea-mcp proxy -- python tests/proxy_upstream.py` driven by
the official `mcp` client over stdio, with the fake Pangea on 127.0.0.1.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import anyio
import psutil  # type: ignore[import-untyped,unused-ignore]
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream
from fastmcp import Client, FastMCP
from mcp.shared.exceptions import MCPError
from mcp.types import TextResourceContents

from pangea_mcp import cli, proxy
from pangea_mcp.config import Settings
from tests.asgi_thread import serve_asgi
from tests.conftest import make_settings
from tests.e2e_common import INITIALIZE, SCRIPT, canary, text_of
from tests.fake_pangea import FakePangea
from tests.proxy_upstream import EMAIL, INJECTION, POISON, README, STDERR_MARK, build_upstream
from tests.test_e2e_stdio import SESSION_TIMEOUT, Transcript, assert_no_canary, connect, read_back

GUARD = ("ai-guard", "v1/guard")
UPSTREAM = Path(__file__).resolve().parent / "proxy_upstream.py"
TOOLS = ["echo", "fetch_page", "lookup_user", "report", "notes", "count", "env_names", "exit_now"]
EXIT_TIMEOUT = 20.0


def settings(**overrides: Any) -> Settings:
    return make_settings(guard=True, **overrides)


def served(fake: FakePangea, calls: list[dict[str, Any]], **overrides: Any) -> FastMCP:
    upstream = build_upstream(calls)
    return proxy.build(
        settings(**overrides), upstream, server_name="proxy-upstream", transport=fake.transport
    )


def tool_calls(calls: list[dict[str, Any]]) -> list[str]:
    return [c["tool"] for c in calls]


# -- in process -------------------------------------------------------------------------------------


async def test_tools_list_and_run_through_the_proxy_as_they_do_directly(fake: FakePangea) -> None:
    calls: list[dict[str, Any]] = []
    async with Client(build_upstream([])) as direct:
        direct_tools = await direct.list_tools()
        direct_echo = await direct.call_tool("echo", {"text": "hello"})
        direct_user = await direct.call_tool("lookup_user", {"user_id": 7})
    async with Client(served(fake, calls)) as client:
        tools = await client.list_tools()
        echo = await client.call_tool("echo", {"text": "hello"})
        user = await client.call_tool("lookup_user", {"user_id": 7})

    shape = [(t.name, t.description, t.input_schema, t.output_schema) for t in tools]
    assert shape == [(t.name, t.description, t.input_schema, t.output_schema) for t in direct_tools]
    assert [t.name for t in tools] == TOOLS
    assert (text_of(echo), echo.structured_content) == (text_of(direct_echo), direct_echo.structured_content)
    assert (text_of(user), user.structured_content) == (text_of(direct_user), direct_user.structured_content)
    assert tool_calls(calls) == ["echo", "lookup_user"]
    # Listing, then arguments and result of each call, each with its event type.
    assert [b["event_type"] for b in fake.bodies(*GUARD)] == [
        "tool_listing",
        *["tool_input", "tool_output"] * 2,
    ]
    assert fake.bodies(*GUARD)[1]["extra_info"] == {
        "app_name": "pangea-mcp",
        "mcp_server_name": "proxy-upstream",
        "tool_name": "echo",
    }


async def test_a_blocked_input_never_reaches_the_upstream(fake: FakePangea) -> None:
    fake.guard_blocks("rm -rf /", event_type="tool_input")
    calls: list[dict[str, Any]] = []
    async with Client(served(fake, calls)) as client:
        blocked = await client.call_tool("echo", {"text": "now rm -rf / please"}, raise_on_error=False)
        allowed = await client.call_tool("echo", {"text": "hello"})

    assert blocked.is_error
    assert "blocked the arguments of echo" in text_of(blocked) and "malicious_prompt" in text_of(blocked)
    assert "rm -rf" not in text_of(blocked)
    assert calls == [{"tool": "echo", "arguments": {"text": "hello"}}]
    assert text_of(allowed) == "hello"


async def test_a_blocked_output_never_reaches_the_client(fake: FakePangea) -> None:
    fake.guard_blocks("IGNORE ALL PREVIOUS INSTRUCTIONS", event_type="tool_output")
    calls: list[dict[str, Any]] = []
    async with Client(served(fake, calls)) as client:
        result = await client.call_tool("fetch_page", {"url": "https://example.org"}, raise_on_error=False)

    assert result.is_error
    assert "blocked the result of fetch_page" in text_of(result)
    assert INJECTION not in text_of(result) and "example.org" not in text_of(result)
    assert tool_calls(calls) == ["fetch_page"]  # it ran; its output was withheld
    [checked] = [b for b in fake.bodies(*GUARD) if b["event_type"] == "tool_output"]
    assert INJECTION in checked["input"]["messages"][0]["content"]


async def test_a_transformed_output_reaches_the_client_transformed_in_text_and_structure(
    fake: FakePangea,
) -> None:
    fake.guard_redacts(EMAIL, "<EMAIL_ADDRESS>", event_type="tool_output")
    async with Client(served(fake, [])) as client:
        result = await client.call_tool("lookup_user", {"user_id": 7})

    assert result.structured_content == {"id": 7, "name": "Alan Grant", "email": "<EMAIL_ADDRESS>"}
    assert json.loads(text_of(result)) == result.structured_content
    assert EMAIL not in text_of(result)
    # Text that only mirrors the structured content is sent once, not twice.
    [checked] = [b for b in fake.bodies(*GUARD) if b["event_type"] == "tool_output"]
    assert len(checked["input"]["messages"]) == 1


async def test_a_wrapped_text_result_is_checked_once_and_stays_consistent(fake: FakePangea) -> None:
    fake.guard_redacts(EMAIL, "<EMAIL_ADDRESS>", event_type="tool_output")
    async with Client(served(fake, [])) as client:
        result = await client.call_tool("echo", {"text": f"mail {EMAIL}"})

    assert text_of(result) == "mail <EMAIL_ADDRESS>"
    assert result.structured_content == {"result": "mail <EMAIL_ADDRESS>"}
    [checked] = [b for b in fake.bodies(*GUARD) if b["event_type"] == "tool_output"]
    assert [json.loads(m["content"]) for m in checked["input"]["messages"]] == [{"result": f"mail {EMAIL}"}]


async def test_text_that_differs_from_the_structured_content_is_checked_too(fake: FakePangea) -> None:
    fake.guard_redacts(EMAIL, "<EMAIL_ADDRESS>", event_type="tool_output")
    async with Client(served(fake, [])) as client:
        result = await client.call_tool("report", {})

    assert text_of(result) == "Owner: <EMAIL_ADDRESS>."
    assert result.structured_content == {"owner": "<EMAIL_ADDRESS>", "pages": 3}
    [checked] = [b for b in fake.bodies(*GUARD) if b["event_type"] == "tool_output"]
    assert [m["content"] for m in checked["input"]["messages"]] == [
        json.dumps({"owner": EMAIL, "pages": 3}, separators=(",", ":")),
        f"Owner: {EMAIL}.",
    ]


async def test_an_outage_fails_closed(fake: FakePangea) -> None:
    calls: list[dict[str, Any]] = []
    async with Client(served(fake, calls)) as client:
        await client.list_tools()
        fake.on(*GUARD, status="ServiceNotAvailable", http=503, times=20)
        result = await client.call_tool("echo", {"text": "hello"}, raise_on_error=False)

    assert result.is_error
    assert "Pangea AI Guard is unavailable" in text_of(result)
    assert calls == []


async def test_an_outage_with_fail_open_gives_the_unguarded_result(
    fake: FakePangea, caplog: pytest.LogCaptureFixture
) -> None:
    fake.on(*GUARD, status="InternalError", times=20)
    calls: list[dict[str, Any]] = []
    async with Client(served(fake, calls, guard_fail_open=True)) as client:
        tools = await client.list_tools()
        result = await client.call_tool("fetch_page", {"url": "https://example.org"})

    assert [t.name for t in tools] == TOOLS
    assert INJECTION in text_of(result)  # unguarded, as configured
    assert tool_calls(calls) == ["fetch_page"]
    assert "fail-open" in caplog.text


async def test_a_poisoned_description_hides_that_tool_only_and_says_so(
    fake: FakePangea, caplog: pytest.LogCaptureFixture
) -> None:
    fake.guard_blocks("<IMPORTANT>", event_type="tool_listing")
    caplog.set_level(logging.WARNING)
    calls: list[dict[str, Any]] = []
    async with Client(served(fake, calls)) as client:
        tools = await client.list_tools()
        again = await client.list_tools()
        hidden = await client.call_tool("notes", {"note": "x"}, raise_on_error=False)

    assert [t.name for t in tools] == [name for name in TOOLS if name != "notes"]
    assert [t.name for t in again] == [t.name for t in tools]
    assert hidden.is_error and "Tool notes is hidden" in text_of(hidden)
    assert POISON not in text_of(hidden)
    assert calls == []
    assert "description of tool notes" in caplog.text and "hidden" in caplog.text
    listings = [b for b in fake.bodies(*GUARD) if b["event_type"] == "tool_listing"]
    # One check of the whole list, then one per tool to find the culprit; the second listing is cached.
    assert len(listings) == 1 + len(TOOLS)
    assert [t["name"] for t in listings[0]["input"]["tools"]] == TOOLS
    assert listings[0]["extra_info"]["mcp_tools"] == [{"server_name": "proxy-upstream", "tools": TOOLS}]
    assert all(len(b["input"]["tools"]) == 1 for b in listings[1:])


async def test_a_tool_called_without_listing_is_still_screened(fake: FakePangea) -> None:
    fake.guard_blocks("<IMPORTANT>", event_type="tool_listing")
    calls: list[dict[str, Any]] = []
    async with Client(served(fake, calls)) as client:
        hidden = await client.call_tool("notes", {"note": "x"}, raise_on_error=False)

    assert hidden.is_error and "hidden" in text_of(hidden)
    assert calls == []


async def test_a_listing_outage_fails_closed(fake: FakePangea) -> None:
    fake.on(*GUARD, status="InternalError", times=20)
    async with Client(served(fake, [])) as client:
        with pytest.raises(MCPError, match="AI Guard is unavailable"):
            await client.list_tools()


async def test_resource_reads_are_guarded(fake: FakePangea) -> None:
    fake.guard_redacts(EMAIL, "<EMAIL_ADDRESS>", event_type="tool_output")
    async with Client(served(fake, [])) as client:
        [content] = await client.read_resource("notes://readme")
        fake.guard_blocks("Project notes", event_type="tool_output")
        with pytest.raises(MCPError, match="blocked resource notes://readme") as blocked:
            await client.read_resource("notes://readme")

    assert isinstance(content, TextResourceContents)
    assert content.text == README.replace(EMAIL, "<EMAIL_ADDRESS>")
    assert "Project notes" not in str(blocked.value)
    [checked, _] = [b for b in fake.bodies(*GUARD) if b["extra_info"].get("resource_uri")]
    assert checked["input"]["messages"] == [{"role": "tool", "content": README}]


async def test_prompt_results_are_guarded(fake: FakePangea) -> None:
    async with Client(served(fake, [])) as client:
        allowed = await client.get_prompt("summarise", {"topic": "dinosaurs"})
        fake.guard_blocks("IGNORE ALL PREVIOUS INSTRUCTIONS", event_type="input")
        with pytest.raises(MCPError, match="blocked prompt summarise") as blocked:
            await client.get_prompt("summarise", {"topic": "dinosaurs"})

    assert INJECTION in allowed.messages[0].content.text  # type: ignore[union-attr]
    assert INJECTION not in str(blocked.value)
    prompts = [b for b in fake.bodies(*GUARD) if b["extra_info"].get("prompt_name") == "summarise"]
    assert prompts[0]["input"]["messages"][0]["role"] == "user"
    assert prompts[0]["recipe"] == "pangea_agent_post_tool_guard"


def test_the_child_environment_has_no_pangea_setting_and_no_secret() -> None:
    environ = {
        "PATH": "/usr/bin",
        "PANGEA_TOKEN": "pts_secret",
        "pangea_vault_token": "pts_other",
        "TOKEN_COPY": "Bearer pts_secret",
        "GITHUB_TOKEN": "ghp_kept",
    }
    assert proxy.child_environment(environ, ["pts_secret", "pts_other"]) == {
        "PATH": "/usr/bin",
        "GITHUB_TOKEN": "ghp_kept",
    }


def test_names_and_exit_statuses() -> None:
    assert proxy.describe_command(["/usr/bin/python3", "-u", "tests/proxy_upstream.py"]) == (
        "python3 proxy_upstream.py"
    )
    assert proxy.describe_command(["npx", "-y", "@modelcontextprotocol/server-filesystem"]) == (
        "npx server-filesystem"
    )
    assert (
        proxy.describe_command(["python", "-m", "mcp_server_git", "--repo", "."]) == "python mcp_server_git"
    )
    assert proxy.describe_command(["python", "-c", "print()"]) == "python"
    assert proxy.describe_url("http://127.0.0.1:8000/mcp") == "127.0.0.1"
    assert proxy.exit_status(3) == (3, "exited with code 3")
    assert proxy.exit_status(-9) == (137, "was killed by signal 9")


@pytest.mark.parametrize(
    "argv",
    [
        ["proxy"],
        ["proxy", "--upstream-url", "http://127.0.0.1:9/mcp", "--", "python", "x.py"],
        ["--", "python", "x.py"],
    ],
)
def test_the_proxy_needs_exactly_one_upstream(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        cli.main(argv)
    assert done.value.code == 2
    assert "--" in capsys.readouterr().err


# -- end to end: the installed console script ----------------------------------------------------------


def proxy_env(template: str, token: str, **extra: str) -> dict[str, str]:
    return {
        "PANGEA_TOKEN": token,
        "PANGEA_BASE_URL_TEMPLATE": template,
        "PANGEA_RETRY_BACKOFF": "0",
        "PANGEA_REQUEST_TIMEOUT": "10",
        "PANGEA_LOG_LEVEL": "DEBUG",
        **extra,
    }


async def test_the_installed_proxy_guards_a_stdio_server_and_keeps_secrets_from_it(tmp_path: Path) -> None:
    token = canary()
    fake = FakePangea(service_token=token)
    fake.guard_blocks("<IMPORTANT>", event_type="tool_listing")
    fake.guard_blocks("DROP TABLE", event_type="tool_input")
    fake.guard_blocks("IGNORE ALL PREVIOUS INSTRUCTIONS", event_type="tool_output")
    fake.guard_blocks("IGNORE ALL PREVIOUS INSTRUCTIONS", event_type="input")
    fake.guard_redacts(EMAIL, "<EMAIL_ADDRESS>")
    call_log = tmp_path / "calls.jsonl"
    transcript = Transcript()
    args = ["proxy", "--", sys.executable, str(UPSTREAM)]

    with (tmp_path / "stderr.log").open("w+", encoding="utf-8") as errlog:
        with fake.serve() as template, anyio.fail_after(SESSION_TIMEOUT):
            env = proxy_env(
                template,
                token,
                pangea_services="ip_intel",  # any spelling of a Pangea setting stays with the proxy
                TOKEN_COPY=f"Bearer {token}",  # and so does any variable holding its token
                UPSTREAM_CALL_LOG=str(call_log),
                UPSTREAM_KEEP="kept",
            )
            async with connect(env, tmp_path, errlog, transcript, args) as session:
                tools = (await session.list_tools()).tools
                echo = await session.call_tool("echo", {"text": "hello"})
                dropped = await session.call_tool("echo", {"text": "DROP TABLE users"})
                page = await session.call_tool("fetch_page", {"url": "https://example.org"})
                user = await session.call_tool("lookup_user", {"user_id": 7})
                names = await session.call_tool("env_names", {})
                progress: list[tuple[float, float | None, str | None]] = []

                async def on_progress(done: float, total: float | None, message: str | None) -> None:
                    progress.append((done, total, message))

                counted = await session.call_tool("count", {"to": 3}, progress_callback=on_progress)
                readme = await session.read_resource("notes://readme")
                with pytest.raises(MCPError, match="blocked prompt summarise"):
                    await session.get_prompt("summarise", {"topic": "dinosaurs"})
        stderr = read_back(errlog)

    assert [t.name for t in tools] == [name for name in TOOLS if name != "notes"]
    assert not echo.is_error and text_of(echo) == "hello"
    assert dropped.is_error and "blocked the arguments of echo" in text_of(dropped)
    assert page.is_error and "blocked the result of fetch_page" in text_of(page)
    assert user.structured_content == {"id": 7, "name": "Alan Grant", "email": "<EMAIL_ADDRESS>"}
    assert json.loads(text_of(user)) == user.structured_content
    [resource] = readme.contents
    assert isinstance(resource, TextResourceContents) and "<EMAIL_ADDRESS>" in resource.text

    # The upstream: what it ran, and what it could see.
    logged = [json.loads(line) for line in call_log.read_text().splitlines()]
    assert logged == [
        {"tool": "echo", "arguments": {"text": "hello"}},
        {"tool": "fetch_page", "arguments": {"url": "https://example.org"}},
        {"tool": "lookup_user", "arguments": {"user_id": 7}},
        {"tool": "env_names", "arguments": {}},
        {"tool": "count", "arguments": {"to": 3}},
    ]
    assert counted.structured_content == {"result": 3}
    assert progress == [(1, 3, "step 1"), (2, 3, "step 2"), (3, 3, "step 3")]
    assert names.structured_content is not None
    visible = names.structured_content["result"]
    assert [n for n in visible if n.upper().startswith("PANGEA_")] == []
    assert "TOKEN_COPY" not in visible
    assert "UPSTREAM_KEEP" in visible and "PATH" in visible

    # Its stderr passes through; the proxy's own log names the hidden tool; no secret or blocked text leaks.
    assert STDERR_MARK in stderr
    assert "description of tool notes" in stderr
    assert "DEBUG" in stderr and "ai-guard v1/guard -> HTTP 200" in stderr
    assert_no_canary("stderr", stderr, [token])
    assert_no_canary("the messages the client received", transcript.text(), [token, INJECTION, EMAIL, POISON])
    assert fake.violations == []


async def run_proxy(
    tmp_path: Path, env: dict[str, str], upstream: list[str], messages: list[dict[str, Any]]
) -> tuple[int, list[dict[str, Any]], str]:
    """Start the proxy, send `messages` (keeping stdin open), and wait for it to exit by itself."""
    base = {"PATH": str(SCRIPT.parent) + ":/usr/bin:/bin", "HOME": str(tmp_path)}
    replies: list[dict[str, Any]] = []
    with (tmp_path / "stderr.txt").open("w+", encoding="utf-8") as err:
        async with await anyio.open_process(
            [str(SCRIPT), "proxy", "--", *upstream], env=base | env, cwd=tmp_path, stderr=err
        ) as proc:
            assert proc.stdin is not None and proc.stdout is not None
            stdout = BufferedByteReceiveStream(proc.stdout)
            try:
                with anyio.fail_after(EXIT_TIMEOUT):
                    for message in messages:
                        await proc.stdin.send((json.dumps(message) + "\n").encode())
                    while True:
                        try:
                            replies.append(json.loads(await stdout.receive_until(b"\n", 1 << 20)))
                        except (anyio.EndOfStream, anyio.IncompleteRead):
                            break
                    code = await proc.wait()
            finally:
                if proc.returncode is None:
                    proc.kill()
        return code, replies, read_back(err)


async def test_the_proxy_exits_with_the_upstreams_code_when_the_upstream_exits(tmp_path: Path) -> None:
    token = canary()
    fake = FakePangea(service_token=token)
    messages = [
        INITIALIZE,
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {
            "jsonrpc": "2.0",
            "id": 2,
            "method": "tools/call",
            "params": {"name": "exit_now", "arguments": {"code": 7}},
        },
    ]
    with fake.serve() as template:
        code, replies, stderr = await run_proxy(
            tmp_path, proxy_env(template, token), [sys.executable, str(UPSTREAM)], messages
        )

    assert code == 7, stderr[-2000:]
    assert replies[0]["id"] == 1
    last = stderr.strip().splitlines()[-1]
    assert (
        last
        == f"pangea-mcp proxy: the upstream server ({Path(sys.executable).name} proxy_upstream.py) exited with code 7; stopping"
    )
    assert "Traceback" not in stderr
    assert_no_canary("stderr", stderr, [token])


async def test_the_proxy_stops_its_upstream_when_the_client_hangs_up(tmp_path: Path) -> None:
    token = canary()
    fake = FakePangea(service_token=token)
    marker = f"marker-{uuid.uuid4().hex}"
    messages = [
        INITIALIZE,
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {
            "jsonrpc": "2.0",
            "id": 2,
            "method": "tools/call",
            "params": {"name": "echo", "arguments": {"text": "hi"}},
        },
    ]
    base = {"PATH": str(SCRIPT.parent) + ":/usr/bin:/bin", "HOME": str(tmp_path)}
    with fake.serve() as template, (tmp_path / "stderr.txt").open("w+", encoding="utf-8") as err:
        with anyio.fail_after(EXIT_TIMEOUT):
            async with await anyio.open_process(
                [str(SCRIPT), "proxy", "--", sys.executable, str(UPSTREAM), marker],
                env=base | proxy_env(template, token),
                cwd=tmp_path,
                stderr=err,
            ) as proc:
                assert proc.stdin is not None and proc.stdout is not None
                stdout = BufferedByteReceiveStream(proc.stdout)
                for message in messages:
                    await proc.stdin.send((json.dumps(message) + "\n").encode())
                replies = [json.loads(await stdout.receive_until(b"\n", 1 << 20)) for _ in range(2)]
                upstreams = [
                    p
                    for p in psutil.process_iter(["cmdline"])
                    if (p.info["cmdline"] or [])[1:] == [str(UPSTREAM), marker]
                ]
                await proc.stdin.aclose()  # the client hangs up
                code = await proc.wait()
        stderr = read_back(err)

    assert replies[1]["result"]["content"] == [{"type": "text", "text": "hi"}]
    assert len(upstreams) == 1, "the upstream was not running during the session"
    assert code == 0, stderr[-2000:]
    assert not upstreams[0].is_running() or upstreams[0].status() == psutil.STATUS_ZOMBIE
    assert "Traceback" not in stderr


def test_the_proxy_says_why_it_cannot_start(tmp_path: Path) -> None:
    base = {"PATH": str(SCRIPT.parent) + ":/usr/bin:/bin", "HOME": str(tmp_path)}
    missing = subprocess.run(
        [str(SCRIPT), "proxy", "--", "no-such-mcp-server"],
        env=base
        | {"PANGEA_TOKEN": canary(), "PANGEA_BASE_URL_TEMPLATE": "http://127.0.0.1:9/{SERVICE_NAME}"},
        stdin=subprocess.PIPE,
        capture_output=True,
        text=True,
        timeout=EXIT_TIMEOUT,
        cwd=tmp_path,
        check=False,
    )
    disabled = subprocess.run(
        [str(SCRIPT), "proxy", "--", sys.executable, str(UPSTREAM)],
        env=base | {"PANGEA_TOKEN": canary(), "PANGEA_GUARD": "false"},
        stdin=subprocess.PIPE,
        capture_output=True,
        text=True,
        timeout=EXIT_TIMEOUT,
        cwd=tmp_path,
        check=False,
    )

    not_mcp = subprocess.run(
        [str(SCRIPT), "proxy", "--", sys.executable, "-c", "import sys; sys.exit(5)"],
        env=base
        | {"PANGEA_TOKEN": canary(), "PANGEA_BASE_URL_TEMPLATE": "http://127.0.0.1:9/{SERVICE_NAME}"},
        stdin=subprocess.PIPE,
        capture_output=True,
        text=True,
        timeout=EXIT_TIMEOUT,
        cwd=tmp_path,
        check=False,
    )

    assert not_mcp.returncode == 5
    assert not_mcp.stderr.strip().splitlines()[-1] == (
        f"pangea-mcp proxy: the upstream server ({Path(sys.executable).name}) exited with code 5; stopping"
    )
    assert "Traceback" not in not_mcp.stderr
    assert missing.returncode == 1
    assert missing.stderr.strip().splitlines()[-1] == (
        "pangea-mcp: cannot start the upstream server 'no-such-mcp-server': No such file or directory"
    )
    assert disabled.returncode == 2
    assert "PANGEA_GUARD=false" in disabled.stderr
    assert missing.stdout == disabled.stdout == not_mcp.stdout == ""


async def test_an_http_upstream_is_guarded_the_same_way(fake: FakePangea) -> None:
    fake.guard_blocks("rm -rf /", event_type="tool_input")
    fake.guard_redacts(EMAIL, "<EMAIL_ADDRESS>", event_type="tool_output")
    calls: list[dict[str, Any]] = []
    upstream = build_upstream(calls).http_app(path="/mcp")
    with serve_asgi(upstream, name="the upstream MCP server", lifespan="on") as base:
        server = proxy.build(settings(), f"{base}/mcp", server_name="upstream", transport=fake.transport)
        async with Client(server) as client:
            tools = await client.list_tools()
            user = await client.call_tool("lookup_user", {"user_id": 7})
            blocked = await client.call_tool("echo", {"text": "rm -rf /"}, raise_on_error=False)

    assert [t.name for t in tools] == TOOLS
    assert user.structured_content == {"id": 7, "name": "Alan Grant", "email": "<EMAIL_ADDRESS>"}
    assert blocked.is_error and "blocked the arguments of echo" in text_of(blocked)
    assert tool_calls(calls) == ["lookup_user"]
