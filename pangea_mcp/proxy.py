"""Guarded proxy: another MCP server (a stdio child process or an HTTP URL) served again behind AI Guard."""

from __future__ import annotations

import asyncio
import logging
import os
import stat
import subprocess
import sys
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager, suppress
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlsplit

import anyio
import httpx
import mcp_types
from anyio.abc import ByteReceiveStream, ByteSendStream, Process
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from anyio.streams.text import TextReceiveStream
from fastmcp import Context, FastMCP
from fastmcp.client.transports import ClientTransport
from fastmcp.client.transports.base import SessionKwargs, TransportOptions
from fastmcp.exceptions import ToolError
from fastmcp.server import create_proxy
from fastmcp.server.context import reset_transport, set_transport
from fastmcp.server.middleware import Middleware, MiddlewareContext
from fastmcp.server.providers.proxy import FastMCPProxy, ProxyClient
from fastmcp.tools import ToolResult
from fastmcp.tools.base import RawStructuredToolResult
from mcp import ClientSession
from mcp.server.stdio import stdio_server
from mcp.shared.dispatcher import ProgressFnT
from mcp.shared.exceptions import MCPError
from mcp.shared.message import SessionMessage
from mcp.types import CallToolRequestParams
from typing_extensions import Unpack

from pangea_mcp.client import PangeaClient, SleepFn
from pangea_mcp.config import Settings
from pangea_mcp.errors import StartupError
from pangea_mcp.guard import AIGuard, Forward
from pangea_mcp.http_limits import Readiness, ResponseLimit
from pangea_mcp.vault import ServiceToken

log = logging.getLogger(__name__)

#: The MCP spec's shutdown: close the child's stdin, wait, then SIGTERM, wait, then SIGKILL.
STOP_GRACE = 2.0
#: Longest JSON-RPC line read from the front client.
MAX_LINE = 64 * 1024 * 1024
#: Messages queued between a pipe and its session: a rendezvous (0) costs event-loop turns per message.
BUFFER = 32
#: Request/result `_meta` keys that belong to one connection and never cross the proxy.
_CONNECTION_META = frozenset(
    {
        mcp_types.PROTOCOL_VERSION_META_KEY,
        mcp_types.CLIENT_INFO_META_KEY,
        mcp_types.CLIENT_CAPABILITIES_META_KEY,
        mcp_types.SERVER_INFO_META_KEY,
        "progressToken",
    }
)


def child_environment(environ: Mapping[str, str], secrets: Iterable[str] = ()) -> dict[str, str]:
    """The wrapped server's environment: ours without PANGEA_* settings or any variable holding a secret.

    Settings read PANGEA_* case-insensitively, so the names are matched that way too.
    """
    known = [s for s in secrets if s]
    return {
        name: value
        for name, value in environ.items()
        if not name.upper().startswith("PANGEA_") and not any(s in value for s in known)
    }


def describe_command(command: Sequence[str]) -> str:
    """A short server name for AI Guard's log: `python upstream.py`, `npx server-filesystem`, ..."""
    words = [Path(command[0]).name]
    rest = iter(command[1:])
    for arg in rest:
        if arg == "-c":  # inline code: no name to take from it
            break
        if arg == "-m":
            words.append(next(rest, ""))
            break
        if not arg.startswith("-"):
            words.append(Path(arg).name)
            break
    return " ".join(w for w in words if w)


def describe_url(url: str) -> str:
    return urlsplit(url).hostname or url


def exit_status(code: int) -> tuple[int, str]:
    """The proxy's own exit status for a child's return code, and how to say what happened."""
    if code < 0:
        return 128 - code, f"was killed by signal {-code}"
    return code, f"exited with code {code}"


# -- the child process ---------------------------------------------------------------------------


class ChildServer(ClientTransport):
    """The wrapped stdio MCP server: one child process and one MCP session with it for the proxy's life.

    FastMCP's StdioTransport hides the process, so its exit could not be reported; this transport owns it.
    The child's stderr is ours (it passes through); its stdin and stdout carry JSON-RPC lines.
    """

    def __init__(self, command: Sequence[str], env: Mapping[str, str]) -> None:
        if not command:
            raise ValueError("no command to run")
        self.command = list(command)
        self._env = dict(env)
        self._process: Process | None = None
        self._session: ClientSession | None = None
        self._holder: asyncio.Task[None] | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._lock = anyio.Lock()
        self._stop = anyio.Event()
        self._closing = False
        #: Set when the child ends by itself (not when the proxy stops it).
        self.ended = anyio.Event()

    @property
    def returncode(self) -> int | None:
        return self._process.returncode if self._process is not None else None

    @asynccontextmanager
    async def running(self) -> AsyncIterator[ChildServer]:
        """Start the child; on the way out stop it the way the MCP spec says."""
        try:
            process = await anyio.open_process(
                self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=None, env=self._env
            )
        except OSError as exc:
            raise StartupError(
                f"cannot start the upstream server {self.command[0]!r}: {exc.strerror or exc}"
            ) from None
        self._process = process
        log.info("upstream server started (pid %d)", process.pid)
        self._watcher = asyncio.create_task(self._watch(process), name="pangea-mcp upstream watcher")
        try:
            yield self
        finally:
            self._closing = True
            with anyio.CancelScope(shield=True):
                await self._shutdown(process)

    async def _watch(self, process: Process) -> None:
        await process.wait()
        if not self._closing:
            self.ended.set()

    async def _shutdown(self, process: Process) -> None:
        self._stop.set()
        if self._holder is not None:
            with anyio.move_on_after(STOP_GRACE), suppress(Exception):
                await self._holder
        with suppress(OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
            if process.stdin is not None:
                await process.stdin.aclose()
        for stop in (None, process.terminate, process.kill):
            if stop is not None:
                with suppress(ProcessLookupError):
                    stop()
            with anyio.move_on_after(STOP_GRACE):
                await process.wait()
            if process.returncode is not None:
                break
        for task in (self._holder, self._watcher):
            if task is not None and not task.done():
                task.cancel()

    @asynccontextmanager
    async def connect_session(
        self,
        *,
        transport_options: TransportOptions | None = None,
        **session_kwargs: Unpack[SessionKwargs],
    ) -> AsyncIterator[ClientSession]:
        # Every connection shares the one session (like StdioTransport's keep_alive).
        yield await self._connect(transport_options or TransportOptions(), dict(session_kwargs))

    async def _connect(self, options: TransportOptions, kwargs: dict[str, Any]) -> ClientSession:
        async with self._lock:
            if self._session is not None:
                return self._session
            process = self._process
            if process is None or process.returncode is not None or self._closing:
                raise anyio.ClosedResourceError("the upstream server is not running")
            ready: asyncio.Future[ClientSession] = asyncio.get_running_loop().create_future()
            self._holder = asyncio.create_task(
                self._hold(process, options.session_class, kwargs, ready), name="pangea-mcp upstream session"
            )
            self._session = await ready
            return self._session

    async def _hold(
        self,
        process: Process,
        session_class: type[ClientSession],
        kwargs: dict[str, Any],
        ready: asyncio.Future[ClientSession],
    ) -> None:
        try:
            if process.stdout is None or process.stdin is None:
                raise RuntimeError("the upstream server was started without pipes")
            incoming, read = anyio.create_memory_object_stream[SessionMessage | Exception](BUFFER)
            write, outgoing = anyio.create_memory_object_stream[SessionMessage](BUFFER)
            async with anyio.create_task_group() as pipes:
                pipes.start_soon(_read_lines, process.stdout, incoming)
                pipes.start_soon(_write_lines, process.stdin, outgoing)
                async with session_class(read, write, **kwargs) as session:
                    ready.set_result(session)
                    await self._stop.wait()
                pipes.cancel_scope.cancel()
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc if isinstance(exc, Exception) else RuntimeError("session cancelled"))
            raise
        finally:
            self._session = None


async def _read_lines(
    stdout: ByteReceiveStream, sink: MemoryObjectSendStream[SessionMessage | Exception]
) -> None:
    """Child stdout -> session: one JSON-RPC message per line."""
    buffer = ""
    async with sink:
        with suppress(anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
            async for chunk in TextReceiveStream(stdout, encoding="utf-8", errors="replace"):
                *lines, buffer = (buffer + chunk).split("\n")
                for line in lines:
                    if line.strip():
                        await sink.send(_parse_message(line, "upstream server"))


async def _write_lines(stdin: ByteSendStream, source: MemoryObjectReceiveStream[SessionMessage]) -> None:
    """Session -> child stdin."""
    async with source:
        with suppress(anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
            async for item in source:
                await stdin.send(_dump_message(item))


def _parse_message(line: str | bytes, sender: str) -> SessionMessage | Exception:
    try:
        return SessionMessage(mcp_types.jsonrpc_message_adapter.validate_json(line, by_name=False))
    except ValueError as exc:
        log.warning("the %s sent a line that is not JSON-RPC", sender)
        return exc


def _dump_message(item: SessionMessage) -> bytes:
    return (item.message.model_dump_json(by_alias=True, exclude_unset=True) + "\n").encode("utf-8")


# -- the direct tool-call path ---------------------------------------------------------------------


def _request_meta(ctx: Context | None) -> dict[str, Any] | None:
    """The front request's `_meta` that may cross to the child (not the connection's own keys)."""
    try:
        meta = ctx.request_context.meta if ctx is not None and ctx.request_context is not None else None
    except (AttributeError, RuntimeError):
        return None
    if not meta:
        return None
    return {k: v for k, v in meta.items() if k not in _CONNECTION_META} or None


def _progress_relay(ctx: Context | None) -> ProgressFnT | None:
    """Relays the child's progress to the front client, when its request asked for progress.

    Bound now: the child's notifications arrive in the session's own task, where the request's context
    (which `ctx.report_progress` reads) is not set.
    """
    try:
        meta = ctx.request_context.meta if ctx is not None and ctx.request_context is not None else None
        token = meta.get("progressToken") if meta else None
        if ctx is None or token is None:
            return None
        session, request_id = ctx.session, ctx.request_id
    except (AttributeError, RuntimeError):
        return None

    async def relay(progress: float, total: float | None, message: str | None) -> None:
        await session.send_progress_notification(
            progress_token=token,
            progress=progress,
            total=total,
            message=message,
            related_request_id=request_id,
        )

    return relay


def forward_to(client: ProxyClient[Any]) -> Forward:
    """Tool calls straight to the child's session, after the guard's checks.

    FastMCP's ProxyTool would wrap every call in a fresh client context; with one long-lived session that
    only costs time (about 1.5 ms of CPU per call here, a tenth of the proxy's budget).
    """

    async def forward(context: MiddlewareContext[CallToolRequestParams]) -> ToolResult:
        name = context.message.name
        ctx = context.fastmcp_context
        try:
            result = await client.session.call_tool(
                name,
                context.message.arguments or {},
                progress_callback=_progress_relay(ctx),
                meta=_request_meta(ctx),  # type: ignore[arg-type]
            )
        except MCPError as exc:
            # As FastMCP does for a proxied call: the upstream's protocol error is not repeated verbatim.
            log.warning("upstream server answered tools/call %s with error %s", name, exc.error.code)
            raise ToolError(f"Error calling tool {name!r}") from None
        if not isinstance(result, mcp_types.CallToolResult):
            raise ToolError(f"Error calling tool {name!r}: unexpected result type")
        meta = {k: v for k, v in (result.meta or {}).items() if k not in _CONNECTION_META} or None
        structured = result.structured_content
        if structured is not None and not isinstance(structured, dict):
            return RawStructuredToolResult(
                content=result.content, structured_content=structured, meta=meta, is_error=result.is_error
            )
        # The content is already protocol objects: nothing to convert or validate again.
        return ToolResult.model_construct(
            content=result.content, structured_content=structured, meta=meta, is_error=result.is_error
        )

    return forward


# -- the proxy server ------------------------------------------------------------------------------

Upstream = ChildServer | ClientTransport | FastMCP[Any] | str


def build(
    settings: Settings,
    upstream: Upstream,
    *,
    server_name: str,
    transport: httpx.AsyncBaseTransport | None = None,
    sleep: SleepFn | None = None,
    readiness: Readiness | None = None,
    outer_middleware: Sequence[Middleware] = (),
) -> FastMCP:
    """The proxy server: the upstream's tools, resources and prompts, each checked by AI Guard.

    `upstream` is a ChildServer (stdio command), an MCP URL, or (tests) a FastMCP server or client transport.
    `transport` and `sleep` reach the Pangea client, for tests. Served over HTTP, `readiness` is told
    when startup is done and `outer_middleware` (the rate limit) runs first.
    """
    pangea = PangeaClient(settings, transport=transport, sleep=sleep)
    tokens = ServiceToken(settings, pangea)
    pangea.tokens = tokens
    child = upstream if isinstance(upstream, ChildServer) else None
    # The child has one session for the proxy's life, so one client, connected in the lifespan, serves
    # every request (FastMCP's default builds a client per request). ProxyClient speaks the handshake era,
    # which every stdio server does, and forwards the child's logs, progress and requests to the client.
    shared: ProxyClient[Any] | None = ProxyClient(child) if child is not None else None
    guard = AIGuard(
        settings,
        pangea,
        server_name=server_name,
        listing=True,
        forward=forward_to(shared) if shared is not None else None,
    )
    # The size cap sits outside the guard: the guard forwards a stdio child's calls itself, so nothing
    # inside it sees their results.
    middleware: list[Middleware] = [*outer_middleware, ResponseLimit(settings.mcp_max_response_bytes), guard]

    @asynccontextmanager
    async def lifespan(_server: FastMCP) -> AsyncIterator[dict[str, object]]:
        async with pangea, AsyncExitStack() as stack:
            # The guard's token first: without it nothing could be served, so the child is not even started.
            await tokens.start()
            if child is not None and shared is not None:
                await stack.enter_async_context(child.running())
                try:
                    await stack.enter_async_context(shared)
                except Exception as exc:
                    # Not an MCP server, or it died at once: say so in one line (its exit code, if it
                    # exited, becomes the proxy's: see serve_stdio).
                    with anyio.move_on_after(STOP_GRACE):
                        await child.ended.wait()
                    raise StartupError(
                        f"the upstream server did not complete the MCP handshake ({exc})"
                    ) from None
            if readiness is not None:
                readiness.started(lambda: tokens.loaded)
            try:
                yield {}
            finally:
                if readiness is not None:
                    readiness.stopped()

    if shared is not None:
        return FastMCPProxy(
            client_factory=lambda: shared,
            name="pangea-mcp-proxy",
            lifespan=lifespan,
            mask_error_details=True,
            middleware=middleware,
        )
    # A URL or server target: a client per request, in the front connection's protocol era.
    return create_proxy(
        upstream, name="pangea-mcp-proxy", lifespan=lifespan, mask_error_details=True, middleware=middleware
    )


# -- serving on stdio ------------------------------------------------------------------------------


@contextmanager
def _claimed_stdio() -> Iterator[tuple[BinaryIO, BinaryIO]]:
    """The JSON-RPC wire on private copies of fds 0 and 1.

    Meanwhile fd 0 reads /dev/null and fd 1 writes to stderr, so nothing else in the process (a library's
    print) can corrupt the wire, as in the MCP SDK's stdio server.
    """
    sys.stdout.flush()
    saved = os.dup(0), os.dup(1)
    wire_in, wire_out = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDONLY)
    try:
        os.dup2(null, 0)
        os.dup2(2, 1)
        with open(wire_in, "rb", buffering=0) as front_in, open(wire_out, "wb", buffering=0) as front_out:
            yield front_in, front_out
    finally:
        os.close(null)
        for fd, copy in zip((0, 1), saved, strict=True):
            os.dup2(copy, fd)
            os.close(copy)
            # asyncio made the shared file descriptions non-blocking.
            with suppress(OSError):
                os.set_blocking(fd, True)


async def _run(
    server: FastMCP,
    child: ChildServer | None,
    read: MemoryObjectReceiveStream[SessionMessage | Exception],
    write: MemoryObjectSendStream[SessionMessage],
) -> None:
    """The MCP session on the given streams, inside FastMCP's lifespan (as run_stdio_async does)."""

    async def follow_child(scope: anyio.CancelScope) -> None:
        if child is not None:
            await child.ended.wait()
            scope.cancel()

    async with server._lifespan_manager(), anyio.create_task_group() as tasks:
        tasks.start_soon(follow_child, tasks.cancel_scope)
        mcp = server._mcp_server
        await mcp.run(read, write, mcp.create_initialization_options())
        tasks.cancel_scope.cancel()


async def _serve_pipes(server: FastMCP, child: ChildServer | None) -> None:
    """JSON-RPC lines on stdin/stdout through asyncio pipes (cancellable, no thread hand-offs)."""
    with _claimed_stdio() as (front_in, front_out):
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=MAX_LINE)
        read_pipe, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), front_in)
        write_pipe, protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin, front_out)
        writer = asyncio.StreamWriter(write_pipe, protocol, None, loop)
        incoming, read = anyio.create_memory_object_stream[SessionMessage | Exception](BUFFER)
        write, outgoing = anyio.create_memory_object_stream[SessionMessage](BUFFER)

        async def read_front() -> None:
            async with incoming:
                while line := await reader.readline():
                    if line.strip():
                        await incoming.send(_parse_message(line, "client"))

        written = anyio.Event()

        async def write_front() -> None:
            try:
                async with outgoing:
                    async for item in outgoing:
                        writer.write(_dump_message(item))
                        await writer.drain()
            finally:
                written.set()

        try:
            async with anyio.create_task_group() as pipes:
                pipes.start_soon(read_front)
                pipes.start_soon(write_front)
                async with write:  # closed when the session ends, so the writer lets the last answers out
                    await _run(server, child, read, write)
                with anyio.move_on_after(STOP_GRACE):
                    await written.wait()
                pipes.cancel_scope.cancel()
        finally:
            read_pipe.close()
            writer.close()
            with anyio.move_on_after(STOP_GRACE), suppress(OSError, RuntimeError):
                await writer.wait_closed()  # what is still buffered reaches the client


def _on_pipes() -> bool:
    """Whether stdin and stdout are pipes or sockets (what asyncio can watch; MCP clients use pipes)."""
    try:
        modes = [os.fstat(fd).st_mode for fd in (0, 1)]
    except OSError:
        return False
    return all(stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) for mode in modes)


async def serve_stdio(server: FastMCP, child: ChildServer | None = None) -> int | None:
    """Serve `server` on stdin/stdout until the client hangs up or, with a child, until the child exits.

    Returns the child's return code when its exit ended the session. FastMCP's own stdio runner reads
    stdin in a worker thread that cannot be cancelled, so it could not stop when the child dies (and
    costs two thread hand-offs per message); asyncio pipes can. When stdin or stdout is not a pipe (a
    file, /dev/null), the MCP SDK's threaded stdio serves instead.
    """
    token = set_transport("stdio")
    try:
        if _on_pipes():
            await _serve_pipes(server, child)
        else:
            async with stdio_server() as (read, write):
                await _run(server, child, read, write)
    except Exception:
        if child is None or not child.ended.is_set():
            raise
    finally:
        reset_transport(token)
    return child.returncode if child is not None and child.ended.is_set() else None
