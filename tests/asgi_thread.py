"""Serve an ASGI app with uvicorn on 127.0.0.1 (ephemeral port) in a daemon thread, for tests and benchmarks."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

import uvicorn


@contextmanager
def serve_asgi(
    app: Any, *, name: str = "the ASGI app", lifespan: Literal["auto", "on", "off"] = "off", **config: Any
) -> Iterator[str]:
    """Run `app` until the block ends; yields its base URL, http://127.0.0.1:<port>.

    `lifespan` and `config` go to uvicorn.Config (log level: warning). Raises RuntimeError
    (naming `name`) if the server has not started within 10 s; on the way out it is asked to exit and
    its thread is joined for up to 10 s.
    """
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY on accepted sockets only then (else +40 ms per
    # keep-alive request from Nagle and delayed ACKs).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan=lifespan, **config))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    for _ in range(1000):
        if server.started or not thread.is_alive():
            break
        threading.Event().wait(0.01)
    try:
        if not server.started:
            raise RuntimeError(f"{name} did not start")
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
