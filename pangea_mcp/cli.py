"""Command line: `pangea-mcp [serve]` runs the server (stdio or HTTP), `pangea-mcp proxy` guards another."""

from __future__ import annotations

import argparse
import functools
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pydantic import ValidationError

from pangea_mcp import __version__

if TYPE_CHECKING:
    from fastmcp import FastMCP

    from pangea_mcp.config import Settings

LOG_LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
TRANSPORT_USAGE = "[--transport {stdio,http}] [--host HOST] [--port PORT]"
SERVE_USAGE = f"pangea-mcp serve [options] {TRANSPORT_USAGE}"
PROXY_USAGE = f"pangea-mcp proxy [options] {TRANSPORT_USAGE} (-- COMMAND [ARGS...] | --upstream-url URL)"
#: What a command runs once settings and logging are set up: the exit status, or None for 0.
Runner = Callable[[], "int | None"]


def _settings_error(exc: ValidationError) -> str:
    lines = ["pangea-mcp: invalid configuration:"]
    for err in exc.errors(include_input=False, include_url=False):
        field = ".".join(str(p) for p in err["loc"])
        name = f"PANGEA_{field.upper()}" if field else "settings"
        message = err["msg"].removeprefix("Value error, ")
        if field:
            lines.append(f"  {name}: {message}")
        else:
            lines.append(f"  {message}")
    return "\n".join(lines)


def _common_options(command: argparse.ArgumentParser) -> None:
    """--log-level and --env-file, also accepted after the subcommand (SUPPRESS keeps earlier values)."""
    command.add_argument(
        "--log-level", choices=LOG_LEVELS, type=str.upper, default=argparse.SUPPRESS, help="as above"
    )
    command.add_argument("--env-file", default=argparse.SUPPRESS, help="as above")


def _transport_options(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--transport",
        choices=["stdio", "http"],
        help="stdio (default: PANGEA_MCP_TRANSPORT or stdio), or streamable HTTP at /mcp",
    )
    command.add_argument(
        "--host",
        help="HTTP bind address (default: PANGEA_MCP_HOST or 127.0.0.1); anything but loopback needs "
        "PANGEA_MCP_AUTH_TOKEN or a JWT key",
    )
    command.add_argument(
        "--port", type=int, help="HTTP port (default: PANGEA_MCP_PORT or 8080; 0 = any free)"
    )


def _parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The command line, and its subcommands by name."""
    parser = argparse.ArgumentParser(
        prog="pangea-mcp",
        usage=f"pangea-mcp [-h] [--version] [--log-level LEVEL] [--env-file PATH]\n       {SERVE_USAGE}"
        f"\n       {PROXY_USAGE}\n       pangea-mcp tools [--json]\n       pangea-mcp call TOOL --args JSON",
        description="MCP server for Pangea security services. Configure it with PANGEA_* environment "
        "variables or a .env file: PANGEA_TOKEN, or PANGEA_VAULT_TOKEN + PANGEA_VAULT_ITEM_ID. Without a "
        "command it serves as `serve` does, on PANGEA_MCP_TRANSPORT (stdio by default).",
    )
    parser.add_argument("--version", action="version", version=f"pangea-mcp {__version__}")
    parser.add_argument(
        "--log-level",
        choices=LOG_LEVELS,
        type=str.upper,
        help="log level on stderr (default: PANGEA_LOG_LEVEL or WARNING)",
    )
    parser.add_argument(
        "--env-file", default=".env", help="optional .env file with PANGEA_* settings (default: ./.env)"
    )
    commands = parser.add_subparsers(dest="command", title="commands", metavar="{serve,proxy,tools,call}")
    serve = commands.add_parser(
        "serve",
        prog="pangea-mcp serve",
        usage=SERVE_USAGE,
        help="serve the Pangea tools over stdio or streamable HTTP",
        description="Serve the Pangea tools over stdio, or over streamable HTTP at http://HOST:PORT/mcp "
        "with GET /health (liveness) and GET /ready (readiness). HTTP clients authenticate with "
        "PANGEA_MCP_AUTH_TOKEN as a bearer token, or a JWT (PANGEA_MCP_JWT_*).",
    )
    _transport_options(serve)
    _common_options(serve)
    proxy = commands.add_parser(
        "proxy",
        prog="pangea-mcp proxy",
        usage=PROXY_USAGE,
        help="serve another MCP server with Pangea AI Guard in between",
        description="Serve another MCP server over stdio (or HTTP, as `serve` does), checking with Pangea "
        "AI Guard its tool list, every tool call's arguments and result, resource reads and prompts. Wrap "
        "a stdio server with -- COMMAND [ARGS...] (it runs as a child process without any PANGEA_* "
        "variable) or an HTTP one with --upstream-url. Configuration as for the server (PANGEA_TOKEN or "
        "Vault, PANGEA_GUARD_*, PANGEA_MCP_*).",
    )
    proxy.add_argument(
        "--upstream-url", metavar="URL", help="MCP endpoint of an HTTP (or SSE) server to wrap"
    )
    proxy.add_argument(
        "--server-name",
        metavar="NAME",
        help="the wrapped server's name in AI Guard's log (default: from the command or the URL's host)",
    )
    _transport_options(proxy)
    _common_options(proxy)
    tools = commands.add_parser(
        "tools",
        prog="pangea-mcp tools",
        help="list the tools this configuration serves",
        description="List the tools this configuration serves (name, read-only/destructive, first line of "
        "the description, arguments; `?` marks optional ones), as an MCP client sees them.",
    )
    tools.add_argument("--json", action="store_true", help="print the full tool list (with schemas) as JSON")
    _common_options(tools)
    call = commands.add_parser(
        "call",
        prog="pangea-mcp call",
        usage="pangea-mcp call TOOL [--args JSON | --args @FILE]",
        help="call one tool and print its structured result as JSON",
        description="Call one tool through the in-process MCP client (same checks and guardrails as a "
        "real client) and print its structured result as JSON on stdout. Exit status: 0 result, 1 the "
        "tool reported an error (on stderr), 2 bad command line.",
    )
    call.add_argument("tool", metavar="TOOL", help="tool name, as `pangea-mcp tools` lists it")
    call.add_argument(
        "--args",
        dest="arguments",
        metavar="JSON",
        default="{}",
        help='the arguments as a JSON object, e.g. \'{"ipAddresses": ["8.8.8.8"]}\', or @FILE to read them',
    )
    _common_options(call)
    return parser, {"serve": serve, "proxy": proxy, "tools": tools, "call": call}


@dataclass(frozen=True)
class Transport:
    """Where to serve: flags first, then the PANGEA_MCP_* settings."""

    kind: str
    host: str
    port: int

    @classmethod
    def of(cls, args: argparse.Namespace, settings: Settings) -> Transport:
        port = getattr(args, "port", None)
        return cls(
            kind=getattr(args, "transport", None) or settings.mcp_transport,
            host=getattr(args, "host", None) or settings.mcp_host,
            port=settings.mcp_port if port is None else port,
        )


def _split_command(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """Options, and the wrapped server's command line after `--` (never parsed as our options)."""
    args = list(argv)
    if "--" not in args:
        return args, []
    at = args.index("--")
    return args[:at], args[at + 1 :]


def _serve(args: argparse.Namespace, command: list[str], settings: Settings, where: Transport) -> Runner:
    """What `pangea-mcp [serve]` runs."""
    from pangea_mcp.server import build_server

    _local_notice(settings)
    if where.kind == "stdio":
        server = build_server(settings)

        def run() -> int | None:
            server.run(transport="stdio", show_banner=False)
            return None

        return run

    from pangea_mcp import http, http_workers
    from pangea_mcp.errors import StartupError
    from pangea_mcp.http_limits import Readiness

    readiness = Readiness()
    refusal = http_workers.workers_refusal(settings)
    if refusal is not None:
        raise StartupError(refusal)
    server = build_server(settings, readiness=readiness, outer_middleware=http.transport_middleware(settings))
    if settings.mcp_workers > 1:
        workers = functools.partial(
            http_workers.serve_workers, server, settings, readiness, host=where.host, port=where.port
        )
        return lambda: workers(workers=settings.mcp_workers)
    serve = functools.partial(http.serve, server, settings, readiness, host=where.host, port=where.port)
    return lambda: http.run(serve)


def _proxy(args: argparse.Namespace, command: list[str], settings: Settings, where: Transport) -> Runner:
    """What `pangea-mcp proxy` runs: returns the exit status when the wrapped server ended the session."""
    import anyio

    from pangea_mcp import proxy

    readiness = outer = None
    if where.kind == "http":
        from pangea_mcp import http
        from pangea_mcp.http_limits import Readiness

        readiness, outer = Readiness(), http.transport_middleware(settings)

    def serving(server: FastMCP, child: proxy.ChildServer | None) -> Callable[[], int | None]:
        if readiness is None:
            return lambda: anyio.run(proxy.serve_stdio, server, child)

        def run_http() -> int | None:
            until = child.ended if child is not None else None
            anyio.run(
                functools.partial(
                    http.serve, server, settings, readiness, host=where.host, port=where.port, until=until
                )
            )
            return child.returncode if child is not None and child.ended.is_set() else None

        return run_http

    if args.upstream_url:
        name = args.server_name or proxy.describe_url(args.upstream_url)
        server = proxy.build(
            settings, args.upstream_url, server_name=name, readiness=readiness, outer_middleware=outer or ()
        )
        return serving(server, None)
    name = args.server_name or proxy.describe_command(command)
    env = proxy.child_environment(os.environ, settings.secret_values())
    child = proxy.ChildServer(command, env)
    server = proxy.build(settings, child, server_name=name, readiness=readiness, outer_middleware=outer or ())
    serve = serving(server, child)

    def run() -> int | None:
        code = serve()
        if code is None:
            return None
        from pangea_mcp.logs import scrub

        status, what = proxy.exit_status(code)
        print(scrub(f"pangea-mcp proxy: the upstream server ({name}) {what}; stopping"), file=sys.stderr)
        return status

    return run


def _local_notice(settings: Settings) -> None:
    """Say on stderr which tools the local backend serves and which it hides (when it answers any)."""
    from pangea_mcp.local import startup_notice

    notice = startup_notice(settings)
    if notice is not None:
        print(notice, file=sys.stderr)


def _tools(args: argparse.Namespace, command: list[str], settings: Settings, where: Transport) -> Runner:
    """What `pangea-mcp tools` runs."""
    import anyio

    from pangea_mcp import shell

    _local_notice(settings)
    return lambda: anyio.run(functools.partial(shell.list_tools, settings, as_json=args.json))


def _call(args: argparse.Namespace, command: list[str], settings: Settings, where: Transport) -> Runner:
    """What `pangea-mcp call` runs."""
    import anyio

    from pangea_mcp import shell

    try:
        arguments = shell.parse_arguments(args.arguments)
    except (ValueError, OSError) as exc:
        message = str(exc)

        def refuse() -> int:
            print(f"pangea-mcp call: {message}", file=sys.stderr)
            return shell.USAGE

        return refuse
    return lambda: anyio.run(shell.call_tool, settings, args.tool, arguments)


#: The subcommands; each builds what it will run. (Plain `pangea-mcp` is `serve`.)
COMMANDS: dict[str, Callable[[argparse.Namespace, list[str], Settings, Transport], Runner]] = {
    "serve": _serve,
    "proxy": _proxy,
    "tools": _tools,
    "call": _call,
}


def main(argv: Sequence[str] | None = None) -> int:
    options, command = _split_command(sys.argv[1:] if argv is None else argv)
    parser, subparsers = _parser()
    args = parser.parse_args(options)
    if args.command == "proxy" and bool(command) == bool(args.upstream_url):
        subparsers["proxy"].error(
            "give the server to wrap either after -- or with --upstream-url (one of them)"
        )
    if command and args.command != "proxy":
        parser.error("arguments after -- are only taken by `pangea-mcp proxy`")
    # FastMCP reads these at import: no banner, no rich console output, nothing but JSON-RPC on stdout.
    os.environ.setdefault("FASTMCP_SHOW_SERVER_BANNER", "false")
    os.environ.setdefault("FASTMCP_ENABLE_RICH_TRACEBACKS", "false")
    os.environ.setdefault("FASTMCP_ENABLE_RICH_LOGGING", "false")
    os.environ.setdefault("FASTMCP_CHECK_FOR_UPDATES", "off")
    # httpx imports its command-line client (rich, pygments: ~150 ms of startup) whenever those are
    # installed, as they are beside FastMCP; the server never uses it.
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]

    from pangea_mcp.config import Settings
    from pangea_mcp.errors import StartupError
    from pangea_mcp.logs import scrub, setup_logging

    try:
        settings = Settings(_env_file=args.env_file if os.path.exists(args.env_file) else None)
    except ValidationError as exc:
        print(_settings_error(exc), file=sys.stderr)
        return 2
    if args.command == "proxy" and settings.guard is False:
        print(
            "pangea-mcp proxy: PANGEA_GUARD=false would turn off AI Guard, which is all the proxy adds; "
            "unset it",
            file=sys.stderr,
        )
        return 2
    where = Transport.of(args, settings)
    if where.kind == "http":
        from pangea_mcp.http import bind_refusal

        refusal = bind_refusal(settings, where.host)
        if refusal is not None:
            print(refusal, file=sys.stderr)
            return 2
    setup_logging(args.log_level or settings.log_level)

    try:
        run = COMMANDS[args.command or "serve"](args, command, settings, where)
        status = run()
    except StartupError as exc:
        print(f"pangea-mcp: {scrub(str(exc))}", file=sys.stderr)
        return 1
    except BaseExceptionGroup as group:
        startup = group.subgroup(lambda e: isinstance(e, StartupError))
        if startup is None:
            raise
        first = startup.exceptions[0]
        while isinstance(first, BaseExceptionGroup):
            first = first.exceptions[0]
        print(f"pangea-mcp: {scrub(str(first))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return status or 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
