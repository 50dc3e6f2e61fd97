"""What the end-to-end tests share, over stdio (tests/test_e2e_stdio.py and the tests built on it) and over
HTTP (tests/http_server.py): the installed console script, the child's PANGEA_* settings, canary secrets,
the intel tools it lists, an initialize request, and the text of a tool result."""

from __future__ import annotations

import secrets
import string
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from mcp.types import TextContent

SCRIPT = Path(sys.executable).parent / "pangea-mcp"

# The core issue's seven intel tools, as the server lists them with PANGEA_SERVICES=ip_intel,domain_intel.
TOOLS = [
    "lookup_ip_address_reputation",
    "geolocate",
    "lookup_domain_from_ip_address",
    "is_vpn",
    "is_proxy",
    "lookup_domain_reputation",
    "whois",
]

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "e2e", "version": "1"},
    },
}


def canary(prefix: str = "pts_") -> str:
    """A secret shaped like a real Pangea token (or, with another prefix, a client token), unique to this run."""
    return prefix + "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(32))


def child_env(template: str | None = None, **settings: str) -> dict[str, str]:
    """The PANGEA_* settings of a child server: fast retries and polls, the seven intel tools, the guard off;
    `settings` (e.g. token=...) become PANGEA_TOKEN=... and win."""
    env = {
        "PANGEA_POLL_INTERVAL": "0.01",
        "PANGEA_RETRY_BACKOFF": "0",
        "PANGEA_REQUEST_TIMEOUT": "10",
        # These tests cover the core issue's seven intel tools.
        "PANGEA_SERVICES": "ip_intel,domain_intel",
        # The AI Guard middleware (on by default with a token) is covered by tests/test_guard.py and
        # tests/test_proxy.py; these tests count and check the requests of the tools themselves.
        "PANGEA_GUARD": "false",
    }
    if template is not None:
        env["PANGEA_BASE_URL_TEMPLATE"] = template
    env.update({f"PANGEA_{name.upper()}": value for name, value in settings.items()})
    return env


class HasContent(Protocol):
    """A tool result: the official client's CallToolResult or FastMCP's."""

    @property
    def content(self) -> Sequence[object]: ...


def text_of(result: HasContent) -> str:
    return "\n".join(block.text for block in result.content if isinstance(block, TextContent))
