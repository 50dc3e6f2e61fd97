"""HTTP load benchmark for pangea-mcp: 50 concurrent clients against `pangea-mcp serve --transport http`.

Run from the repository root:

    uv run python -m bench.bench_http [--clients 50] [--calls 10000] [--max-seconds 120] [--json PATH]

It starts the fake Pangea API (tests/fake_pangea.py) in a child process and the installed `pangea-mcp`
console script (stateless HTTP, bearer auth, rate limit on but far above the load) on 127.0.0.1, then
runs two rounds, one with the intel cache off (PANGEA_CACHE_TTL=0: every call reaches the fake) and one
with it on (the default TTL; the clients draw from 200 addresses, so most calls are cache hits):

- `--clients` concurrent MCP clients, each with its own keep-alive connection, initialize once and then
  call `lookup_ip_address_reputation` with one public address, back to back, until `--calls` calls are
  done in total or `--max-seconds` have passed; every answer is checked (JSON-RPC result, not isError,
  the address in structuredContent), anything else counts as an error;
- throughput (calls/s over the measured calls), p50/p95 latency, errors;
- the server's RSS after the warm-up calls and after the measured calls (growth target <= 10 %), and its
  CPU time per call.

The clients speak MCP's streamable HTTP directly (JSON-RPC over POST with httpx, as a stateless server
answers in plain JSON): the official SDK's client costs several times more CPU per call, which on a
2-core machine would be taken from the server being measured. The SDK client is what tests/test_e2e_http.py
uses. A report, not a test: it exits 0 whether or not the targets are met.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import psutil  # type: ignore[import-untyped,unused-ignore]

from bench.bench_core import code_version, console_script
from tests.fake_pangea import SERVICE_TOKEN

ROOT = Path(__file__).resolve().parents[1]
TOOL = "lookup_ip_address_reputation"
TARGET_CALLS_PER_S = 300.0
TARGET_P95_MS = 50.0
TARGET_RSS_GROWTH = 0.10
START_TIMEOUT = 60.0
#: The protocol revision the clients speak: the handshake era (initialize first, as most clients today),
#: or the stateless per-request envelope of 2026-07-28 (no initialize; every request carries its _meta).
PROTOCOLS = {"handshake": "2025-06-18", "modern": "2026-07-28"}

FAKE_MAIN = """
import sys, threading
from tests.fake_pangea import FakePangea
fake = FakePangea()
with fake.serve() as template:
    print(template, flush=True)
    sys.stdin.read()  # until the benchmark closes our stdin
"""


def summarise(samples_s: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in samples_s)
    if len(ms) < 2:
        return {"n": len(ms), "p50_ms": ms[0] if ms else 0.0, "p95_ms": ms[0] if ms else 0.0}
    cuts = statistics.quantiles(ms, n=100, method="inclusive")
    return {"n": len(ms), "p50_ms": statistics.median(ms), "p95_ms": cuts[94], "max_ms": ms[-1]}


def public_ips(n: int, rng: random.Random) -> list[str]:
    """Addresses outside private/reserved ranges (those are answered without a lookup)."""
    return [
        f"{rng.randint(11, 99)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
        for _ in range(n)
    ]


class Round:
    """One server under load: its process, the shared counters of the clients."""

    def __init__(
        self, url: str, token: str, ips: list[str], calls: int, warmup: int, deadline: float, era: str
    ) -> None:
        self.url = url
        self.era = era
        self.protocol = PROTOCOLS[era]
        self.headers = {
            "Authorization": f"Bearer {token}",
            "Accept": "application/json, text/event-stream",
            "Content-Type": "application/json",
            "MCP-Protocol-Version": self.protocol,
        }
        if era == "modern":
            self.headers |= {"Mcp-Method": "tools/call", "Mcp-Name": TOOL}
        self.ips = ips
        self.target = calls + warmup
        self.warmup = warmup
        self.deadline = deadline
        self.started = 0
        self.done = 0
        self.errors = 0
        self.error_samples: list[str] = []
        self.latencies: list[float] = []
        self.warm = anyio.Event()
        self.measure_start = 0.0
        self.measure_end = 0.0

    def record_error(self, what: str) -> None:
        self.errors += 1
        if len(self.error_samples) < 5:
            self.error_samples.append(what[:300])

    async def client(self, number: int) -> None:
        rng = random.Random(number)
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        async with httpx.AsyncClient(headers=self.headers, timeout=30, limits=limits) as http:
            client_info = {"name": f"bench-{number}", "version": "1"}
            meta: dict[str, Any] = {}
            if self.era == "handshake":
                init = {
                    "jsonrpc": "2.0",
                    "id": 0,
                    "method": "initialize",
                    "params": {
                        "protocolVersion": self.protocol,
                        "capabilities": {},
                        "clientInfo": client_info,
                    },
                }
                answer = await http.post(self.url, json=init)
                if answer.status_code != 200 or "result" not in answer.json():
                    self.record_error(f"initialize: HTTP {answer.status_code} {answer.text}")
                    return
                await http.post(self.url, json={"jsonrpc": "2.0", "method": "notifications/initialized"})
            else:
                meta = {
                    "io.modelcontextprotocol/protocolVersion": self.protocol,
                    "io.modelcontextprotocol/clientCapabilities": {},
                    "io.modelcontextprotocol/clientInfo": client_info,
                }
            request_id = 0
            while self.started < self.target and time.monotonic() < self.deadline:
                self.started += 1
                request_id += 1
                ip = rng.choice(self.ips)
                body = {
                    "jsonrpc": "2.0",
                    "id": request_id,
                    "method": "tools/call",
                    "params": {
                        "name": TOOL,
                        "arguments": {"ipAddresses": [ip]},
                        **({"_meta": meta} if meta else {}),
                    },
                }
                began = time.perf_counter()
                try:
                    response = await http.post(self.url, content=json.dumps(body))
                    elapsed = time.perf_counter() - began
                    self._check(response, ip)
                except (httpx.HTTPError, ValueError) as exc:
                    elapsed = time.perf_counter() - began
                    self.record_error(f"{type(exc).__name__}: {exc}")
                self.done += 1
                if self.done == self.warmup:
                    self.measure_start = time.perf_counter()
                    self.warm.set()
                elif self.done > self.warmup:
                    self.latencies.append(elapsed)
                    self.measure_end = time.perf_counter()

    def _check(self, response: httpx.Response, ip: str) -> None:
        if response.status_code != 200:
            self.record_error(f"HTTP {response.status_code}: {response.text}")
            return
        message = response.json()
        result = message.get("result")
        if not isinstance(result, dict) or result.get("isError"):
            self.record_error(json.dumps(message))
            return
        items = (result.get("structuredContent") or {}).get("results") or []
        if not items or items[0].get("ip") != ip:
            self.record_error(f"unexpected result: {json.dumps(result)}")


def start_server(env: dict[str, str], cwd: str, errlog: Path) -> tuple[subprocess.Popen[bytes], str]:
    with errlog.open("wb") as err:
        process = subprocess.Popen(
            [console_script(), "serve", "--transport", "http", "--host", "127.0.0.1", "--port", "0"],
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        text = errlog.read_text(errors="replace")
        for line in text.splitlines():
            if "serving MCP on " in line:
                return process, line.split("serving MCP on ", 1)[1].strip()
        if process.poll() is not None:
            break
        time.sleep(0.05)
    process.kill()
    raise SystemExit(f"pangea-mcp did not start:\n{errlog.read_text(errors='replace')[-2000:]}")


async def wait_ready(url: str) -> None:
    async with httpx.AsyncClient(timeout=5) as http:
        for _ in range(400):
            try:
                if (await http.get(url.removesuffix("/mcp") + "/ready")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await anyio.sleep(0.05)
    raise SystemExit("pangea-mcp never became ready")


async def load_round(label: str, env: dict[str, str], args: argparse.Namespace, cwd: str) -> dict[str, Any]:
    errlog = Path(cwd) / f"{label}.stderr.log"
    process, url = start_server(env, cwd, errlog)
    server = psutil.Process(process.pid)
    try:
        await wait_ready(url)
        ips = public_ips(args.addresses, random.Random(args.seed))
        load = Round(
            url,
            env["PANGEA_MCP_AUTH_TOKEN"],
            ips,
            args.calls,
            args.warmup,
            time.monotonic() + args.max_seconds,
            args.era,
        )
        print(
            f"{label}: {args.clients} clients, {args.calls} calls (+{args.warmup} warm-up) ...",
            file=sys.stderr,
            flush=True,
        )
        rss_before = cpu_before = 0.0
        async with anyio.create_task_group() as clients:
            for number in range(args.clients):
                clients.start_soon(load.client, number)
            await load.warm.wait()
            rss_before = server.memory_info().rss / 2**20
            times = server.cpu_times()
            cpu_before = times.user + times.system
        times = server.cpu_times()
        cpu_after = times.user + times.system
        rss_after = server.memory_info().rss / 2**20
        measured = len(load.latencies)
        elapsed = load.measure_end - load.measure_start
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
    return {
        "label": label,
        "calls": measured,
        "seconds": elapsed,
        "calls_per_s": measured / elapsed if elapsed > 0 else 0.0,
        "latency": summarise(load.latencies),
        "errors": load.errors,
        "error_samples": load.error_samples,
        "rss_before_mib": rss_before,
        "rss_after_mib": rss_after,
        "rss_growth": (rss_after - rss_before) / rss_before if rss_before else 0.0,
        "server_cpu_ms_per_call": (cpu_after - cpu_before) * 1000 / measured if measured else 0.0,
        "server_exit_code": process.returncode,
    }


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def report(result: dict[str, Any]) -> str:
    m = result["machine"]
    lines = [
        f"pangea-mcp HTTP load: {result['clients']} clients, {m['cpus']} CPUs, load {m['loadavg_1m_at_end']}, "
        f"code {m['code']}",
        "",
        f"{'round':<12}{'calls':>7}{'calls/s':>9}{'p50 ms':>8}{'p95 ms':>8}{'errors':>8}{'RSS MiB':>16}"
        f"{'growth':>8}{'CPU/call':>10}",
    ]
    for r in result["rounds"]:
        lines.append(
            f"{r['label']:<12}{r['calls']:>7}{r['calls_per_s']:>9.0f}{r['latency']['p50_ms']:>8.1f}"
            f"{r['latency']['p95_ms']:>8.1f}{r['errors']:>8}{r['rss_before_mib']:>8.1f}->{r['rss_after_mib']:<6.1f}"
            f"{r['rss_growth'] * 100:>7.1f}%{r['server_cpu_ms_per_call']:>8.2f}ms"
        )
    lines += ["", "targets (each round)"]
    for r in result["rounds"]:
        checks = [
            (f"calls/s >= {TARGET_CALLS_PER_S:.0f}", r["calls_per_s"] >= TARGET_CALLS_PER_S),
            (f"p95 <= {TARGET_P95_MS:.0f} ms", r["latency"]["p95_ms"] <= TARGET_P95_MS),
            ("0 errors", r["errors"] == 0),
            (f"RSS growth <= {TARGET_RSS_GROWTH:.0%}", r["rss_growth"] <= TARGET_RSS_GROWTH),
        ]
        lines.append(f"  {r['label']:<10} " + ", ".join(f"{name}: {verdict(ok)}" for name, ok in checks))
        for sample in r["error_samples"]:
            lines.append(f"    error: {sample}")
    return "\n".join(lines)


@contextmanager
def fake_pangea() -> Iterator[str]:
    """The fake Pangea in its own process (not competing with the clients for this one's GIL)."""
    fake = subprocess.Popen(
        [sys.executable, "-c", FAKE_MAIN],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert fake.stdout is not None
        template = fake.stdout.readline().strip()
        if not template.startswith("http://127.0.0.1:"):
            raise SystemExit("the fake Pangea did not start")
        yield template
    finally:
        if fake.stdin is not None:
            fake.stdin.close()
        try:
            fake.wait(timeout=15)
        except subprocess.TimeoutExpired:
            fake.kill()


async def run(args: argparse.Namespace, template: str) -> dict[str, Any]:
    token = secrets.token_urlsafe(24)
    base = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", "/nonexistent"),
        "PANGEA_TOKEN": SERVICE_TOKEN,
        "PANGEA_BASE_URL_TEMPLATE": template,
        "PANGEA_GUARD": "false",
        "PANGEA_MCP_AUTH_TOKEN": token,
        "PANGEA_MCP_STATELESS": "true",
        # On, so its cost is measured, but far above the load (all clients share 127.0.0.1).
        "PANGEA_MCP_RATE_LIMIT": "100000",
        "PANGEA_MCP_RATE_BURST": "100000",
        "PANGEA_LOG_LEVEL": "WARNING",
    }
    if os.environ.get("PYTHONPATH"):
        base["PYTHONPATH"] = os.environ["PYTHONPATH"]
    rounds = []
    with tempfile.TemporaryDirectory(prefix="pangea-mcp-bench-http-") as cwd:
        rounds.append(await load_round("cache off", {**base, "PANGEA_CACHE_TTL": "0"}, args, cwd))
        if not args.no_cache_round:
            rounds.append(await load_round("cache on", {**base, "PANGEA_CACHE_TTL": "300"}, args, cwd))
    load = os.getloadavg()
    return {
        "clients": args.clients,
        "era": args.era,
        "rounds": rounds,
        "machine": {"code": code_version(), "cpus": os.cpu_count(), "loadavg_1m_at_end": round(load[0], 2)},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_http", description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50, help="concurrent clients (default 50)")
    parser.add_argument("--calls", type=int, default=10_000, help="measured calls per round (default 10000)")
    parser.add_argument("--warmup", type=int, default=500, help="unmeasured calls first (default 500)")
    parser.add_argument("--max-seconds", type=float, default=300.0, help="time bound per round (default 300)")
    parser.add_argument(
        "--era", choices=sorted(PROTOCOLS), default="handshake", help="protocol revision (default handshake)"
    )
    parser.add_argument("--addresses", type=int, default=200, help="distinct addresses drawn (default 200)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--no-cache-round", action="store_true", help="only the cache-off round")
    parser.add_argument("--json", metavar="PATH", help="also write the raw figures as JSON")
    args = parser.parse_args(argv)
    with fake_pangea() as template:
        result = anyio.run(run, args, template)
    print(report(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
