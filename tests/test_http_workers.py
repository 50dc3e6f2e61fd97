"""PANGEA_MCP_WORKERS: forked HTTP workers on one port, each a whole server; refused where unsafe.

Through the installed console script on 127.0.0.1, with the official MCP client on fresh connections
(so the kernel spreads them over the workers).
"""

from __future__ import annotations

from pathlib import Path

import anyio
import psutil  # type: ignore[import-untyped,unused-ignore]

from tests.e2e_common import SCRIPT, canary, text_of
from tests.fake_pangea import FakePangea
from tests.http_server import base_env, mcp_session, spawn, until

SESSION_TIMEOUT = 90.0
SERVE = ["serve", "--transport", "http", "--port", "0"]


def workers_of(pid: int) -> list[psutil.Process]:
    return [child for child in psutil.Process(pid).children() if "pangea-mcp" in " ".join(child.cmdline())]


async def test_two_workers_answer_fresh_connections_and_all_stop_on_sigterm(tmp_path: Path) -> None:
    token, client_token = canary(), canary("mcp_")
    fake = FakePangea(service_token=token)
    ips = [f"8.8.4.{n}" for n in range(1, 9)]
    with fake.serve() as template, anyio.fail_after(SESSION_TIMEOUT):
        env = base_env(
            template, token=token, mcp_auth_token=client_token, mcp_stateless="true", mcp_workers="2"
        )
        with spawn(SERVE, env, tmp_path) as srv:
            assert "(2 workers)" in srv.stderr()
            await until(lambda: len(workers_of(srv.process.pid)) == 2, 20)
            children = workers_of(srv.process.pid)
            results = []
            for ip in ips:  # one session (and connection) per call
                async with mcp_session(srv.url, client_token) as session:
                    results.append(await session.call_tool("is_vpn", {"ipAddresses": [ip]}))
            srv.terminate()
            assert await srv.exit_code() == 0, srv.stderr()[-2000:]
            await until(
                lambda: not any(child.is_running() and child.status() != "zombie" for child in children), 10
            )
    assert [r.is_error for r in results] == [False] * len(ips), [text_of(r) for r in results if r.is_error]
    assert sorted(ip for body in fake.bodies("ip-intel", "v2/vpn") for ip in body["ips"]) == sorted(ips)
    assert "Traceback" not in srv.stderr()


async def test_workers_are_refused_without_stateless_mode(tmp_path: Path) -> None:
    env = base_env(None, token=canary(), mcp_workers="2")
    code, stderr = await _run_until_exit(env, tmp_path)
    assert code == 1
    assert "PANGEA_MCP_STATELESS=true" in stderr and "Traceback" not in stderr


async def test_workers_are_refused_with_the_local_audit_log(tmp_path: Path) -> None:
    env = base_env(None, mcp_workers="2", mcp_stateless="true", services="audit,ip_intel")
    env.update({"XDG_DATA_HOME": str(tmp_path / "data"), "XDG_CONFIG_HOME": str(tmp_path / "config")})
    code, stderr = await _run_until_exit(env, tmp_path)
    assert code == 1
    assert "local audit log" in stderr and "Traceback" not in stderr


async def _run_until_exit(env: dict[str, str], cwd: Path) -> tuple[int, str]:
    with anyio.fail_after(SESSION_TIMEOUT):
        done = await anyio.run_process([str(SCRIPT), *SERVE], env=env, cwd=cwd, check=False)
    assert done.stdout == b""
    return done.returncode, done.stderr.decode()
