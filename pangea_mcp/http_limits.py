"""Serving limits: per-client rate limit (HTTP), result-size cap (every transport), readiness flag."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pydantic_core
from fastmcp.exceptions import ToolError
from fastmcp.server.dependencies import get_access_token, get_http_request
from fastmcp.server.middleware import CallNext, Middleware, MiddlewareContext
from fastmcp.server.middleware.rate_limiting import RateLimitError, RateLimitingMiddleware
from fastmcp.tools import ToolResult
from mcp.types import CallToolRequestParams

log = logging.getLogger(__name__)


class Readiness:
    """Whether the server may take MCP requests: the answer of GET /ready and the gate in front of /mcp.

    The server lifespan calls `started` once its startup is done (service token loaded, audit trail
    running) and `stopped` on the way out; the HTTP front end sets `draining` on SIGTERM.
    """

    def __init__(self) -> None:
        self._token_loaded: Callable[[], bool] | None = None
        self.draining = False

    def started(self, token_loaded: Callable[[], bool]) -> None:
        self._token_loaded = token_loaded

    def stopped(self) -> None:
        self._token_loaded = None

    @property
    def serving(self) -> bool:
        """The lifespan is up and no shutdown has begun: /mcp requests are let through."""
        return self._token_loaded is not None and not self.draining

    @property
    def ready(self) -> bool:
        """Serving, and the service token is in memory (always true when no Pangea account is used)."""
        check = self._token_loaded
        return check is not None and not self.draining and check()


def client_key() -> str:
    """Who a request comes from, for the rate limit.

    A JWT's subject (or client id) when the client sent one; otherwise the peer address, since a
    static bearer token is usually shared by every agent. Behind a proxy that is the proxy's address
    unless uvicorn trusts its X-Forwarded-For (FORWARDED_ALLOW_IPS).
    """
    token = get_access_token()
    if token is not None:
        claims = token.claims or {}
        subject = token.subject or claims.get("sub") or claims.get("client_id") or claims.get("azp")
        if subject:
            return f"jwt:{claims.get('iss', '')}:{subject}"
    try:
        peer = get_http_request().client
    except RuntimeError:
        return "local"
    return f"addr:{peer.host}" if peer is not None else "addr:unknown"


class ClientRateLimit(RateLimitingMiddleware):
    """FastMCP's token bucket per client (see `client_key`); an exceeded limit is an MCP error that
    tells the client how fast it may go."""

    def __init__(self, per_second: float, burst: int) -> None:
        super().__init__(max_requests_per_second=per_second, burst_capacity=burst, get_client_id=_key)
        self._advice = (
            f"Rate limit exceeded: each client may make {per_second:g} requests per second (bursts of "
            f"{burst}). Slow down: wait a second, then retry, and batch items into fewer calls."
        )

    async def on_request(self, context: MiddlewareContext[Any], call_next: CallNext[Any, Any]) -> Any:
        try:
            return await super().on_request(context, call_next)
        except RateLimitError:
            log.warning("rate limit exceeded by %s", _key(context))
            raise RateLimitError(self._advice) from None


def _key(_context: MiddlewareContext[Any]) -> str:
    return client_key()


class ResponseLimit(Middleware):
    """A tool result bigger than `max_bytes` (as JSON) becomes an isError result saying so.

    Innermost, so an oversize result is dropped before the audit trail or AI Guard handle it. FastMCP's
    ResponseLimitingMiddleware truncates instead and removes every output schema; a truncated security
    verdict would be worse than none.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes

    async def on_call_tool(
        self,
        context: MiddlewareContext[CallToolRequestParams],
        call_next: CallNext[CallToolRequestParams, ToolResult],
    ) -> ToolResult:
        result = await call_next(context)
        if not isinstance(result, ToolResult):
            return result  # an input request or a task acknowledgement: nothing to measure
        size = len(pydantic_core.to_json(result, fallback=str))
        if size <= self.max_bytes:
            return result
        name = context.message.name
        log.warning("result of %s dropped: %d bytes > %d", name, size, self.max_bytes)
        raise ToolError(
            f"The result of {name} was too large to return ({size:,} bytes; the limit is "
            f"{self.max_bytes:,}, PANGEA_MCP_MAX_RESPONSE_BYTES). Narrow the request: fewer items per "
            "call, a shorter text, or a smaller page (limit, filters) where the tool has one.",
            log_level=logging.WARNING,
        )
