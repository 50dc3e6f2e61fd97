"""Command line: `pangea-mcp` runs the stdio server, `pangea-mcp proxy` guards another MCP server."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from pydantic import ValidationError

from pangea_mcp import __version__

if TYPE_CHECKING:
    from pangea_mcp.config import Settings

LOG_LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
PROXY_USAGE = "pangea-mcp proxy [options] (-- COMMAND [ARGS...] | --upstream-url URL)"


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


def _parser() -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    """The command line, and its `proxy` subcommand."""
    parser = argparse.ArgumentParser(
        prog="pangea-mcp",
        usage=f"pangea-mcp [-h] [--version] [--log-level LEVEL] [--env-file PATH]\n       {PROXY_USAGE}",
        description="MCP server for Pangea security services (stdio). Configure it with PANGEA_* "
        "environment variables or a .env file: PANGEA_TOKEN, or PANGEA_VAULT_TOKEN + PANGEA_VAULT_ITEM_ID.",
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
    commands = parser.add_subparsers(dest="command", title="commands", metavar="proxy")
    proxy = commands.add_parser(
        "proxy",
        prog="pangea-mcp proxy",
        usage=PROXY_USAGE,
        help="serve another MCP server over stdio with Pangea AI Guard in between",
        description="Serve another MCP server over stdio, checking with Pangea AI Guard its tool list, every "
        "tool call's arguments and result, resource reads and prompts. Wrap a stdio server with -- COMMAND "
        "[ARGS...] (it runs as a child process without any PANGEA_* variable) or an HTTP one with "
        "--upstream-url. Configuration as for the server (PANGEA_TOKEN or Vault, PANGEA_GUARD_*).",
    )
    proxy.add_argument(
        "--upstream-url", metavar="URL", help="MCP endpoint of an HTTP (or SSE) server to wrap"
    )
    proxy.add_argument(
        "--server-name",
        metavar="NAME",
        help="the wrapped server's name in AI Guard's log (default: from the command or the URL's host)",
    )
    # Also accepted after `proxy`; SUPPRESS keeps the values given before it.
    proxy.add_argument(
        "--log-level", choices=LOG_LEVELS, type=str.upper, default=argparse.SUPPRESS, help="as above"
    )
    proxy.add_argument("--env-file", default=argparse.SUPPRESS, help="as above")
    return parser, proxy


def _split_command(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """Options, and the wrapped server's command line after `--` (never parsed as our options)."""
    args = list(argv)
    if "--" not in args:
        return args, []
    at = args.index("--")
    return args[:at], args[at + 1 :]


def _proxy(args: argparse.Namespace, command: list[str], settings: Settings) -> Callable[[], int | None]:
    """What `pangea-mcp proxy` runs: returns the exit status when the wrapped server ended the session."""
    import anyio

    from pangea_mcp import proxy

    if args.upstream_url:
        name = args.server_name or proxy.describe_url(args.upstream_url)
        server = proxy.build(settings, args.upstream_url, server_name=name)
        return lambda: anyio.run(proxy.serve_stdio, server)
    name = args.server_name or proxy.describe_command(command)
    env = proxy.child_environment(os.environ, settings.secret_values())
    child = proxy.ChildServer(command, env)
    server = proxy.build(settings, child, server_name=name)

    def run() -> int | None:
        code = anyio.run(proxy.serve_stdio, server, child)
        if code is None:
            return None
        from pangea_mcp.logs import scrub

        status, what = proxy.exit_status(code)
        print(scrub(f"pangea-mcp proxy: the upstream server ({name}) {what}; stopping"), file=sys.stderr)
        return status

    return run


def main(argv: Sequence[str] | None = None) -> int:
    options, command = _split_command(sys.argv[1:] if argv is None else argv)
    parser, proxy_parser = _parser()
    args = parser.parse_args(options)
    if args.command == "proxy" and bool(command) == bool(args.upstream_url):
        proxy_parser.error("give the server to wrap either after -- or with --upstream-url (one of them)")
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
    setup_logging(args.log_level or settings.log_level)

    if args.command == "proxy":
        run = _proxy(args, command, settings)
    else:
        from pangea_mcp.server import build_server

        server = build_server(settings)

        def run() -> int | None:
            server.run(transport="stdio", show_banner=False)
            return None

    try:
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
