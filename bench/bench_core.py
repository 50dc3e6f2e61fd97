"""Core performance report for pangea-mcp: tool-call overhead, cold start and idle memory.

Run from the repository root:

    uv run python -m bench.bench_core [--iterations 300] [--cold-runs 7] [--json PATH]

In one run it measures, against the fake Pangea API served on 127.0.0.1 in this process:

1. p50/p95 (and p10) of `lookup_ip_address_reputation` (one public IP) through the real stdio server
   (the installed `pangea-mcp` console script) driven by the official `mcp` client SDK;
2. p50/p95 of the same upstream request sent directly with a keep-alive httpx.AsyncClient;
3. p50/p95 of the `echo` tool of a bare FastMCP server (bench/echo_server.py), same client;
4. added latency = server p50 - direct p50, and its ratio to the echo p50 (target <= 1.25);
5. cold start (spawn -> initialize answered), median of --cold-runs, pangea-mcp vs the echo
   server, both started with this interpreter (target ratio <= 1.15);
6. idle RSS of the pangea-mcp process after initialize and one call (target <= 100 MiB).

The three kinds of call are interleaved in a shuffled order on every iteration, so drift on a
shared machine hits all of them alike. Wall-clock ratios on a busy machine move with the load, so
the report adds cross-checks: the added/echo ratio from per-iteration paired differences and at
p10 (closest to an idle machine), each server's CPU time per call, and each server's CPU time
from spawn to the initialize answer. The targets are judged on the figures the brief defines.

It is a report, not a test: it exits 0 whether or not the targets are met (and non-zero only if
the benchmark itself breaks). PYTHONPATH, if set, is passed to the servers, so another checkout
can be measured with this venv.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any, TextIO

import anyio
import httpx
import psutil  # type: ignore[import-untyped,unused-ignore]
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

from tests.fake_pangea import SERVICE_TOKEN, FakePangea

ROOT = Path(__file__).resolve().parents[1]
ECHO_SERVER = ROOT / "bench" / "echo_server.py"

IP = "8.8.8.8"
TOOL = "lookup_ip_address_reputation"

TARGET_ADDED_RATIO = 1.25
TARGET_COLD_RATIO = 1.15
TARGET_IDLE_RSS_MIB = 100.0

CALL_TIMEOUT = 15.0  # seconds for one measured call
START_TIMEOUT = 60.0  # seconds from spawn to the initialize answer
IDLE_SETTLE = 1.0  # seconds of idleness before the RSS is read

Summary = dict[str, float]


# -- helpers -------------------------------------------------------------------------------------


def console_script() -> str:
    """The venv's `pangea-mcp` script (the one `uv run` puts first on PATH)."""
    candidate = Path(sys.prefix) / "bin" / "pangea-mcp"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("pangea-mcp")
    if found is None:
        raise SystemExit("pangea-mcp console script not found; run `uv sync` first")
    return found


def summarise(samples_s: list[float]) -> Summary:
    ms = sorted(s * 1000 for s in samples_s)
    cuts = statistics.quantiles(ms, n=100, method="inclusive")
    return {
        "n": len(ms),
        "p10_ms": cuts[9],
        "p50_ms": statistics.median(ms),
        "p95_ms": cuts[94],
        "min_ms": ms[0],
        "max_ms": ms[-1],
        "mean_ms": statistics.fmean(ms),
    }


def verdict(value: float, target: float) -> str:
    return "PASS" if value <= target else "FAIL"


def rss_mib(pid: int) -> float:
    return float(psutil.Process(pid).memory_info().rss) / 2**20


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of one process (its children excluded)."""
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def child_pid(marker: str) -> int:
    """The pid of our (only) live child process with `marker` as one of its command-line words."""
    matches = []
    for proc in psutil.Process().children(recursive=True):
        try:
            if proc.status() != psutil.STATUS_ZOMBIE and marker in proc.cmdline():
                matches.append(proc.pid)
        except psutil.Error:
            continue
    if len(matches) != 1:
        raise RuntimeError(f"expected one child process matching {marker!r}, found {matches}")
    return int(matches[0])


PANGEA_M = "pangea-mcp (python -m pangea_mcp)"
PANGEA_SCRIPT = "pangea-mcp (console script)"
ECHO = "echo (python bench/echo_server.py)"


class Servers:
    """How each server under test is started (same interpreter, same environment, empty cwd)."""

    def __init__(self, url: str, cwd: str, errlog: TextIO, extra: dict[str, list[str]]) -> None:
        # The guard middleware (AI Guard on every call) is measured by bench_proxy; here, the server alone.
        self.env = {"PANGEA_TOKEN": SERVICE_TOKEN, "PANGEA_BASE_URL_TEMPLATE": url, "PANGEA_GUARD": "false"}
        if os.environ.get("PYTHONPATH"):  # lets another checkout be measured with this venv
            self.env["PYTHONPATH"] = os.environ["PYTHONPATH"]
        self.cwd = cwd
        self.errlog = errlog
        script = console_script()
        # name -> (command line, a word of it that identifies the process)
        self.variants: dict[str, tuple[list[str], str]] = {
            PANGEA_M: ([sys.executable, "-m", "pangea_mcp"], "pangea_mcp"),
            PANGEA_SCRIPT: ([script], script),
            ECHO: ([sys.executable, str(ECHO_SERVER)], str(ECHO_SERVER)),
        }
        for name, argv in extra.items():
            self.variants[name] = (argv, argv[-1])

    def pid(self, name: str) -> int:
        return child_pid(self.variants[name][1])

    @asynccontextmanager
    async def session(self, name: str) -> AsyncIterator[ClientSession]:
        argv = self.variants[name][0]
        params = StdioServerParameters(command=argv[0], args=argv[1:], env=self.env, cwd=self.cwd)
        async with stdio_client(params, errlog=self.errlog) as (read, write):
            async with ClientSession(read, write) as session:
                with anyio.fail_after(START_TIMEOUT):
                    await session.initialize()
                yield session


# -- 1-4, 6: latency and idle memory ---------------------------------------------------------------


async def timed(call: Callable[[], Awaitable[None]]) -> float:
    with anyio.fail_after(CALL_TIMEOUT):
        started = time.perf_counter()
        await call()
        return time.perf_counter() - started


async def measure_latency(
    servers: Servers, fake: FakePangea, url: str, iterations: int, warmup: int, rng: random.Random
) -> dict[str, Any]:
    endpoint = url.replace("{SERVICE_NAME}", "ip-intel") + "/v2/reputation"
    headers = {"Authorization": f"Bearer {SERVICE_TOKEN}"}
    body = {"ips": [IP]}

    async with AsyncExitStack() as stack:
        server = await stack.enter_async_context(servers.session(PANGEA_SCRIPT))
        echo = await stack.enter_async_context(servers.session(ECHO))
        http = await stack.enter_async_context(httpx.AsyncClient(trust_env=False, timeout=CALL_TIMEOUT))
        server_pid = servers.pid(PANGEA_SCRIPT)
        echo_pid = servers.pid(ECHO)
        last: dict[str, Any] = {}

        async def call_server() -> None:
            result = await server.call_tool(TOOL, {"ipAddresses": [IP]})
            content = result.structured_content or {}
            if result.is_error or content.get("results", [{}])[0].get("ip") != IP:
                raise RuntimeError(f"{TOOL} failed: {result}")
            last["server"] = result

        async def call_direct() -> None:
            response = await http.post(endpoint, json=body, headers=headers)
            if response.status_code != 200 or response.json().get("status") != "Success":
                raise RuntimeError(f"direct POST failed: HTTP {response.status_code} {response.text[:200]}")

        async def call_echo() -> None:
            result = await echo.call_tool("echo", {"text": IP})
            if result.is_error:
                raise RuntimeError(f"echo failed: {result}")
            last["echo"] = result

        # 6. idle RSS after initialize + one call.
        await timed(call_server)
        await timed(call_echo)
        await anyio.sleep(IDLE_SETTLE)
        idle = {"pangea_mcp_mib": rss_mib(server_pid), "echo_mib": rss_mib(echo_pid)}

        calls = {"server": call_server, "direct": call_direct, "echo": call_echo}
        samples: dict[str, list[float]] = {name: [] for name in calls}
        for _ in range(warmup):
            for call in calls.values():
                await timed(call)
        names = list(calls)
        cpu_before = {"server": cpu_s(server_pid), "echo": cpu_s(echo_pid)}
        for _ in range(iterations):
            rng.shuffle(names)
            for name in names:
                samples[name].append(await timed(calls[name]))
        # Each server is idle between its own calls, so its CPU time / calls is its work per call.
        cpu_per_call = {
            "server_ms": (cpu_s(server_pid) - cpu_before["server"]) / iterations * 1000,
            "echo_ms": (cpu_s(echo_pid) - cpu_before["echo"]) / iterations * 1000,
        }
        after = {"pangea_mcp_mib": rss_mib(server_pid), "echo_mib": rss_mib(echo_pid)}

        # Part of every measured call is the client re-validating structuredContent against the
        # tool's outputSchema (mcp ClientSession.validate_tool_result); time it on its own.
        validation_us = {}
        for name, session, tool in (("server", server, TOOL), ("echo", echo, "echo")):
            started = time.perf_counter()
            for _ in range(iterations):
                await session.validate_tool_result(tool, last[name])
            validation_us[name] = (time.perf_counter() - started) / iterations * 1e6

    sent = fake.bodies("ip-intel", "v2/reputation")
    if any(b != body for b in sent) or fake.violations:
        raise RuntimeError(f"the fake saw unexpected requests: {fake.violations or sent[:3]}")
    # Paired estimate: the three calls of one iteration ran back to back, so their differences
    # cancel most of the slow drift of a shared machine.
    paired = statistics.median(s - d for s, d in zip(samples["server"], samples["direct"], strict=True))
    return {
        "latency": {name: summarise(values) for name, values in samples.items()},
        "paired_added_p50_ms": paired * 1000,
        "server_cpu_per_call": cpu_per_call,
        "client_validation_us": validation_us,
        "rss_idle": idle,
        "rss_after_run": after,
    }


# -- 5: cold start -------------------------------------------------------------------------------------


async def cold_start_once(servers: Servers, name: str) -> tuple[float, float]:
    """Wall seconds from spawn to the initialize answer, and the server's CPU seconds by then."""
    started = time.perf_counter()
    async with servers.session(name):
        elapsed = time.perf_counter() - started
        cpu = cpu_s(servers.pid(name))
    return elapsed, cpu


async def measure_cold_start(servers: Servers, runs: int, rng: random.Random) -> dict[str, Any]:
    names = list(servers.variants)
    for name in names:  # one discarded round: page cache, .pyc files
        await cold_start_once(servers, name)
    wall: dict[str, list[float]] = {name: [] for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(runs):
        rng.shuffle(names)
        for name in names:
            w, c = await cold_start_once(servers, name)
            wall[name].append(w)
            cpu[name].append(c)
    return {
        name: {
            "median_ms": statistics.median(wall[name]) * 1000,
            "min_ms": min(wall[name]) * 1000,
            "max_ms": max(wall[name]) * 1000,
            "cpu_median_ms": statistics.median(cpu[name]) * 1000,
            "runs_ms": [round(v * 1000, 1) for v in wall[name]],
        }
        for name in servers.variants
    }


# -- report --------------------------------------------------------------------------------------------


def code_version() -> str | None:
    try:
        head = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if head.returncode != 0:
        return None
    return head.stdout.strip() + (" + uncommitted changes" if dirty.stdout.strip() else "")


def machine() -> dict[str, Any]:
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "code": code_version(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "loadavg_1m_at_end": round(load[0], 2) if load else None,
    }


def derive(result: dict[str, Any]) -> dict[str, Any]:
    lat = result["latency"]
    added = lat["server"]["p50_ms"] - lat["direct"]["p50_ms"]
    cold = result["cold_start"]
    echo_cold = cold[ECHO]
    return {
        "added_p50_ms": added,
        "added_over_echo_p50": added / lat["echo"]["p50_ms"],
        "paired_added_over_echo_p50": result["paired_added_p50_ms"] / lat["echo"]["p50_ms"],
        "added_over_echo_p10": (lat["server"]["p10_ms"] - lat["direct"]["p10_ms"]) / lat["echo"]["p10_ms"],
        "cold_start_ratio": cold[PANGEA_M]["median_ms"] / echo_cold["median_ms"],
        "cold_start_ratio_console_script": cold[PANGEA_SCRIPT]["median_ms"] / echo_cold["median_ms"],
        "cold_start_cpu_ratio": cold[PANGEA_M]["cpu_median_ms"] / echo_cold["cpu_median_ms"],
        "idle_rss_mib": result["rss_idle"]["pangea_mcp_mib"],
    }


def report(result: dict[str, Any]) -> str:
    lat, cold, d = result["latency"], result["cold_start"], result["derived"]
    cpu, val = result["server_cpu_per_call"], result["client_validation_us"]
    m = result["machine"]
    lines = [
        f"pangea-mcp core benchmark: {result['iterations']} iterations (+{result['warmup']} warm-up), "
        f"{m['cpus']} CPUs, Python {m['python']}, load {m['loadavg_1m_at_end']}, code {m['code']}",
        "",
        f"{'latency (ms)':<46}{'p50':>8}{'p95':>8}{'p10':>8}",
        *(
            f"{'  ' + label:<46}{lat[key]['p50_ms']:>8.2f}{lat[key]['p95_ms']:>8.2f}{lat[key]['p10_ms']:>8.2f}"
            for key, label in (
                ("server", "pangea-mcp " + TOOL),
                ("direct", "direct httpx POST ip-intel/v2/reputation"),
                ("echo", "bare FastMCP echo"),
            )
        ),
        f"{'  added by pangea-mcp (server - direct)':<46}{d['added_p50_ms']:>8.2f}{'':>8}"
        f"{lat['server']['p10_ms'] - lat['direct']['p10_ms']:>8.2f}",
        f"{'  server CPU per call: pangea-mcp / echo':<46}{cpu['server_ms']:>8.2f}{cpu['echo_ms']:>8.2f}",
        f"{'  client outputSchema check: pangea / echo (us)':<46}{val['server']:>8.0f}{val['echo']:>8.0f}",
        "",
        f"{'cold start to initialize (ms)':<46}{'median':>8}{'min':>8}{'max':>8}{'CPU':>8}",
    ]
    for name, c in cold.items():
        lines.append(
            f"{'  ' + name:<46}{c['median_ms']:>8.0f}{c['min_ms']:>8.0f}{c['max_ms']:>8.0f}"
            f"{c['cpu_median_ms']:>8.0f}"
        )
    rss, after = result["rss_idle"], result["rss_after_run"]
    lines += [
        "",
        f"{'RSS (MiB)':<46}{'idle':>8}{'end':>8}",
        f"{'  pangea-mcp (after initialize + 1 call)':<46}{rss['pangea_mcp_mib']:>8.1f}"
        f"{after['pangea_mcp_mib']:>8.1f}",
        f"{'  bare FastMCP echo':<46}{rss['echo_mib']:>8.1f}{after['echo_mib']:>8.1f}",
        "",
        "targets",
        f"  added / echo p50        {d['added_over_echo_p50']:6.2f}  <= {TARGET_ADDED_RATIO:<5}  "
        f"{verdict(d['added_over_echo_p50'], TARGET_ADDED_RATIO)}"
        f"   (paired {d['paired_added_over_echo_p50']:.2f}, at p10 {d['added_over_echo_p10']:.2f})",
        f"  cold start / echo       {d['cold_start_ratio']:6.2f}  <= {TARGET_COLD_RATIO:<5}  "
        f"{verdict(d['cold_start_ratio'], TARGET_COLD_RATIO)}"
        f"   (console script {d['cold_start_ratio_console_script']:.2f}, CPU {d['cold_start_cpu_ratio']:.2f})",
        f"  idle RSS (MiB)          {d['idle_rss_mib']:6.1f}  <= {TARGET_IDLE_RSS_MIB:<5.0f}  "
        f"{verdict(d['idle_rss_mib'], TARGET_IDLE_RSS_MIB)}",
    ]
    return "\n".join(lines)


async def run(args: argparse.Namespace, url: str, fake: FakePangea, errlog: TextIO) -> dict[str, Any]:
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="pangea-mcp-bench-") as cwd:  # no stray .env is read
        servers = Servers(url, cwd, errlog, args.cold_extra)
        print(f"latency: {args.iterations} interleaved iterations ...", file=sys.stderr, flush=True)
        result = await measure_latency(servers, fake, url, args.iterations, args.warmup, rng)
        print(f"cold start: {args.cold_runs} runs per variant ...", file=sys.stderr, flush=True)
        result["cold_start"] = await measure_cold_start(servers, args.cold_runs, rng)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_core", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--iterations", type=int, default=300, help="measured calls of each kind (default 300)"
    )
    parser.add_argument(
        "--warmup", type=int, default=30, help="unmeasured calls of each kind first (default 30)"
    )
    parser.add_argument("--cold-runs", type=int, default=7, help="cold starts per variant (default 7)")
    parser.add_argument(
        "--cold-extra",
        metavar="LABEL=COMMAND",
        action="append",
        default=[],
        help="another server to include in the cold-start table, e.g. to try a startup change "
        "without editing the package (repeatable; COMMAND is split like a shell would)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the interleaving order")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    if args.iterations < 2 or args.cold_runs < 1 or args.warmup < 0:
        parser.error("need --iterations >= 2, --cold-runs >= 1, --warmup >= 0")
    extra = {}
    for item in args.cold_extra:
        label, sep, command = item.partition("=")
        if not sep or not label or not command.strip():
            parser.error(f"--cold-extra wants LABEL=COMMAND, got {item!r}")
        extra[label] = shlex.split(command)
    args.cold_extra = extra

    fake = FakePangea()
    with tempfile.TemporaryFile("w+") as errlog, fake.serve() as url:
        try:
            result = anyio.run(run, args, url, fake, errlog)
        except BaseException:
            errlog.seek(0)
            tail = errlog.read()[-4000:]
            if tail:
                print("--- server stderr (tail) ---\n" + tail, file=sys.stderr)
            raise
    result.update(iterations=args.iterations, warmup=args.warmup, cold_runs=args.cold_runs, machine=machine())
    result["derived"] = derive(result)
    result["targets"] = {
        "added_over_echo_p50": TARGET_ADDED_RATIO,
        "cold_start_ratio": TARGET_COLD_RATIO,
        "idle_rss_mib": TARGET_IDLE_RSS_MIB,
    }
    print(report(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
