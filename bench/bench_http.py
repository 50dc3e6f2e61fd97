"""HTTP load benchmark for pangea-mcp: 50 concurrent clients against `pangea-mcp serve --transport http`.

Run from the repository root:

    uv run python -m bench.bench_http [--clients 50] [--calls 10000] [--rates 300,400] [--workers 1]
                                      [--cache off,on] [--era handshake] [--json PATH]

It starts the fake Pangea API (tests/fake_pangea.py) in a child process and the installed `pangea-mcp`
console script (stateless HTTP, as the Docker image serves; bearer auth; rate limit on but far above the
load; PANGEA_MCP_WORKERS=--workers) on 127.0.0.1, once with the intel cache off (PANGEA_CACHE_TTL=0: every
call reaches the fake) and once with it on (the clients draw from 200 addresses, so nearly all calls are
cache hits). Against each server it runs these rounds, each `--warmup` unmeasured calls then `--calls`
measured ones (or `--max-seconds`):

- saturation (closed loop): every client sends its next call as soon as the last is answered. This
  gives the server's maximum throughput; its latency is queueing (with 50 calls always outstanding the
  mean latency is 50 / throughput, Little's law), so p95 <= 50 ms would need about 1,000 calls/s.
- paced (open loop), one per `--rates` value: the clients together offer that many calls per second,
  each client on its own Poisson schedule; latency is measured from the scheduled send time, so a
  stalled server is charged for every call it delayed (no coordinated omission). This is the round the
  latency target applies to.

Every answer is checked (HTTP 200, JSON-RPC result, not isError, the address in structuredContent);
anything else counts as an error. Reported per round: calls/s, p50/p95/p99, errors, the server's RSS
(all its processes) after the warm-up and after the measured calls, and CPU per call of the server, the
fake and the benchmark itself.

The clients speak streamable HTTP directly: one keep-alive HTTP/1.1 connection each over asyncio
streams, with the JSON-RPC bodies serialised once (about 0.3 ms of CPU per call, measured in the report),
since on a 2-core machine the clients' CPU is taken from the server being measured. The official SDK
client is what tests/test_e2e_http.py uses. A report, not a test: it exits 0 whether or not the targets
are met.
"""

from __future__ import annotations

import argparse
import asyncio
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
from urllib.parse import urlsplit

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
    return {
        "n": len(ms),
        "p50_ms": statistics.median(ms),
        "p95_ms": cuts[94],
        "p99_ms": cuts[98],
        "max_ms": ms[-1],
    }


def public_ips(n: int, rng: random.Random) -> list[str]:
    """Addresses outside private/reserved ranges (those are answered without a lookup)."""
    return [
        f"{rng.randint(11, 99)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
        for _ in range(n)
    ]


class Conn:
    """One client's keep-alive HTTP/1.1 connection: raw asyncio streams, pre-serialised requests."""

    def __init__(self, host: str, port: int, path: str, headers: dict[str, str]) -> None:
        self.host, self.port = host, port
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.head = f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n{head}".encode()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, body: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(self.head + b"Content-Length: %d\r\n\r\n" % len(body) + body)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        close = False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                close = True
        data = await self.reader.readexactly(length) if length else b""
        if close:
            self.close()
        return status, data

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


class Load:
    """The clients of one round and their shared counters.

    Closed loop (`rate` None): each client sends its next call as soon as the last one is answered;
    latency is the time from send to answer. Open loop (`rate` in calls/s, shared by all clients):
    each client has its own Poisson arrival schedule (rate / clients) fixed in advance, and latency
    is measured from the *scheduled* send time, so a slow answer that delays the next sends counts
    against every call it delayed (no coordinated omission).
    """

    def __init__(
        self,
        url: str,
        token: str,
        ips: list[str],
        calls: int,
        warmup: int,
        deadline: float,
        era: str,
        rate: float | None,
        clients: int,
    ) -> None:
        parts = urlsplit(url)
        self.host, self.port, self.path = parts.hostname or "127.0.0.1", parts.port or 80, parts.path
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
        self.rate = rate
        self.clients = clients
        self.started = 0
        self.done = 0
        self.errors = 0
        self.error_samples: list[str] = []
        self.latencies: list[float] = []
        self.warm = asyncio.Event()
        self.measure_start = 0.0
        self.measure_end = 0.0
        self.late_sends = 0
        self.tasks: list[asyncio.Task[None]] = []

    def record_error(self, what: str) -> None:
        self.errors += 1
        if len(self.error_samples) < 5:
            self.error_samples.append(what[:300])

    def _bodies(self, meta: dict[str, Any]) -> list[tuple[str, bytes, bytes]]:
        """Per address: the JSON-RPC request split around its id, serialised once."""
        out = []
        for ip in self.ips:
            params: dict[str, Any] = {"name": TOOL, "arguments": {"ipAddresses": [ip]}}
            if meta:
                params["_meta"] = meta
            text = json.dumps({"jsonrpc": "2.0", "method": "tools/call", "params": params, "id": 0})
            prefix, _, _ = text.rpartition("0}")
            out.append((ip, prefix.encode(), b"}"))
        return out

    async def client(self, number: int) -> None:
        rng = random.Random(number)
        conn = Conn(self.host, self.port, self.path, self.headers)
        client_info = {"name": f"bench-{number}", "version": "1"}
        meta: dict[str, Any] = {}
        try:
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
                status, data = await conn.post(json.dumps(init).encode())
                if status != 200 or "result" not in json.loads(data):
                    self.record_error(f"initialize: HTTP {status} {data[:200]!r}")
                    return
                await conn.post(
                    json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}).encode()
                )
            else:
                meta = {
                    "io.modelcontextprotocol/protocolVersion": self.protocol,
                    "io.modelcontextprotocol/clientCapabilities": {},
                    "io.modelcontextprotocol/clientInfo": client_info,
                }
            bodies = self._bodies(meta)
            per_client = self.rate / self.clients if self.rate else 0.0
            # Spread the first sends over one mean interval, so the clients do not start in step.
            scheduled = time.perf_counter() + (rng.random() / per_client if per_client else 0.0)
            request_id = 0
            while self.started < self.target and time.monotonic() < self.deadline:
                if per_client:
                    scheduled += rng.expovariate(per_client)
                    wait = scheduled - time.perf_counter()
                    if wait > 0:
                        await asyncio.sleep(wait)
                    else:
                        self.late_sends += 1
                self.started += 1
                request_id += 1
                ip, prefix, suffix = bodies[rng.randrange(len(bodies))]
                began = time.perf_counter()
                if not per_client:
                    scheduled = began
                try:
                    status, data = await conn.post(prefix + str(request_id).encode() + suffix)
                    elapsed = time.perf_counter() - scheduled
                    self._check(status, data, ip)
                except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                    elapsed = time.perf_counter() - scheduled
                    self.record_error(f"{type(exc).__name__}: {exc}")
                    conn.close()
                self.done += 1
                if self.done == self.warmup:
                    self.measure_start = time.perf_counter()
                    self.warm.set()
                elif self.done > self.warmup:
                    self.latencies.append(elapsed)
                    self.measure_end = time.perf_counter()
        finally:
            conn.close()

    def _check(self, status: int, data: bytes, ip: str) -> None:
        if status != 200:
            self.record_error(f"HTTP {status}: {data[:300]!r}")
            return
        message = json.loads(data)
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
                return process, line.split("serving MCP on ", 1)[1].split()[0]
        if process.poll() is not None:
            break
        time.sleep(0.05)
    process.kill()
    raise SystemExit(f"pangea-mcp did not start:\n{errlog.read_text(errors='replace')[-2000:]}")


async def wait_ready(url: str) -> None:
    """Until /ready answers 200 ten times in a row, each on a new connection (with several workers,
    each connection reaches one of them)."""
    limits = httpx.Limits(max_keepalive_connections=0)
    in_a_row = 0
    async with httpx.AsyncClient(timeout=5, limits=limits) as http:
        for _ in range(400):
            try:
                ok = (await http.get(url.removesuffix("/mcp") + "/ready")).status_code == 200
            except httpx.HTTPError:
                ok = False
            in_a_row = in_a_row + 1 if ok else 0
            if in_a_row >= 10:
                return
            await asyncio.sleep(0 if ok else 0.05)
    raise SystemExit("pangea-mcp never became ready")


def usage(process: psutil.Process) -> tuple[float, float]:
    """CPU seconds and RSS (MiB) of a process and its children (the workers, with PANGEA_MCP_WORKERS)."""
    cpu = rss = 0.0
    for proc in [process, *process.children(recursive=True)]:
        try:
            times = proc.cpu_times()
            cpu += times.user + times.system
            rss += proc.memory_info().rss / 2**20
        except psutil.NoSuchProcess:
            pass
    return cpu, rss


async def run_load(load: Load, clients: int) -> None:
    """Start the clients; return once the warm-up calls are done (or every client gave up)."""
    tasks = [asyncio.create_task(load.client(number)) for number in range(clients)]
    load.tasks = tasks
    warm = asyncio.create_task(load.warm.wait())
    await asyncio.wait([warm, asyncio.gather(*tasks)], return_when=asyncio.FIRST_COMPLETED)
    warm.cancel()


async def server_rounds(
    cache: str, env: dict[str, str], args: argparse.Namespace, cwd: str, fake: psutil.Process
) -> list[dict[str, Any]]:
    """One server (cache on or off): the saturation round, then a paced round per `--rates` value."""
    errlog = Path(cwd) / f"cache-{cache}.stderr.log"
    process, url = start_server(env, cwd, errlog)
    server = psutil.Process(process.pid)
    results = []
    try:
        await wait_ready(url)
        ips = public_ips(args.addresses, random.Random(args.seed))
        for rate in [None, *args.rates]:
            kind = "saturation" if rate is None else f"paced {rate:g}/s"
            load = Load(
                url,
                env["PANGEA_MCP_AUTH_TOKEN"],
                ips,
                args.calls,
                args.warmup,
                time.monotonic() + args.max_seconds,
                args.era,
                rate,
                args.clients,
            )
            print(
                f"cache {cache}, {kind}: {args.clients} clients, {args.calls} calls ...",
                file=sys.stderr,
                flush=True,
            )
            await run_load(load, args.clients)
            cpu_before, rss_before = usage(server)
            fake_times = fake.cpu_times()
            fake_before = fake_times.user + fake_times.system
            client_before = time.process_time()
            await asyncio.gather(*load.tasks)
            client_cpu = time.process_time() - client_before
            cpu_after, rss_after = usage(server)
            fake_times = fake.cpu_times()
            fake_after = fake_times.user + fake_times.system
            measured = len(load.latencies)
            elapsed = load.measure_end - load.measure_start
            results.append(
                {
                    "label": f"cache {cache}, {kind}",
                    "cache": cache,
                    "kind": "saturation" if rate is None else "paced",
                    "offered_per_s": rate,
                    "calls": measured,
                    "seconds": elapsed,
                    "calls_per_s": measured / elapsed if elapsed > 0 else 0.0,
                    "latency": summarise(load.latencies),
                    "errors": load.errors,
                    "error_samples": load.error_samples,
                    "late_sends": load.late_sends,
                    "rss_before_mib": rss_before,
                    "rss_after_mib": rss_after,
                    "rss_growth": (rss_after - rss_before) / rss_before if rss_before else 0.0,
                    "server_cpu_ms_per_call": (cpu_after - cpu_before) * 1000 / measured if measured else 0.0,
                    "fake_cpu_ms_per_call": (fake_after - fake_before) * 1000 / measured if measured else 0.0,
                    "client_cpu_ms_per_call": client_cpu * 1000 / measured if measured else 0.0,
                }
            )
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
    for result in results:
        result["server_exit_code"] = process.returncode
    return results


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def checks(r: dict[str, Any]) -> list[tuple[str, bool]]:
    """The issue's targets. A paced round's throughput passes when it kept up with an offered load of
    at least the target (Poisson arrivals: the achieved rate is within about 1 % of the offered)."""
    if r["kind"] == "paced":
        rate = r["offered_per_s"]
        throughput = (
            f"kept up with {rate:g}/s (>= {TARGET_CALLS_PER_S:.0f})",
            rate >= TARGET_CALLS_PER_S and r["calls_per_s"] >= 0.98 * rate,
        )
    else:
        throughput = (f"calls/s >= {TARGET_CALLS_PER_S:.0f}", r["calls_per_s"] >= TARGET_CALLS_PER_S)
    return [
        throughput,
        (f"p95 <= {TARGET_P95_MS:.0f} ms", r["latency"]["p95_ms"] <= TARGET_P95_MS),
        ("0 errors", r["errors"] == 0),
        (f"RSS growth <= {TARGET_RSS_GROWTH:.0%}", r["rss_growth"] <= TARGET_RSS_GROWTH),
    ]


def report(result: dict[str, Any]) -> str:
    m = result["machine"]
    lines = [
        f"pangea-mcp HTTP load: {result['clients']} clients, {result['workers']} worker(s), era {result['era']}, "
        f"{m['cpus']} CPUs, load {m['loadavg_1m_at_start']} at start / {m['loadavg_1m_at_end']} at end, "
        f"code {m['code']}",
        "",
        f"{'round':<26}{'calls':>7}{'calls/s':>9}{'p50 ms':>8}{'p95 ms':>8}{'p99 ms':>8}{'errors':>7}"
        f"{'RSS MiB':>16}{'growth':>8}{'srv CPU':>9}{'fake CPU':>9}{'bench CPU':>10}",
    ]
    for r in result["rounds"]:
        lat = r["latency"]
        lines.append(
            f"{r['label']:<26}{r['calls']:>7}{r['calls_per_s']:>9.0f}{lat['p50_ms']:>8.1f}{lat['p95_ms']:>8.1f}"
            f"{lat.get('p99_ms', 0.0):>8.1f}{r['errors']:>7}{r['rss_before_mib']:>8.1f}->{r['rss_after_mib']:<6.1f}"
            f"{r['rss_growth'] * 100:>7.1f}%{r['server_cpu_ms_per_call']:>7.2f}ms{r['fake_cpu_ms_per_call']:>7.2f}ms"
            f"{r['client_cpu_ms_per_call']:>8.2f}ms"
        )
    lines += ["", "targets (each round; CPU columns are per call)"]
    for r in result["rounds"]:
        lines.append(f"  {r['label']:<24} " + ", ".join(f"{n}: {verdict(ok)}" for n, ok in checks(r)))
        for sample in r["error_samples"]:
            lines.append(f"    error: {sample}")
    return "\n".join(lines)


@contextmanager
def fake_pangea() -> Iterator[tuple[str, psutil.Process]]:
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
        yield template, psutil.Process(fake.pid)
    finally:
        if fake.stdin is not None:
            fake.stdin.close()
        try:
            fake.wait(timeout=15)
        except subprocess.TimeoutExpired:
            fake.kill()


async def run(args: argparse.Namespace, template: str, fake: psutil.Process) -> dict[str, Any]:
    token = secrets.token_urlsafe(24)
    base = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", "/nonexistent"),
        "PANGEA_TOKEN": SERVICE_TOKEN,
        "PANGEA_BASE_URL_TEMPLATE": template,
        "PANGEA_GUARD": "false",
        "PANGEA_MCP_AUTH_TOKEN": token,
        "PANGEA_MCP_STATELESS": "true",
        "PANGEA_MCP_WORKERS": str(args.workers),
        # On, so its cost is measured, but far above the load (all clients share 127.0.0.1).
        "PANGEA_MCP_RATE_LIMIT": "100000",
        "PANGEA_MCP_RATE_BURST": "100000",
        "PANGEA_LOG_LEVEL": "WARNING",
    }
    for name in ("PYTHONPATH", "FASTMCP_TELEMETRY_MODE"):
        if os.environ.get(name):
            base[name] = os.environ[name]
    load_start = os.getloadavg()[0]
    rounds = []
    with tempfile.TemporaryDirectory(prefix="pangea-mcp-bench-http-") as cwd:
        for cache in args.cache:
            ttl = "0" if cache == "off" else "300"
            rounds += await server_rounds(cache, {**base, "PANGEA_CACHE_TTL": ttl}, args, cwd, fake)
    return {
        "clients": args.clients,
        "workers": args.workers,
        "era": args.era,
        "rounds": rounds,
        "machine": {
            "code": code_version(),
            "cpus": os.cpu_count(),
            "loadavg_1m_at_start": round(load_start, 2),
            "loadavg_1m_at_end": round(os.getloadavg()[0], 2),
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_http", description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50, help="concurrent clients (default 50)")
    parser.add_argument("--calls", type=int, default=10_000, help="measured calls per round (default 10000)")
    parser.add_argument("--warmup", type=int, default=500, help="unmeasured calls first (default 500)")
    parser.add_argument("--max-seconds", type=float, default=120.0, help="time bound per round (default 120)")
    parser.add_argument(
        "--rates",
        type=lambda v: [float(x) for x in v.split(",") if x],
        default=[300.0, 400.0],
        help="offered loads of the paced rounds, calls/s for all clients together (default 300,400; '' for none)",
    )
    parser.add_argument("--workers", type=int, default=1, help="PANGEA_MCP_WORKERS of the server (default 1)")
    parser.add_argument(
        "--cache",
        type=lambda v: [x for x in v.split(",") if x in ("on", "off")],
        default=["off", "on"],
        help="which servers: off,on (default both; cache off first)",
    )
    parser.add_argument(
        "--era", choices=sorted(PROTOCOLS), default="handshake", help="protocol revision (default handshake)"
    )
    parser.add_argument("--addresses", type=int, default=200, help="distinct addresses drawn (default 200)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", metavar="PATH", help="also write the raw figures as JSON")
    args = parser.parse_args(argv)
    with fake_pangea() as (template, fake):
        result = asyncio.run(run(args, template, fake))
    print(report(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
