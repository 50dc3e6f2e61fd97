"""Helpers for the HTTP tests: spawn the installed console script on 127.0.0.1:0, connect MCP clients.

The child gets only the environment a test gives it (plus PATH and HOME), runs in an empty directory
(no stray .env), writes stderr to a file, and is stopped (SIGTERM, then SIGKILL) when the test ends.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio
import httpx
import httpx2
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from tests.e2e_common import SCRIPT, child_env

START_TIMEOUT = 40.0  # spawn to the "serving" line (imports take about 3 s on a busy machine)
STOP_TIMEOUT = 30.0
LISTENING = re.compile(r"pangea-mcp: serving MCP on (http://127\.0\.0\.1:(\d+)/mcp)")


@dataclass
class Served:
    process: subprocess.Popen[bytes]
    url: str  # http://127.0.0.1:PORT/mcp
    port: int
    stderr_path: Path

    @property
    def base(self) -> str:
        return self.url.removesuffix("/mcp")

    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def terminate(self) -> None:
        self.process.send_signal(signal.SIGTERM)

    async def exit_code(self) -> int:
        await until(lambda: self.process.poll() is not None, STOP_TIMEOUT)
        code = self.process.poll()
        assert code is not None
        return code


async def until(condition: Callable[[], bool], within: float) -> None:
    """Wait until `condition()` holds (polled: what it watches is another process or thread)."""
    with anyio.fail_after(within):
        while not condition():  # noqa: ASYNC110
            await anyio.sleep(0.02)


def base_env(template: str | None = None, **settings: str) -> dict[str, str]:
    """child_env (tests/e2e_common.py) with the intel cache off unless `settings` say otherwise, plus PATH
    and HOME: the HTTP child gets nothing else."""
    settings.setdefault("cache_ttl", "0")
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/nonexistent"),
        **child_env(template, **settings),
    }


@contextmanager
def spawn(args: list[str], env: dict[str, str], cwd: Path, name: str = "server") -> Iterator[Served]:
    """Start `pangea-mcp ARGS` and wait for its "serving" line; always stopped on the way out."""
    stderr_path = cwd / f"{name}.stderr.log"
    with stderr_path.open("wb") as errfile:
        process = subprocess.Popen(
            [str(SCRIPT), *args],
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=errfile,
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            text = stderr_path.read_text(encoding="utf-8", errors="replace")
            found = LISTENING.search(text)
            if found:
                break
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the server did not start (exit {process.poll()}):\n{text[-3000:]}")
            time.sleep(0.05)
        yield Served(process, found.group(1), int(found.group(2)), stderr_path)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stdout is not None:
            leaked = process.stdout.read()
            process.stdout.close()
            assert leaked == b"", f"the HTTP server printed on stdout: {leaked[:200]!r}"


@asynccontextmanager
async def mcp_session(url: str, token: str | None = None, **headers: str) -> AsyncIterator[ClientSession]:
    """The official MCP client over streamable HTTP, initialized."""
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    timeout = httpx2.Timeout(20.0, read=30.0)
    async with (
        httpx2.AsyncClient(headers=headers, timeout=timeout) as http,
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(read, write, read_timeout_seconds=20) as session,
    ):
        await session.initialize()
        yield session


async def wait_for(client: httpx.AsyncClient, url: str, status: int) -> httpx.Response:
    """GET `url` until it answers `status` (within 20 s)."""
    with anyio.fail_after(20):
        while True:
            response = await client.get(url)
            if response.status_code == status:
                return response
            await anyio.sleep(0.05)
