"""End to end: the installed `pangea-mcp` console script over stdio, driven by the official MCP client.

The fake Pangea is served on 127.0.0.1; the child process gets only PANGEA_* variables (and PATH/HOME),
runs in an empty directory (no stray .env) and writes its stderr to a file the tests inspect.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, suppress
from importlib.metadata import version
from pathlib import Path
from typing import Any, TextIO

import anyio
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream
from jsonschema import Draft202012Validator
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.shared.message import SessionMessage
from mcp.types import CallToolResult
from mcp.types.jsonrpc import jsonrpc_message_adapter

import pangea_mcp
from tests.e2e_common import INITIALIZE, SCRIPT, TOOLS, canary, child_env, text_of
from tests.fake_pangea import VAULT_ITEM_ID, FakePangea

SESSION_TIMEOUT = 25.0  # one whole stdio session, process start (about 3 s of imports) included
EXIT_TIMEOUT = 20.0  # a failing start must end by itself well within this

IP_TOOLS = {
    "lookup_ip_address_reputation": "v2/reputation",
    "geolocate": "v2/geolocate",
    "lookup_domain_from_ip_address": "v2/domain",
    "is_vpn": "v2/vpn",
    "is_proxy": "v2/proxy",
}
PUBLIC_IPS = ["190.28.74.251", "8.8.8.8"]
PRIVATE_IP = "10.1.2.3"
OTHER_ITEM_ID = "pvi_" + "b" * 32


def canaries(n: int) -> list[str]:
    values: set[str] = set()
    while len(values) < n:
        values.add(canary())
    return sorted(values)


def assert_no_canary(where: str, text: str, secrets_: list[str]) -> None:
    leaked = [s for s in secrets_ if s in text]
    assert not leaked, f"{len(leaked)} secret(s) leaked into {where}"


class Transcript:
    """Everything the client received from the server, as JSON text (results, notifications, errors)."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def text(self) -> str:
        return "\n".join(self.lines)


async def _tap(
    source: Any, sink: anyio.abc.ObjectSendStream[SessionMessage | Exception], transcript: Transcript
) -> None:
    async with sink:
        async for item in source:
            if isinstance(item, SessionMessage):
                transcript.lines.append(item.message.model_dump_json(by_alias=True))
            else:
                transcript.lines.append(repr(item))
            await sink.send(item)


@asynccontextmanager
async def connect(
    env: dict[str, str], cwd: Path, errlog: TextIO, transcript: Transcript, args: Sequence[str] = ()
) -> AsyncIterator[ClientSession]:
    """Spawn the console script (with `args`) and yield an initialized session; every incoming message is
    recorded."""
    params = StdioServerParameters(command=str(SCRIPT), args=list(args), env=env, cwd=cwd)
    async with stdio_client(params, errlog=errlog) as (read, write):
        send, receive = anyio.create_memory_object_stream[SessionMessage | Exception](0)
        async with anyio.create_task_group() as tg:
            tg.start_soon(_tap, read, send, transcript)
            async with ClientSession(receive, write, read_timeout_seconds=15) as session:
                await session.initialize()
                yield session
            tg.cancel_scope.cancel()


@pytest.fixture
def stderr_file(tmp_path: Path) -> Iterator[TextIO]:
    with (tmp_path / "stderr.log").open("w+", encoding="utf-8") as f:
        yield f


def read_back(f: TextIO) -> str:
    f.flush()
    f.seek(0)
    return f.read()


def validate_output(schema: dict[str, Any], result: CallToolResult) -> dict[str, Any]:
    assert not result.is_error, text_of(result)
    assert isinstance(result.structured_content, dict)
    Draft202012Validator.check_schema(schema)
    errors = [e.message for e in Draft202012Validator(schema).iter_errors(result.structured_content)]
    assert errors == []
    return result.structured_content


def polled_ids(fake: FakePangea, service: str) -> list[str]:
    return [
        r.path.removeprefix("request/") for r in fake.requests if r.method == "GET" and r.service == service
    ]


# -- 1. Vault, every tool, rotation, bad arguments, no leaks ------------------------------------------------------


async def test_vault_session_serves_every_tool_survives_rotation_and_leaks_no_secret(
    tmp_path: Path, stderr_file: TextIO
) -> None:
    vault_token, service_token = canaries(2)
    fake = FakePangea(service_token=service_token, vault_token=vault_token)
    scripted = {
        "190.28.74.251": {"verdict": "malicious", "score": 100, "category": ["Malware"]},
        "8.8.8.8": {"verdict": "benign", "score": 0, "category": []},
    }
    fake.on("ip-intel", "v2/reputation", result={"data": scripted})
    transcript = Transcript()
    progress_seen: list[str] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        progress_seen.append(f"{progress} {total} {message}")

    with fake.serve() as template, anyio.fail_after(SESSION_TIMEOUT):
        env = child_env(template, vault_token=vault_token, vault_item_id=VAULT_ITEM_ID, log_level="DEBUG")
        async with connect(env, tmp_path, stderr_file, transcript) as session:
            listed = (await session.list_tools()).tools
            tools = {tool.name: tool for tool in listed}

            # Every tool, with good arguments; the IP batches answer 202 and are polled.
            results: dict[str, CallToolResult] = {}
            for name in IP_TOOLS:
                results[name] = await session.call_tool(
                    name, {"ipAddresses": [*PUBLIC_IPS, PRIVATE_IP, "8.8.8.8"]}, progress_callback=on_progress
                )
            results["lookup_domain_reputation"] = await session.call_tool(
                "lookup_domain_reputation", {"domains": ["Example.COM.", "pangea.cloud"]}
            )
            results["whois"] = await session.call_tool("whois", {"domain": "example.org"})

            # Rotation: the old token is refused at once; the server must re-read Vault and retry.
            new_token = fake.rotate_token()
            rotated = await session.call_tool("geolocate", {"ipAddresses": ["1.1.1.1"]})

            # Bad arguments never reach Pangea, and the server keeps serving.
            sent_before = len(fake.requests)
            bad = [
                ("ipAddresses", await session.call_tool("is_vpn", {"ipAddresses": ["999.1.2.3"]})),
                ("ipAddresses", await session.call_tool("is_vpn", {"ipAddresses": []})),
                (
                    "ipAddresses",
                    await session.call_tool(
                        "is_proxy", {"ipAddresses": [f"8.8.{i // 256}.{i % 256}" for i in range(101)]}
                    ),
                ),
                (
                    "domains",
                    await session.call_tool("lookup_domain_reputation", {"domains": ["exa mple..com"]}),
                ),
                ("domain", await session.call_tool("whois", {"domain": "exa mple..com"})),
            ]
            sent_for_bad = len(fake.requests) - sent_before
            after_bad = await session.call_tool("is_vpn", {"ipAddresses": ["8.8.4.4"]})

    stderr = read_back(stderr_file)

    # The tool list: exact names in order, each fully described.
    assert [tool.name for tool in listed] == TOOLS
    for tool in listed:
        assert tool.description and tool.description.strip(), tool.name
        assert tool.input_schema.get("type") == "object", tool.name
        assert tool.output_schema and tool.output_schema.get("type") == "object", tool.name
        assert tool.annotations is not None, tool.name
        assert tool.annotations.read_only_hint is True, tool.name
        assert tool.annotations.open_world_hint is True, tool.name
        assert tool.annotations.idempotent_hint is True, tool.name

    # Every result conforms to its tool's output schema.
    reports = {name: validate_output(tools[name].output_schema or {}, r) for name, r in results.items()}

    # What Pangea received: one batch per IP tool, public addresses only, deduplicated, order kept.
    assert fake.bodies("vault", "v2/get")[0] == {"id": VAULT_ITEM_ID}
    # The canaries really were in use, so their absence below means something.
    assert {r.headers.get("authorization") for r in fake.calls("vault", "v2/get")} == {
        f"Bearer {vault_token}"
    }
    for name, path in IP_TOOLS.items():
        assert fake.bodies("ip-intel", path)[0] == {"ips": PUBLIC_IPS}, name
        report = reports[name]
        assert [item["ip"] for item in report["results"]] == [*PUBLIC_IPS, PRIVATE_IP], name
        assert report["results"][2]["scope"] == "private" and report["results"][2]["note"], name
        assert report["request_id"] in polled_ids(fake, "ip-intel"), name  # the answer came from polling
    reputation = reports["lookup_ip_address_reputation"]["results"]
    assert [(r["verdict"], r["score"], r["category"]) for r in reputation] == [
        ("malicious", 100, ["Malware"]),
        ("benign", 0, []),
        (None, None, []),
    ]
    assert reports["geolocate"]["results"][0]["country_code"] == "CO"
    assert fake.bodies("domain-intel", "v2/reputation") == [{"domains": ["example.com", "pangea.cloud"]}]
    assert [r["domain"] for r in reports["lookup_domain_reputation"]["results"]] == [
        "example.com",
        "pangea.cloud",
    ]
    assert fake.bodies("domain-intel", "v1/whois") == [{"domain": "example.org"}]
    assert reports["whois"]["domain"] == "example.org"
    assert reports["whois"]["registrar_name"]
    assert progress_seen, "polling a 202 reported no progress"

    # Rotation: Vault was read again and the retry carried the new token.
    rotated_report = validate_output(tools["geolocate"].output_schema or {}, rotated)
    assert rotated_report["results"][0]["ip"] == "1.1.1.1"
    assert rotated_report["results"][0]["country"] == "Colombia"
    assert len(fake.calls("vault", "v2/get")) == 2
    geolocate_auth = [r.headers.get("authorization") for r in fake.calls("ip-intel", "v2/geolocate")]
    assert geolocate_auth[-2:] == [f"Bearer {service_token}", f"Bearer {new_token}"]

    # Bad arguments: an error result naming the argument, and no HTTP call.
    for argument, result in bad:
        assert result.is_error, argument
        assert argument in text_of(result), (argument, text_of(result))
    assert sent_for_bad == 0
    assert validate_output(tools["is_vpn"].output_schema or {}, after_bad)["results"][0]["ip"] == "8.8.4.4"

    assert fake.violations == []

    # No secret anywhere: results, every message the client received, the child's stderr.
    secrets_ = [vault_token, service_token, new_token]
    assert "DEBUG" in stderr and "request_id=" in stderr, "the leak check needs the debug log to be on"
    for name, result in {**results, "rotated": rotated, "after_bad": after_bad}.items():
        assert_no_canary(f"{name} result", result.model_dump_json(by_alias=True), secrets_)
    for name, result in bad:
        assert_no_canary(f"{name} error", result.model_dump_json(by_alias=True), secrets_)
    assert sum('"notifications/progress"' in line for line in transcript.lines) >= len(IP_TOOLS)
    assert_no_canary("the messages the client received", transcript.text(), secrets_)
    assert_no_canary("progress messages", "\n".join(progress_seen), secrets_)
    assert_no_canary("stderr", stderr, secrets_)
    # Nothing even tried to print a secret (the scrubber would have masked it).
    assert "[REDACTED]" not in stderr
    assert "[REDACTED]" not in transcript.text()


# -- 2. Static token rejected by Pangea ---------------------------------------------------------------------------


async def test_static_token_rejected_is_an_auth_error_with_request_id(
    tmp_path: Path, stderr_file: TextIO
) -> None:
    service_token = canary()
    fake = FakePangea(service_token=service_token)
    fake.on("ip-intel", "v2/reputation", status="Unauthorized")
    transcript = Transcript()

    with fake.serve() as template, anyio.fail_after(SESSION_TIMEOUT):
        env = child_env(template, token=service_token, log_level="DEBUG")
        async with connect(env, tmp_path, stderr_file, transcript) as session:
            result = await session.call_tool(
                "lookup_ip_address_reputation", {"ipAddresses": ["190.28.74.251"]}
            )
            again = await session.call_tool(
                "lookup_ip_address_reputation", {"ipAddresses": ["190.28.74.251"]}
            )

    stderr = read_back(stderr_file)
    assert result.is_error
    message = text_of(result)
    assert re.search(r"authenticat|token was rejected", message, re.IGNORECASE), message
    assert re.search(r"request_id: prq_[a-z0-9]{32}\b", message), message
    assert fake.calls("vault", "v2/get") == []  # a static token never touches Vault
    assert len(fake.calls("ip-intel", "v2/reputation")) == 2  # no retry loop on 401
    assert not again.is_error  # the scripted 401 was one-off; the server still serves
    assert fake.violations == []
    assert "request_id=" in stderr
    assert_no_canary("the error result", result.model_dump_json(by_alias=True), [service_token])
    assert_no_canary("the messages the client received", transcript.text(), [service_token])
    assert_no_canary("stderr", stderr, [service_token])


# -- 3. Startup failures: exit by themselves, one clear line, nothing on stdout ----------------------------------


def run_until_exit(env: dict[str, str], cwd: Path) -> tuple[int, str, str]:
    """Start the script, send an initialize request, keep stdin open, and wait for it to exit by itself."""
    base = {"PATH": str(SCRIPT.parent) + ":/usr/bin:/bin", "HOME": str(cwd)}
    out_path, err_path = cwd / "stdout.txt", cwd / "stderr.txt"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        proc = subprocess.Popen(
            [str(SCRIPT)], stdin=subprocess.PIPE, stdout=out, stderr=err, env=base | env, cwd=cwd
        )
        assert proc.stdin is not None
        try:
            with suppress(BrokenPipeError):  # a bad setting may end the process before it reads
                proc.stdin.write((json.dumps(INITIALIZE) + "\n").encode())
                proc.stdin.flush()
            try:
                code = proc.wait(timeout=EXIT_TIMEOUT)
            except subprocess.TimeoutExpired:
                pytest.fail(f"pangea-mcp did not exit by itself within {EXIT_TIMEOUT:g}s")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=5)
            with suppress(BrokenPipeError):
                proc.stdin.close()
    return code, out_path.read_text(), err_path.read_text()


def test_missing_vault_item_stops_startup_naming_the_item(tmp_path: Path) -> None:
    vault_token, service_token = canaries(2)
    fake = FakePangea(service_token=service_token, vault_token=vault_token)
    with fake.serve() as template:
        code, stdout, stderr = run_until_exit(
            child_env(template, vault_token=vault_token, vault_item_id=OTHER_ITEM_ID, log_level="DEBUG"),
            tmp_path,
        )

    assert code != 0
    assert stdout == ""
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("pangea-mcp: "), last  # one clear line, after the debug log
    assert OTHER_ITEM_ID in last
    assert "not found" in last.lower()
    assert "Traceback" not in stderr
    assert fake.bodies("vault", "v2/get") == [{"id": OTHER_ITEM_ID}]
    assert fake.calls("ip-intel", "v2/reputation") == []
    assert fake.violations == []
    assert_no_canary("stderr", stderr, [vault_token, service_token])


def test_invalid_setting_stops_startup_naming_the_variable(tmp_path: Path) -> None:
    token = canary()
    code, stdout, stderr = run_until_exit(child_env(token=token, request_timeout="abc"), tmp_path)

    assert code != 0
    assert stdout == ""
    assert "PANGEA_REQUEST_TIMEOUT" in stderr
    assert "Traceback" not in stderr
    assert_no_canary("stderr", stderr, [token])


def test_pangea_backend_without_credentials_stops_startup_naming_pangea_token(tmp_path: Path) -> None:
    # With no token the local backend answers (tests/test_e2e_local.py); asking for Pangea explicitly
    # without one is a configuration error.
    env = child_env("http://127.0.0.1:9/{SERVICE_NAME}", backend="pangea")
    code, stdout, stderr = run_until_exit(env, tmp_path)

    assert code == 2
    assert stdout == ""
    assert "PANGEA_TOKEN" in stderr
    assert "Traceback" not in stderr


def test_version_flag_prints_the_version(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(SCRIPT), "--version"],
        capture_output=True,
        text=True,
        timeout=EXIT_TIMEOUT,
        cwd=tmp_path,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"pangea-mcp {pangea_mcp.__version__}"
    assert pangea_mcp.__version__ == version("pangea-mcp")


# -- 4. stdout carries JSON-RPC and nothing else ------------------------------------------------------------------


async def test_stdout_carries_only_json_rpc(tmp_path: Path, stderr_file: TextIO) -> None:
    token = canary()
    fake = FakePangea(service_token=token)
    lines: list[bytes] = []

    async def request(
        stdin: Any, stdout: BufferedByteReceiveStream, message: dict[str, Any]
    ) -> dict[str, Any]:
        await stdin.send((json.dumps(message) + "\n").encode())
        while True:
            line = await stdout.receive_until(b"\n", 1 << 20)
            lines.append(line)
            reply = json.loads(line)
            if isinstance(reply, dict) and reply.get("id") == message["id"]:
                return reply

    with fake.serve() as template, anyio.fail_after(SESSION_TIMEOUT):
        env = {"PATH": str(SCRIPT.parent) + ":/usr/bin:/bin", "HOME": str(tmp_path)}
        env |= child_env(template, token=token, log_level="DEBUG")
        async with await anyio.open_process([str(SCRIPT)], env=env, cwd=tmp_path, stderr=stderr_file) as proc:
            assert proc.stdin is not None and proc.stdout is not None
            stdout = BufferedByteReceiveStream(proc.stdout)
            init = await request(proc.stdin, stdout, INITIALIZE)
            await proc.stdin.send(b'{"jsonrpc": "2.0", "method": "notifications/initialized"}\n')
            listed = await request(proc.stdin, stdout, {"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
            called = await request(
                proc.stdin,
                stdout,
                {
                    "jsonrpc": "2.0",
                    "id": 3,
                    "method": "tools/call",
                    "params": {
                        "name": "geolocate",
                        "arguments": {"ipAddresses": PUBLIC_IPS},
                        "_meta": {"progressToken": "p1"},
                    },
                },
            )
            failed = await request(
                proc.stdin,
                stdout,
                {
                    "jsonrpc": "2.0",
                    "id": 4,
                    "method": "tools/call",
                    "params": {"name": "whois", "arguments": {"domain": "exa mple..com"}},
                },
            )
            await proc.stdin.aclose()  # end of the session: the server must exit by itself
            while True:
                try:
                    lines.append(await stdout.receive_until(b"\n", 1 << 20))
                except (anyio.EndOfStream, anyio.IncompleteRead):
                    break
            rest = stdout.buffer
            code = await proc.wait()

    assert rest == b"", f"stdout ended with a partial line: {rest[:200]!r}"
    assert len(lines) >= 4
    for line in lines:
        message = json.loads(line)  # raises on anything that is not JSON
        jsonrpc_message_adapter.validate_python(message)
    assert init["result"]["serverInfo"]["name"] == "pangea-mcp"
    assert [t["name"] for t in listed["result"]["tools"]] == TOOLS
    assert called["result"]["isError"] is False
    assert called["result"]["structuredContent"]["results"][0]["ip"] == PUBLIC_IPS[0]
    assert failed["result"]["isError"] is True
    assert any(json.loads(line).get("method") == "notifications/progress" for line in lines)
    assert code == 0, read_back(stderr_file)[-2000:]
    assert fake.violations == []
    assert_no_canary("stdout", b"".join(lines).decode(), [token])
