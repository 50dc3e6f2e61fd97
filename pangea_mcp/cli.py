"""Command line: `pangea-mcp` runs the stdio server; configuration comes from PANGEA_* variables."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from pangea_mcp import __version__


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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pangea-mcp",
        description="MCP server for Pangea security services (stdio). Configure it with PANGEA_* "
        "environment variables or a .env file: PANGEA_TOKEN, or PANGEA_VAULT_TOKEN + PANGEA_VAULT_ITEM_ID.",
    )
    parser.add_argument("--version", action="version", version=f"pangea-mcp {__version__}")
    parser.add_argument(
        "--log-level",
        choices=["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"],
        type=str.upper,
        help="log level on stderr (default: PANGEA_LOG_LEVEL or WARNING)",
    )
    parser.add_argument(
        "--env-file", default=".env", help="optional .env file with PANGEA_* settings (default: ./.env)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # FastMCP reads these at import: no banner, no rich console output, nothing but JSON-RPC on stdout.
    os.environ.setdefault("FASTMCP_SHOW_SERVER_BANNER", "false")
    os.environ.setdefault("FASTMCP_ENABLE_RICH_TRACEBACKS", "false")
    os.environ.setdefault("FASTMCP_ENABLE_RICH_LOGGING", "false")
    os.environ.setdefault("FASTMCP_CHECK_FOR_UPDATES", "off")

    from pangea_mcp.config import Settings
    from pangea_mcp.errors import StartupError
    from pangea_mcp.logs import scrub, setup_logging

    try:
        settings = Settings(_env_file=args.env_file if os.path.exists(args.env_file) else None)
    except ValidationError as exc:
        print(_settings_error(exc), file=sys.stderr)
        return 2
    setup_logging(args.log_level or settings.log_level)

    from pangea_mcp.server import build_server

    server = build_server(settings)
    try:
        server.run(transport="stdio", show_banner=False)
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
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
