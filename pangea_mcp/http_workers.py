"""PANGEA_MCP_WORKERS: several forked HTTP worker processes on one port, each a whole server.

The parent binds the port, forks the workers and only waits: it passes SIGTERM/SIGINT on to each of them
(each drains as `http.serve` does) and stops the others when one ends by itself.
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import socket
import sys
import traceback
from contextlib import suppress

from fastmcp import FastMCP

from pangea_mcp.config import Settings
from pangea_mcp.errors import StartupError
from pangea_mcp.http import listen, run, serve, url_of
from pangea_mcp.http_limits import Readiness

log = logging.getLogger(__name__)


def workers_refusal(settings: Settings) -> str | None:
    """Why PANGEA_MCP_WORKERS > 1 cannot be served, or None."""
    if settings.mcp_workers <= 1:
        return None
    if not hasattr(os, "fork"):
        return "PANGEA_MCP_WORKERS above 1 needs fork() (Linux or macOS); set it to 1"
    if not settings.mcp_stateless:
        return (
            "PANGEA_MCP_WORKERS above 1 needs PANGEA_MCP_STATELESS=true: a session lives in one process, "
            "and the next request may reach another"
        )
    audit_used = "audit" in settings.services or settings.audit_trail
    if audit_used and settings.service_backend("audit") == "local":
        return (
            "PANGEA_MCP_WORKERS above 1 cannot share the local audit log (one writer keeps its hash "
            "chain); set it to 1 or use Pangea's audit service"
        )
    return None


def serve_workers(
    server: FastMCP, settings: Settings, readiness: Readiness, *, host: str, port: int, workers: int
) -> int:
    """Serve with `workers` forked processes, each running the whole app (`serve`) on its own socket.

    On Linux each worker listens on its own SO_REUSEPORT socket, so the kernel spreads connections
    evenly (one shared socket would let the first worker to wake take a burst of connections);
    elsewhere they share one socket. This process only waits: it passes SIGTERM/SIGINT on to every
    worker (each then drains as `serve` does), and if a worker ends by itself it stops the others, so
    a supervisor sees the server fail and restarts it. Each worker has its own intel cache, rate-limit
    buckets and readiness (/ready answers for the worker that took the connection). Returns the exit
    status: 0 when every worker stopped cleanly after a signal.
    """
    refusal = workers_refusal(settings)
    if refusal is not None:
        raise StartupError(refusal)
    reuse = sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")
    first = listen(host, port, reuse_port=reuse)
    bound = first.getsockname()[1]
    socks = [first] + [listen(host, bound, reuse_port=True) for _ in range(workers - 1)] if reuse else [first]
    print(f"pangea-mcp: serving MCP on {url_of(first)} ({workers} workers)", file=sys.stderr, flush=True)
    me = os.getpid()
    stopping = False
    live: set[int] = set()

    def forward(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for pid in live:
            with suppress(ProcessLookupError):
                os.kill(pid, signum)

    sys.stderr.flush()
    previous = {signum: signal.signal(signum, forward) for signum in (signal.SIGTERM, signal.SIGINT)}
    for number in range(workers):
        pid = os.fork()
        if pid == 0:  # the worker
            os.setpgid(0, 0)  # a Ctrl-C reaches the parent only, which passes it on once
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            own = socks[number % len(socks)]
            for other in socks:
                if other is not own:
                    other.close()
            os._exit(_worker(server, settings, readiness, host, port, own, me))
        live.add(pid)
    for sock in socks:
        sock.close()
    if stopping:  # a signal came while the workers were being started
        forward(signal.SIGTERM, None)
    status = 0
    try:
        while live:
            pid, wait_status = os.wait()
            live.discard(pid)
            code = os.waitstatus_to_exitcode(wait_status)
            if code != 0 or not stopping:
                status = status or (code if code > 0 else 1)
                if not stopping:
                    log.error("worker %d ended by itself (exit %d): stopping the others", pid, code)
                    forward(signal.SIGTERM, None)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return status


def _worker(
    server: FastMCP,
    settings: Settings,
    readiness: Readiness,
    host: str,
    port: int,
    sock: socket.socket,
    parent: int,
) -> int:
    """One worker process's life: `serve` on its socket; the exit status."""
    from pangea_mcp.logs import scrub

    try:
        run(
            functools.partial(
                serve, server, settings, readiness, host=host, port=port, sock=sock, parent=parent
            )
        )
    except BaseException as exc:  # reported as the CLI does, then the process ends
        first: BaseException = exc
        while isinstance(first, BaseExceptionGroup):
            first = first.exceptions[0]
        if isinstance(first, StartupError):
            print(f"pangea-mcp: {scrub(str(first))}", file=sys.stderr, flush=True)
        elif isinstance(first, KeyboardInterrupt):
            return 130
        else:
            traceback.print_exception(exc)
        sys.stderr.flush()
        return 1
    finally:
        sys.stdout.flush()
    sys.stderr.flush()
    return 0
