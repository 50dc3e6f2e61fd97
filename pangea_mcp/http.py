"""Streamable HTTP transport: bearer/JWT auth, Host and Origin checks, /health and /ready, graceful stop."""

from __future__ import annotations

import asyncio
import fnmatch
import gc
import hmac
import ipaddress
import json
import logging
import os
import signal
import socket
import sys
from collections.abc import Awaitable, Callable, Generator, Sequence
from contextlib import contextmanager
from urllib.parse import urlsplit

import anyio
import fastmcp
import uvicorn
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from fastmcp import FastMCP
from fastmcp.server.auth import AccessToken, AuthProvider, MultiAuth, TokenVerifier
from fastmcp.server.auth.providers.jwt import JWTVerifier
from fastmcp.server.middleware import Middleware
from pydantic import SecretStr
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pangea_mcp.config import Settings
from pangea_mcp.errors import StartupError
from pangea_mcp.http_limits import ClientRateLimit, Readiness

log = logging.getLogger(__name__)

MCP_PATH = "/mcp"
HEALTH_PATH = "/health"
READY_PATH = "/ready"
#: After the in-flight calls are done (or the drain timed out): time for idle connections to close.
_CLOSE_GRACE = 3
#: How long an MCP request that comes while the server is still starting waits for it before a 503
#: (covers the ~0.1 s between the "serving" line and the end of a startup that reads nothing).
_START_HOLD = 1


# -- what may be served where -----------------------------------------------------------------------


def is_loopback(host: str) -> bool:
    """localhost, 127.0.0.0/8 or ::1 (brackets and zone allowed)."""
    name = host.strip().lower().strip("[]").split("%")[0]
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def has_auth(settings: Settings) -> bool:
    return bool(settings.mcp_auth_token or settings.mcp_jwt_public_key or settings.mcp_jwt_jwks_uri)


def bind_refusal(settings: Settings, host: str) -> str | None:
    """Why `host` may not be served, or None: anything but loopback needs client authentication."""
    if is_loopback(host) or has_auth(settings):
        return None
    return (
        f"pangea-mcp: refusing to serve HTTP on {host} without client authentication: set "
        "PANGEA_MCP_AUTH_TOKEN (or PANGEA_MCP_JWT_PUBLIC_KEY / PANGEA_MCP_JWT_JWKS_URI), "
        "or use --host 127.0.0.1"
    )


# -- authentication -----------------------------------------------------------------------------------


class BearerToken(TokenVerifier):
    """The one static bearer token (PANGEA_MCP_AUTH_TOKEN), compared in constant time."""

    CLIENT_ID = "pangea-mcp-bearer"

    def __init__(self, token: SecretStr) -> None:
        super().__init__()
        self._expected = token.get_secret_value().encode()

    async def verify_token(self, token: str) -> AccessToken | None:
        if not hmac.compare_digest(token.encode(), self._expected):
            return None
        return AccessToken(token=token, client_id=self.CLIENT_ID, scopes=[])


def _key_algorithm(pem: str) -> str:
    """The JWS algorithm a PEM public key verifies (JWTVerifier takes exactly one)."""
    try:
        key = load_pem_public_key(pem.encode())
    except ValueError:
        raise StartupError(
            "PANGEA_MCP_JWT_PUBLIC_KEY is not a PEM public key (-----BEGIN PUBLIC KEY-----)"
        ) from None
    if isinstance(key, rsa.RSAPublicKey):
        return "RS256"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return {256: "ES256", 384: "ES384", 521: "ES512"}.get(key.curve.key_size, "ES256")
    if isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        return "EdDSA"
    raise StartupError("PANGEA_MCP_JWT_PUBLIC_KEY must be an RSA, EC or Ed25519 public key")


def build_auth(settings: Settings) -> AuthProvider | None:
    """The bearer token, a JWT verifier, both (either credential is accepted), or None."""
    verifiers: list[TokenVerifier] = []
    if settings.mcp_auth_token is not None:
        verifiers.append(BearerToken(settings.mcp_auth_token))
    if settings.mcp_jwt_public_key and settings.mcp_jwt_jwks_uri:
        raise StartupError("set PANGEA_MCP_JWT_PUBLIC_KEY or PANGEA_MCP_JWT_JWKS_URI, not both")
    if settings.mcp_jwt_public_key or settings.mcp_jwt_jwks_uri:
        key = settings.mcp_jwt_public_key.replace("\\n", "\n") if settings.mcp_jwt_public_key else None
        verifiers.append(
            JWTVerifier(
                public_key=key,
                jwks_uri=settings.mcp_jwt_jwks_uri,
                issuer=settings.mcp_jwt_issuer,
                audience=settings.mcp_jwt_audience,
                # A JWKS names its keys' algorithms, but JWTVerifier checks one: RS256, the common one.
                algorithm=_key_algorithm(key) if key else "RS256",
            )
        )
    if not verifiers:
        return None
    if len(verifiers) == 1:
        return verifiers[0]
    return MultiAuth(verifiers={"bearer": verifiers[0], "jwt": verifiers[1]})


def transport_middleware(settings: Settings) -> list[Middleware]:
    """MCP middleware that only the HTTP transport gets: the per-client rate limit (0 = off)."""
    if settings.mcp_rate_limit <= 0:
        return []
    return [ClientRateLimit(settings.mcp_rate_limit, settings.mcp_rate_burst)]


# -- the front door: health, readiness, Host/Origin checks, draining ---------------------------------


def _split_host(value: str) -> tuple[str, str | None]:
    """`name[:port]` or `[v6][:port]` -> (name, port)."""
    value = value.strip().lower()
    if value.startswith("["):
        name, _, rest = value[1:].partition("]")
        return name, rest[1:] if rest.startswith(":") else None
    if value.count(":") == 1:
        name, port = value.split(":")
        return name, port
    return value, None


def _origin(value: str) -> tuple[str, str, int] | None:
    """scheme, host and port of an Origin header (default ports filled in); None if it is not one."""
    try:
        parts = urlsplit(value.strip().lower())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80)


class Front:
    """The ASGI app uvicorn runs, in front of FastMCP's.

    - GET /health answers 200 while the process runs; GET /ready 200 only while `readiness.ready`.
      Both take no credentials and any Host, since probes address the pod by IP.
    - Every other request must carry an allowed Host (421 otherwise) and, if it has an Origin, an
      allowed one (403): a web page cannot reach the server through DNS rebinding or from its origin.
    - Until startup is done and from the start of a shutdown, /mcp answers 503 (under `serve`, a request
      that comes while the server starts first waits up to _START_HOLD for it); meanwhile the requests
      already in flight (not the GET event streams, which never end by themselves) are counted so the
      shutdown can wait for them.
    """

    def __init__(self, app: ASGIApp, settings: Settings, bind_host: str, readiness: Readiness) -> None:
        self.app = app
        self.readiness = readiness
        bind = bind_host.strip("[]").lower()
        self._names = {"localhost"} | ({bind} if bind not in ("0.0.0.0", "::", "") else set())  # noqa: S104
        self._any_host = "*" in settings.mcp_allowed_hosts
        self._hosts = [_split_host(h) for h in settings.mcp_allowed_hosts if h != "*"]
        self._any_origin = "*" in settings.mcp_allowed_origins
        self._origins = {o for o in map(_origin, settings.mcp_allowed_origins) if o is not None}
        #: Cleared by `serve` until FastMCP's app lifespan is fully entered: our lifespan (which makes
        #: `readiness` serving) runs inside the MCP session manager's, which starts its task group only
        #: afterwards (a request in between would get a 500). MCP requests that come meanwhile wait for
        #: it, up to _START_HOLD, rather than get a 503 just after the "serving" line.
        self.entered = asyncio.Event()
        self.entered.set()
        self.in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # uvicorn runs without the lifespan protocol; no websockets are served
        path: str = scope["path"]
        method: str = scope["method"]
        host = origin = None
        for name, value in scope["headers"]:
            if name == b"host":
                host = value.decode("latin-1")
            elif name == b"origin":
                origin = value.decode("latin-1")
        if origin is not None and not self.origin_allowed(origin):
            await _reply(
                send, 403, f"Origin {origin[:100]!r} is not allowed; add it to PANGEA_MCP_ALLOWED_ORIGINS"
            )
            return
        if path in (HEALTH_PATH, READY_PATH) and method in ("GET", "HEAD"):
            await self._health(path, send)
            return
        if host is None or not self.host_allowed(host):
            shown = repr(host[:100]) if host is not None else "(none)"
            await _reply(send, 421, f"Host {shown} is not allowed; add it to PANGEA_MCP_ALLOWED_HOSTS")
            return
        if not self.entered.is_set():
            with anyio.move_on_after(_START_HOLD):
                await self.entered.wait()
        if not (self.entered.is_set() and self.readiness.serving):
            state = "shutting down" if self.readiness.draining else "starting"
            await _reply(send, 503, f"the server is {state}; retry shortly", retry=True)
            return
        if method == "GET":  # an event stream: lives until the session ends
            await self.app(scope, receive, send)
            return
        self.in_flight += 1
        self._idle.clear()
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
            if self.in_flight == 0:
                self._idle.set()

    async def drained(self) -> None:
        await self._idle.wait()

    def host_allowed(self, value: str) -> bool:
        name, port = _split_host(value)
        if self._any_host or name in self._names or is_loopback(name):
            return True
        for pattern, pattern_port in self._hosts:
            if fnmatch.fnmatchcase(name, pattern) and (pattern_port is None or pattern_port == port):
                return True
        return False

    def origin_allowed(self, value: str) -> bool:
        parsed = _origin(value)
        if parsed is None:
            return False  # "null" (sandboxed frames, files) or garbage
        if self._any_origin or is_loopback(parsed[1]):
            return True
        return parsed in self._origins

    async def _health(self, path: str, send: Send) -> None:
        if path == HEALTH_PATH:
            await _reply(send, 200, None, body={"status": "ok"})
        elif self.entered.is_set() and self.readiness.ready:
            await _reply(send, 200, None, body={"status": "ready"})
        else:
            state = "stopping" if self.readiness.draining else "starting"
            await _reply(send, 503, None, body={"status": state}, retry=True)


async def _reply(
    send: Send, status: int, error: str | None, *, body: dict[str, str] | None = None, retry: bool = False
) -> None:
    data = json.dumps(body if body is not None else {"error": error}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    if retry:
        headers.append((b"retry-after", b"1"))
    if status >= 400:
        headers.append((b"connection", b"close"))
    start: Message = {"type": "http.response.start", "status": status, "headers": headers}
    await send(start)
    await send({"type": "http.response.body", "body": data})


# -- running ---------------------------------------------------------------------------------------------


class _Uvicorn(uvicorn.Server):
    """uvicorn without its signal handling: `serve` owns SIGTERM/SIGINT (uvicorn would re-raise them
    after its shutdown, so the process could not exit 0)."""

    @contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def listen(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    """A listening TCP socket (IPPROTO_TCP, so asyncio sets TCP_NODELAY on accepted connections).

    `reuse_port`: several sockets on one address, each accepting its share of the connections (Linux)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise StartupError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise StartupError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.setblocking(False)
    return sock


def run(main: Callable[[], Awaitable[None]]) -> None:
    """Run `main` on uvloop where it is installed (not on Windows), else on asyncio's own loop.

    With httptools (which uvicorn picks by itself when installed), uvloop cut the server's CPU time
    per request by about 30 % in bench/bench_http.py; see docs/performance.md."""
    anyio.run(main, backend_options={"use_uvloop": _has_uvloop()})


def _has_uvloop() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}{MCP_PATH}"


async def serve(
    server: FastMCP,
    settings: Settings,
    readiness: Readiness,
    *,
    host: str,
    port: int,
    until: anyio.Event | None = None,
    sock: socket.socket | None = None,
    parent: int | None = None,
) -> None:
    """Serve `server` (built with `readiness`) on host:port until SIGTERM/SIGINT or until `until` is set.

    A worker of `serve_workers` gets its listening `sock` and its `parent`'s pid (if that process
    goes away, the worker shuts down as on SIGTERM).

    The socket is bound first, so /health answers while the lifespan starts (a Vault read may take
    a while); /ready and /mcp follow once it is done. On a signal: /ready and new requests get 503, the
    calls in flight get PANGEA_MCP_SHUTDOWN_TIMEOUT to finish, then the lifespan exits (audit trail
    flushed, backends closed) and the process ends. A second signal skips the wait.
    """
    server.auth = build_auth(settings)
    quiet_telemetry()
    tune_gc()
    announce = sock is None
    if sock is None:
        sock = listen(host, port)
    stateless = settings.mcp_stateless
    # Stateless: a fresh transport per request and plain JSON answers (no SSE framing), so any replica
    # can answer any request. Stateful: sessions with SSE streams (progress, elicitation).
    app = server.http_app(
        path=MCP_PATH, json_response=stateless, stateless_http=stateless, host_origin_protection=False
    )
    front = Front(app, settings, host, readiness)
    front.entered.clear()
    config = uvicorn.Config(
        front,
        lifespan="off",
        log_config=None,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=_CLOSE_GRACE,
    )
    web = _Uvicorn(config)
    stopping = anyio.Event()
    startup = anyio.CancelScope()
    draining = anyio.CancelScope()
    started = False

    def on_signal(signum: int) -> None:
        if stopping.is_set():
            draining.cancel()  # the second signal: stop waiting for the calls in flight
        log.info("signal %d: shutting down", signum)
        stopping.set()
        if not started:
            startup.cancel()

    loop = asyncio.get_running_loop()
    with _signals(loop, on_signal):
        failure: BaseException | None = None
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(web.serve, [sock])
            if announce:
                print(f"pangea-mcp: serving MCP on {url_of(sock)}", file=sys.stderr, flush=True)
            try:
                with startup:
                    async with app.lifespan(app):
                        started = True
                        front.entered.set()
                        async with anyio.create_task_group() as watch:
                            if until is not None:
                                watch.start_soon(_relay, until, stopping)
                            if parent is not None:
                                watch.start_soon(_orphaned, parent, stopping)
                            await stopping.wait()
                            watch.cancel_scope.cancel()
                        readiness.draining = True
                        if front.in_flight:
                            log.info("waiting for %d request(s) in flight", front.in_flight)
                        with draining, anyio.move_on_after(settings.mcp_shutdown_timeout):
                            await front.drained()
                        if front.in_flight:
                            log.warning("shutdown timeout: %d request(s) cancelled", front.in_flight)
            except Exception as exc:
                failure = exc
            finally:
                readiness.draining = True
                front.entered.set()  # requests held during startup: now a 503
                web.should_exit = True
        sock.close()
    if failure is not None:
        raise failure


async def _relay(source: anyio.Event, target: anyio.Event) -> None:
    await source.wait()
    target.set()


async def _orphaned(parent: int, stopping: anyio.Event) -> None:
    """Stop a worker whose parent is gone (killed outright, so it could not pass SIGTERM on)."""
    while os.getppid() == parent:  # noqa: ASYNC110 - nothing signals a parent's death
        await anyio.sleep(1)
    log.warning("the parent process is gone: shutting down")
    stopping.set()


def quiet_telemetry() -> None:
    """Turn FastMCP's own spans off when no OpenTelemetry SDK is set up and FASTMCP_TELEMETRY_MODE is
    unset: the spans then go nowhere, but FastMCP still looks up a tracer and builds span attributes
    for every call (about a tenth of a cached call's CPU time)."""
    if os.environ.get("FASTMCP_TELEMETRY_MODE"):
        return
    from opentelemetry import trace

    if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        fastmcp.settings.telemetry_mode = "off"


def tune_gc() -> None:
    """Keep the garbage collector off the request path: what startup built (modules, schemas, the
    server) is frozen out of its sight, and young objects are collected every 20,000 allocations
    instead of 700. A request allocates thousands of short-lived objects, so the default ran a
    collection every few requests; this cut the CPU per cached call by about a sixth."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)


# -- several worker processes ----------------------------------------------------------------------------


@contextmanager
def _signals(loop: asyncio.AbstractEventLoop, handler: Callable[[int], None]) -> Generator[None, None, None]:
    signums: Sequence[int] = (signal.SIGTERM, signal.SIGINT)
    for signum in signums:
        loop.add_signal_handler(signum, handler, signum)
    try:
        yield
    finally:
        for signum in signums:
            loop.remove_signal_handler(signum)
