"""The HTTP front door and limits in-process: Host/Origin rules, health/readiness gate, auth building,
the bind refusal, the result-size cap and the rate limit (through FastMCP's in-memory client)."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import httpx
import pytest
from fastmcp import Client
from fastmcp.exceptions import ToolError
from fastmcp.server.auth import MultiAuth
from fastmcp.server.auth.providers.jwt import JWTVerifier, RSAKeyPair
from mcp.shared.exceptions import MCPError
from pydantic import SecretStr
from starlette.types import Receive, Scope, Send

from pangea_mcp import cli
from pangea_mcp.errors import StartupError
from pangea_mcp.http import BearerToken, Front, bind_refusal, build_auth, is_loopback, transport_middleware
from pangea_mcp.http_limits import ClientRateLimit, Readiness
from pangea_mcp.server import build_server
from tests.conftest import make_settings
from tests.fake_pangea import FakePangea

# -- the front door -------------------------------------------------------------------------------------


class Behind:
    """What Front lets through: records the requests, can be held open to test draining."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        self.release = anyio.Event()
        self.hold = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.paths.append(scope["path"])
        if self.hold:
            await self.release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"behind"})


def front(
    readiness: Readiness | None = None, bind: str = "127.0.0.1", **settings: object
) -> tuple[Front, Behind]:
    behind = Behind()
    if readiness is None:
        readiness = Readiness()
        readiness.started(lambda: True)
    return Front(behind, make_settings(**settings), bind, readiness), behind


async def get(app: Front, path: str, method: str = "POST", **headers: str) -> httpx.Response:
    host = headers.pop("host", "127.0.0.1:8080")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=f"http://{host}") as client:
        return await client.request(method, path, headers=headers)


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("127.0.0.1:8080", True),
        ("localhost:8080", True),
        ("localhost", True),
        ("[::1]:8080", True),
        ("127.8.9.10", True),
        ("10.0.0.5:8080", True),  # the bind host
        ("mcp.internal:8080", True),  # allowed with its port
        ("mcp.internal:9999", False),  # ... and only with it
        ("agents.corp.example", True),  # a wildcard entry
        ("corp.example", False),
        ("evil.example", False),
        ("localhost.evil.example", False),
        ("127.0.0.1.evil.example", False),
        ("", False),
    ],
)
def test_host_allow_list(host: str, allowed: bool) -> None:
    app, _ = front(bind="10.0.0.5", mcp_allowed_hosts="mcp.internal:8080,*.corp.example")
    assert app.host_allowed(host) is allowed


def test_star_allows_any_host_and_a_wildcard_bind_adds_no_name() -> None:
    assert front(mcp_allowed_hosts="*")[0].host_allowed("anything.example:1")
    assert not front(bind="0.0.0.0")[0].host_allowed("0.0.0.0:8080")


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("http://localhost:6274", True),
        ("https://127.0.0.1", True),
        ("http://[::1]:3000", True),
        ("https://app.example", True),
        ("https://app.example:443", True),  # default port normalised
        ("http://app.example", False),  # other scheme
        ("https://app.example:8443", False),
        ("https://evil.example", False),
        ("null", False),
        ("file://", False),
        ("https://localhost.evil.example", False),
    ],
)
def test_origin_allow_list(origin: str, allowed: bool) -> None:
    app, _ = front(mcp_allowed_origins="https://app.example")
    assert app.origin_allowed(origin) is allowed


async def test_rejections_never_reach_the_mcp_app_and_say_which_setting_to_change() -> None:
    app, behind = front()
    bad_host = await get(app, "/mcp", host="evil.example:8080")
    bad_origin = await get(app, "/mcp", Origin="https://evil.example")
    fine = await get(app, "/mcp", Origin="http://localhost:3000")
    assert (bad_host.status_code, bad_origin.status_code, fine.status_code) == (421, 403, 200)
    assert "PANGEA_MCP_ALLOWED_HOSTS" in bad_host.json()["error"]
    assert "PANGEA_MCP_ALLOWED_ORIGINS" in bad_origin.json()["error"]
    assert behind.paths == ["/mcp"]


async def test_health_answers_any_host_ready_follows_the_lifespan() -> None:
    readiness = Readiness()
    app, behind = front(readiness)
    loaded = False

    async def state() -> tuple[int, int, int]:
        health = await get(app, "/health", "GET", host="10.9.8.7:8080")
        ready = await get(app, "/ready", "GET", host="10.9.8.7:8080")
        mcp = await get(app, "/mcp")
        return health.status_code, ready.status_code, mcp.status_code

    assert await state() == (200, 503, 503)  # starting
    readiness.started(lambda: loaded)
    assert await state() == (200, 503, 200)  # started, token not in memory
    loaded = True
    assert await state() == (200, 200, 200)
    readiness.draining = True
    assert await state() == (200, 503, 503)
    assert (await get(app, "/ready", "GET")).json() == {"status": "stopping"}
    assert behind.paths == ["/mcp", "/mcp"]


async def test_draining_waits_for_requests_in_flight_but_not_for_event_streams() -> None:
    app, behind = front()
    behind.hold = True
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(get, app, "/mcp", "GET")  # an SSE stream: not counted
        tasks.start_soon(get, app, "/mcp", "POST")
        with anyio.fail_after(5):
            while len(behind.paths) < 2:
                await anyio.lowlevel.checkpoint()
        assert app.in_flight == 1
        with anyio.move_on_after(0.05) as waited:
            await app.drained()
        assert waited.cancelled_caught
        behind.release.set()
        with anyio.fail_after(5):
            await app.drained()
    assert app.in_flight == 0


# -- binding and auth ------------------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "[::1]", "127.0.0.2"])
def test_loopback_names(host: str) -> None:
    assert is_loopback(host)
    assert bind_refusal(make_settings(), host) is None


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.5", "example.com"])
def test_a_public_bind_needs_client_auth(host: str) -> None:
    assert not is_loopback(host)
    refusal = bind_refusal(make_settings(), host)
    assert refusal is not None and host in refusal and "PANGEA_MCP_AUTH_TOKEN" in refusal
    assert bind_refusal(make_settings(mcp_auth_token=SecretStr("t0ken-long-enough")), host) is None
    assert bind_refusal(make_settings(mcp_jwt_jwks_uri="https://idp.example/jwks.json"), host) is None


async def test_bearer_token_accepts_only_the_exact_token() -> None:
    verifier = BearerToken(SecretStr("s3cret-token"))
    accepted = await verifier.verify_token("s3cret-token")
    assert accepted is not None and accepted.client_id == BearerToken.CLIENT_ID
    for wrong in ("s3cret-toke", "s3cret-token ", "S3CRET-TOKEN", "", "s3cret-token-and-more"):
        assert await verifier.verify_token(wrong) is None


async def test_auth_from_settings() -> None:
    assert build_auth(make_settings()) is None
    assert isinstance(build_auth(make_settings(mcp_auth_token=SecretStr("tok-tok-tok"))), BearerToken)
    key = RSAKeyPair.generate()
    jwt = build_auth(make_settings(mcp_jwt_public_key=key.public_key, mcp_jwt_audience="aud"))
    assert isinstance(jwt, JWTVerifier) and jwt.algorithm == "RS256" and jwt.audience == "aud"
    both = build_auth(
        make_settings(mcp_auth_token=SecretStr("tok-tok-tok"), mcp_jwt_public_key=key.public_key)
    )
    assert isinstance(both, MultiAuth)
    assert await both.verify_token("tok-tok-tok") is not None
    assert await both.verify_token(key.create_token(subject="a")) is not None
    assert await both.verify_token("nope") is None
    with pytest.raises(StartupError, match="not a PEM public key"):
        build_auth(make_settings(mcp_jwt_public_key="hello"))
    with pytest.raises(StartupError, match="not both"):
        build_auth(make_settings(mcp_jwt_public_key=key.public_key, mcp_jwt_jwks_uri="https://idp/jwks"))


def test_rate_limit_only_when_configured() -> None:
    assert transport_middleware(make_settings(mcp_rate_limit=0)) == []
    [limit] = transport_middleware(make_settings(mcp_rate_limit=5, mcp_rate_burst=7))
    assert isinstance(limit, ClientRateLimit)
    assert (limit.max_requests_per_second, limit.burst_capacity) == (5, 7)


# -- limits through the MCP protocol ---------------------------------------------------------------------


async def test_an_oversize_result_is_an_error_saying_how_to_narrow_it(fake: FakePangea) -> None:
    settings = make_settings(services="ip_intel", mcp_max_response_bytes=2048)
    many = [f"8.8.{i // 256}.{i % 256}" for i in range(1, 60)]
    async with Client(build_server(settings, transport=fake.transport)) as client:
        small = await client.call_tool("is_vpn", {"ipAddresses": ["8.8.8.8"]})
        with pytest.raises(ToolError, match="too large") as big:
            await client.call_tool("geolocate", {"ipAddresses": many})
        tools = {t.name: t for t in await client.list_tools()}
    assert small.structured_content is not None
    assert "2,048" in str(big.value) and "fewer items per call" in str(big.value)
    assert tools["geolocate"].output_schema is not None  # the schemas stay (no truncation mode)


async def test_the_rate_limit_answers_an_mcp_error_and_lets_nothing_through(fake: FakePangea) -> None:
    settings = make_settings(services="ip_intel")
    server = build_server(settings, transport=fake.transport, outer_middleware=[ClientRateLimit(0.001, 4)])
    ips = ["8.8.8.8", "8.8.4.4", "1.1.1.1", "9.9.9.9", "4.4.4.4"]
    done: list[str] = []
    async with Client(server) as client:  # initialize is request 1; the client may also list tools
        limited: MCPError | None = None
        for ip in ips:
            try:
                await client.call_tool("is_vpn", {"ipAddresses": [ip]})
            except MCPError as exc:
                limited = exc
                break
            done.append(ip)
    assert limited is not None, "the rate limit never tripped"
    assert "Slow down" in limited.error.message
    assert "0.001 requests per second (bursts of 4)" in limited.error.message
    assert 1 <= len(done) < 4
    # What got through reached Pangea; the limited call did not.
    assert fake.bodies("ip-intel", "v2/vpn") == [{"ips": [ip]} for ip in done]


async def test_readiness_is_told_by_the_lifespan(fake: FakePangea) -> None:
    readiness = Readiness()
    server = build_server(make_settings(services="ip_intel"), transport=fake.transport, readiness=readiness)
    assert not readiness.serving
    async with Client(server):
        assert readiness.serving and readiness.ready
    assert not readiness.serving and not readiness.ready


# -- the command line --------------------------------------------------------------------------------------


def test_serve_flags_override_the_settings() -> None:
    parser, _ = cli._parser()
    settings = make_settings(mcp_transport="stdio", mcp_host="127.0.0.1", mcp_port=8080)
    args = parser.parse_args(["serve", "--transport", "http", "--host", "::1", "--port", "0"])
    assert cli.Transport.of(args, settings) == cli.Transport("http", "::1", 0)
    plain = parser.parse_args([])
    assert cli.Transport.of(plain, make_settings(mcp_transport="http", mcp_port=9000)) == cli.Transport(
        "http", "127.0.0.1", 9000
    )
    proxied = parser.parse_args(["proxy", "--transport", "http", "--upstream-url", "http://127.0.0.1:1/mcp"])
    assert cli.Transport.of(proxied, settings) == cli.Transport("http", "127.0.0.1", 8080)


def test_bad_transport_flag_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        cli.main(["serve", "--transport", "carrier-pigeon"])
    assert done.value.code == 2
    assert "--transport" in capsys.readouterr().err
