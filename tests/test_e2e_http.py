"""End to end over HTTP: the installed `pangea-mcp serve --transport http` on 127.0.0.1, the fake Pangea
on 127.0.0.1, the official MCP client (streamable HTTP) and plain HTTP requests for the front door."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import httpx
import pytest
import uvicorn
from fastmcp.server.auth.providers.jwt import RSAKeyPair
from mcp.shared.exceptions import MCPError
from starlette.requests import Request
from starlette.responses import Response

from tests.e2e_common import INITIALIZE, SCRIPT, TOOLS, canary, text_of
from tests.fake_audit import AuditFake
from tests.fake_pangea import GEOLOCATION, SERVICE_TOKEN, VAULT_ITEM_ID, FakePangea
from tests.http_server import base_env, mcp_session, spawn, until, wait_for

SESSION_TIMEOUT = 90.0
UPSTREAM = Path(__file__).parent / "proxy_upstream.py"
CONFIG_ID = "pci_" + "b" * 32
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


# -- 1. a session with the bearer token; the front door ------------------------------------------------


async def test_bearer_session_calls_tools_and_the_front_door_rejects_what_it_must(tmp_path: Path) -> None:
    service_token, client_token = canary(), canary("mcp_")
    fake = FakePangea(service_token=service_token)
    with fake.serve() as template, anyio.fail_after(SESSION_TIMEOUT):
        env = base_env(template, token=service_token, mcp_auth_token=client_token, log_level="DEBUG")
        with spawn(
            ["serve", "--transport", "http", "--host", "127.0.0.1", "--port", "0"], env, tmp_path
        ) as srv:
            async with mcp_session(srv.url, client_token) as session:
                tools = [t.name for t in (await session.list_tools()).tools]
                geo = await session.call_tool("geolocate", {"ipAddresses": ["8.8.8.8"]})
                whois = await session.call_tool("whois", {"domain": "example.org"})

            async with httpx.AsyncClient(timeout=10) as http:
                body = json.dumps(INITIALIZE)
                missing = await http.post(srv.url, content=body, headers=MCP_HEADERS)
                wrong = await http.post(
                    srv.url,
                    content=body,
                    headers={**MCP_HEADERS, "Authorization": f"Bearer {canary('mcp_')}"},
                )
                other_scheme = await http.post(
                    srv.url, content=body, headers={**MCP_HEADERS, "Authorization": f"Basic {client_token}"}
                )
                good = {**MCP_HEADERS, "Authorization": f"Bearer {client_token}"}
                accepted = await http.post(srv.url, content=body, headers=good)
                foreign_origin = await http.post(
                    srv.url, content=body, headers={**good, "Origin": "https://evil.example"}
                )
                null_origin = await http.post(srv.url, content=body, headers={**good, "Origin": "null"})
                local_origin = await http.post(
                    srv.url, content=body, headers={**good, "Origin": "http://localhost:6274"}
                )
                rebound = await http.post(
                    srv.url, content=body, headers={**good, "Host": f"evil.example:{srv.port}"}
                )
                health_by_ip = await http.get(f"{srv.base}/health", headers={"Host": "10.1.2.3:8080"})
                ready = await http.get(f"{srv.base}/ready")
                health_foreign = await http.get(
                    f"{srv.base}/health", headers={"Origin": "https://evil.example"}
                )
        stderr = srv.stderr()

    assert tools == TOOLS
    assert not geo.is_error, text_of(geo)
    assert geo.structured_content is not None and geo.structured_content["results"][0]["country_code"] == "CO"
    assert not whois.is_error and fake.body("domain-intel", "v1/whois") == {"domain": "example.org"}
    assert fake.bodies("ip-intel", "v2/geolocate") == [{"ips": ["8.8.8.8"]}]

    for rejected in (missing, wrong, other_scheme):
        assert rejected.status_code == 401
        assert rejected.headers["www-authenticate"].startswith("Bearer")
    assert "error=" not in missing.headers["www-authenticate"]  # RFC 6750: no error without credentials
    assert 'error="invalid_token"' in wrong.headers["www-authenticate"]
    assert accepted.status_code == 200 and '"serverInfo"' in accepted.text
    assert foreign_origin.status_code == 403 and "PANGEA_MCP_ALLOWED_ORIGINS" in foreign_origin.text
    assert null_origin.status_code == 403
    assert local_origin.status_code == 200
    assert rebound.status_code == 421 and "PANGEA_MCP_ALLOWED_HOSTS" in rebound.text
    assert health_by_ip.status_code == 200 and health_by_ip.json() == {"status": "ok"}
    assert ready.status_code == 200 and ready.json() == {"status": "ready"}
    assert health_foreign.status_code == 403

    assert stderr.count("pangea-mcp: serving MCP on") == 1
    assert client_token not in stderr and service_token not in stderr
    assert fake.violations == []


# -- 2. JWT -------------------------------------------------------------------------------------------------


async def test_jwt_signed_by_the_configured_key_for_this_audience_is_accepted_others_get_401(
    tmp_path: Path,
) -> None:
    key, other_key = RSAKeyPair.generate(), RSAKeyPair.generate()
    issuer, audience = "https://idp.example", "pangea-mcp"
    fake = FakePangea()
    good = key.create_token(subject="agent-7", issuer=issuer, audience=audience)
    rejected = {
        "another key": other_key.create_token(subject="agent-7", issuer=issuer, audience=audience),
        "another audience": key.create_token(subject="agent-7", issuer=issuer, audience="someone-else"),
        "another issuer": key.create_token(
            subject="agent-7", issuer="https://evil.example", audience=audience
        ),
        "expired": key.create_token(
            subject="agent-7", issuer=issuer, audience=audience, expires_in_seconds=-60
        ),
        "not a JWT": "not-a-jwt",
    }
    with fake.serve() as template, anyio.fail_after(SESSION_TIMEOUT):
        env = base_env(
            template,
            token=SERVICE_TOKEN,
            mcp_jwt_public_key=key.public_key,
            mcp_jwt_issuer=issuer,
            mcp_jwt_audience=audience,
        )
        # A JWT key is client authentication: a non-loopback bind is allowed (0.0.0.0 is not used here).
        with spawn(["serve", "--transport", "http", "--port", "0"], env, tmp_path) as srv:
            async with mcp_session(srv.url, good) as session:
                vpn = await session.call_tool("is_vpn", {"ipAddresses": ["8.8.8.8"]})
            async with httpx.AsyncClient(timeout=10) as http:
                answers = {
                    why: await http.post(
                        srv.url,
                        content=json.dumps(INITIALIZE),
                        headers={**MCP_HEADERS, "Authorization": f"Bearer {jwt}"},
                    )
                    for why, jwt in rejected.items()
                }
        stderr = srv.stderr()

    assert not vpn.is_error, text_of(vpn)
    assert {why: r.status_code for why, r in answers.items()} == dict.fromkeys(rejected, 401)
    assert all('error="invalid_token"' in r.headers["www-authenticate"] for r in answers.values())
    assert good not in stderr


# -- 3. refusing an unauthenticated public bind ----------------------------------------------------------


@pytest.mark.parametrize("host", ["0.0.0.0", "::"])
def test_a_public_bind_without_client_auth_is_refused_in_one_line(tmp_path: Path, host: str) -> None:
    done = subprocess.run(
        [str(SCRIPT), "serve", "--transport", "http", "--host", host, "--port", "0"],
        env=base_env(token=canary()),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    [line] = done.stderr.strip().splitlines()
    assert f"refusing to serve HTTP on {host}" in line and "PANGEA_MCP_AUTH_TOKEN" in line


def test_plain_pangea_mcp_takes_the_transport_from_settings(tmp_path: Path) -> None:
    env = base_env(token=canary(), mcp_transport="http", mcp_host="0.0.0.0")
    done = subprocess.run([str(SCRIPT)], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "refusing to serve HTTP on 0.0.0.0" in done.stderr


# -- 4. readiness while Vault is slow; SIGTERM in the middle of a call ------------------------------------


async def test_ready_only_after_vault_then_sigterm_lets_the_call_in_flight_finish(tmp_path: Path) -> None:
    vault_token, service_token, client_token = canary(), canary(), canary("mcp_")
    fake = AuditFake(service_token=service_token, vault_token=vault_token)
    item = fake.vault_items[VAULT_ITEM_ID]
    fake.on("vault", "v2/get", result=item, delay=4.0)
    fake.on("ip-intel", "v2/geolocate", result={"data": {"8.8.8.8": GEOLOCATION}}, delay=3.0)
    with fake.serve() as template, anyio.fail_after(SESSION_TIMEOUT):
        env = base_env(
            template,
            vault_token=vault_token,
            vault_item_id=VAULT_ITEM_ID,
            mcp_auth_token=client_token,
            audit_trail="true",
            audit_trail_interval="30",  # flushed only by the shutdown
            audit_config_id=CONFIG_ID,
            mcp_shutdown_timeout="20",
            log_level="INFO",
        )
        with spawn(["serve", "--transport", "http", "--port", "0"], env, tmp_path) as srv:
            async with httpx.AsyncClient(timeout=10) as http:
                # Listening before Vault answered: alive, not ready, /mcp not served yet.
                health = await http.get(f"{srv.base}/health")
                not_ready = await http.get(f"{srv.base}/ready")
                early = await http.post(
                    srv.url,
                    content=json.dumps(INITIALIZE),
                    headers={**MCP_HEADERS, "Authorization": f"Bearer {client_token}"},
                )
                await wait_for(http, f"{srv.base}/ready", 200)

                async with mcp_session(srv.url, client_token) as session, anyio.create_task_group() as tasks:
                    # Listed first: the client checks a result against the tool's output schema, and
                    # would otherwise list the tools after the call, when the server no longer accepts.
                    await session.list_tools()
                    results = []

                    async def call() -> None:
                        results.append(await session.call_tool("geolocate", {"ipAddresses": ["8.8.8.8"]}))

                    tasks.start_soon(call)
                    await until(lambda: bool(fake.calls("ip-intel", "v2/geolocate")), 20)
                    srv.terminate()
                    draining = await wait_for(http, f"{srv.base}/ready", 503)
                    refused = await http.post(
                        srv.url,
                        content=json.dumps(INITIALIZE),
                        headers={**MCP_HEADERS, "Authorization": f"Bearer {client_token}"},
                    )
            code = await srv.exit_code()
        stderr = srv.stderr()

    assert health.status_code == 200
    assert not_ready.status_code == 503 and not_ready.json() == {"status": "starting"}
    assert early.status_code == 503 and early.headers["retry-after"] == "1"
    [result] = results
    assert not result.is_error, text_of(result)
    assert result.structured_content is not None
    assert result.structured_content["results"][0]["country_code"] == "CO"
    assert draining.json() == {"status": "stopping"}
    assert refused.status_code == 503
    assert code == 0, stderr[-3000:]
    # The lifespan exit ran: the audit trail (interval 30 s) was flushed on the way out.
    events = [e for body in fake.bodies("audit", "v2/log_async") for e in body["events"]]
    assert any("geolocate" in json.dumps(e) for e in events), events
    assert "Traceback" not in stderr
    for secret in (vault_token, service_token, client_token):
        assert secret not in stderr
    assert fake.violations == []


# -- 5. the rate limit and the response cap ---------------------------------------------------------------


async def test_rate_limit_trips_and_an_oversize_result_is_an_error(tmp_path: Path) -> None:
    token = canary()
    fake = FakePangea(service_token=token)
    many = [f"8.8.{i // 256}.{i % 256}" for i in range(1, 80)]
    with fake.serve() as template, anyio.fail_after(SESSION_TIMEOUT):
        env = base_env(
            template, token=token, mcp_rate_limit="0.01", mcp_rate_burst="4", mcp_max_response_bytes="2048"
        )
        with spawn(["serve", "--transport", "http", "--port", "0"], env, tmp_path) as srv:
            async with mcp_session(srv.url) as session:  # request 1: initialize
                small = await session.call_tool("is_vpn", {"ipAddresses": ["8.8.8.8"]})  # 2
                big = await session.call_tool("geolocate", {"ipAddresses": many})  # 3
                # The burst (4) is spent by now or within a few more requests; the rate refills nothing.
                limited: MCPError | None = None
                attempts = 0
                for attempts in range(1, 6):  # noqa: B007
                    try:
                        await session.call_tool("is_vpn", {"ipAddresses": ["8.8.4.4"]})
                    except MCPError as exc:
                        limited = exc
                        break
    assert not small.is_error
    assert big.is_error
    assert "too large" in text_of(big) and "PANGEA_MCP_MAX_RESPONSE_BYTES" in text_of(big)
    assert "fewer items" in text_of(big)
    assert limited is not None, "the rate limit never tripped"
    assert "Slow down" in limited.error.message and "0.01 requests per second" in limited.error.message
    assert attempts <= 3
    # Every is_vpn call before the limited one reached Pangea; the limited one did not.
    assert len(fake.calls("ip-intel", "v2/vpn")) == attempts


# -- 6. two stateless replicas behind a round-robin forwarder ----------------------------------------------


@asynccontextmanager
async def round_robin(backends: list[str]) -> AsyncIterator[tuple[str, list[int]]]:
    """A tiny HTTP load balancer on 127.0.0.1: each request goes to the next backend; counts per backend."""
    counts = [0] * len(backends)
    turn = 0
    client = httpx.AsyncClient(timeout=30)

    async def app(scope: dict[str, object], receive: object, send: object) -> None:
        nonlocal turn
        if scope["type"] != "http":
            return
        request = Request(scope, receive)  # type: ignore[arg-type]
        index, turn = turn % len(backends), turn + 1
        counts[index] += 1
        headers = {k: v for k, v in request.headers.items() if k not in ("host", "content-length")}
        upstream = await client.request(
            request.method, backends[index] + request.url.path, content=await request.body(), headers=headers
        )
        drop = {"content-length", "transfer-encoding", "connection", "content-encoding"}
        kept = {k: v for k, v in upstream.headers.items() if k not in drop}
        await Response(upstream.content, status_code=upstream.status_code, headers=kept)(scope, receive, send)  # type: ignore[arg-type]

    import socket

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_level="warning"))
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(server.serve, [sock])
        await until(lambda: server.started, 10)
        try:
            yield f"http://127.0.0.1:{port}/mcp", counts
        finally:
            server.should_exit = True
            await client.aclose()
    sock.close()


async def test_two_stateless_replicas_serve_one_client_without_sticky_sessions(tmp_path: Path) -> None:
    token, client_token = canary(), canary("mcp_")
    fake = FakePangea(service_token=token)
    with fake.serve() as template, anyio.fail_after(SESSION_TIMEOUT):
        env = base_env(template, token=token, mcp_auth_token=client_token, mcp_stateless="true")
        args = ["serve", "--transport", "http", "--port", "0"]
        with spawn(args, env, tmp_path, "a") as a, spawn(args, env, tmp_path, "b") as b:
            async with round_robin([a.base, b.base]) as (url, counts):
                async with mcp_session(url, client_token) as session:
                    tools = (await session.list_tools()).tools
                    results = [
                        await session.call_tool("lookup_ip_address_reputation", {"ipAddresses": [ip]})
                        for ip in ("8.8.8.8", "1.1.1.1", "9.9.9.9", "8.8.4.4")
                    ]
                calls = list(counts)
    assert len(tools) == 7
    assert [r.is_error for r in results] == [False] * 4, [text_of(r) for r in results if r.is_error]
    assert [r.structured_content["results"][0]["ip"] for r in results if r.structured_content] == [
        "8.8.8.8",
        "1.1.1.1",
        "9.9.9.9",
        "8.8.4.4",
    ]
    # initialize, notifications/initialized, tools/list and 4 calls (the DELETE is not sent: no session).
    assert sum(calls) >= 7 and min(calls) >= 3, calls
    assert len(fake.calls("ip-intel", "v2/reputation")) == 4


# -- 7. the proxy over HTTP ----------------------------------------------------------------------------------


async def test_the_proxy_serves_a_guarded_stdio_server_over_http(tmp_path: Path) -> None:
    token, client_token = canary(), canary("mcp_")
    fake = FakePangea(service_token=token)
    fake.guard_blocks("DROP TABLE", event_type="tool_input")
    with fake.serve() as template, anyio.fail_after(SESSION_TIMEOUT):
        env = base_env(template, token=token, mcp_auth_token=client_token)
        del env["PANGEA_GUARD"]  # the proxy refuses to run with the guard off
        args = ["proxy", "--transport", "http", "--port", "0", "--", sys.executable, str(UPSTREAM)]
        with spawn(args, env, tmp_path) as srv:
            async with httpx.AsyncClient(timeout=10) as http:
                ready = await wait_for(http, f"{srv.base}/ready", 200)
                anonymous = await http.post(srv.url, content=json.dumps(INITIALIZE), headers=MCP_HEADERS)
            async with mcp_session(srv.url, client_token) as session:
                tools = [t.name for t in (await session.list_tools()).tools]
                echo = await session.call_tool("echo", {"text": "hello"})
                dropped = await session.call_tool("echo", {"text": "DROP TABLE users"})
            srv.terminate()
            code = await srv.exit_code()
    assert anonymous.status_code == 401
    assert ready.json() == {"status": "ready"}
    assert "echo" in tools
    assert not echo.is_error and text_of(echo) == "hello"
    assert dropped.is_error and "blocked the arguments of echo" in text_of(dropped)
    assert code == 0
    assert fake.calls("ai-guard", "v1/guard")
