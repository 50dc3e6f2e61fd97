"""build_server(): the FastMCP app, its lifespan (client + service token) and the enabled tool modules."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastmcp import FastMCP
from fastmcp.exceptions import ToolError
from fastmcp.exceptions import ValidationError as ArgumentsError
from fastmcp.server.middleware import CallNext, Middleware, MiddlewareContext
from fastmcp.tools import ToolResult
from mcp.types import CallToolRequestParams
from pydantic import ValidationError as PydanticValidationError

from pangea_mcp import __version__
from pangea_mcp.client import PangeaClient, SleepFn
from pangea_mcp.config import Settings
from pangea_mcp.errors import argument_message
from pangea_mcp.services import REGISTRARS
from pangea_mcp.vault import ServiceToken

INSTRUCTIONS = """\
Pangea security tools. Which tool answers which question:
- Is this IP address dangerous? lookup_ip_address_reputation. Where is it? geolocate.
  Who runs it? lookup_domain_from_ip_address. Does it hide a user? is_vpn, is_proxy.
- Is this domain dangerous? lookup_domain_reputation. Who registered it, and when? whois.
All IP tools take a list (ipAddresses, up to 100): batch addresses into one call. Private and reserved
addresses are answered without a lookup. A verdict of `unknown` means no data, not safe.
Errors say what to fix; quote the request_id when reporting a Pangea problem to the user."""


class ArgumentErrors(Middleware):
    """Bad arguments become one isError line per argument, without pydantic's noise (types, URLs)."""

    async def on_call_tool(
        self,
        context: MiddlewareContext[CallToolRequestParams],
        call_next: CallNext[CallToolRequestParams, ToolResult],
    ) -> ToolResult:
        try:
            return await call_next(context)
        except ArgumentsError as exc:
            cause = exc.__cause__
            if isinstance(cause, PydanticValidationError):
                raise ToolError(
                    argument_message(context.message.name, cause), log_level=logging.WARNING
                ) from None
            raise


def build_server(
    settings: Settings,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    sleep: SleepFn | None = None,
) -> FastMCP:
    """Build the server. `transport` and `sleep` exist for tests (in-process fake Pangea, no real waits)."""
    pangea = PangeaClient(settings, transport=transport, sleep=sleep)
    tokens = ServiceToken(settings, pangea)
    pangea.tokens = tokens

    @asynccontextmanager
    async def lifespan(_server: FastMCP) -> AsyncIterator[dict[str, object]]:
        async with pangea:
            await tokens.start()
            yield {}

    mcp = FastMCP(
        "pangea-mcp",
        instructions=INSTRUCTIONS,
        version=__version__,
        lifespan=lifespan,
        mask_error_details=True,
        on_duplicate="error",
        middleware=[ArgumentErrors()],
    )
    for name in settings.services:
        REGISTRARS[name](mcp, pangea)
    return mcp
