"""build_server(): the FastMCP app, its lifespan (client + service token) and the enabled tool modules."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager

import httpx
from fastmcp import FastMCP
from fastmcp.exceptions import ToolError
from fastmcp.exceptions import ValidationError as ArgumentsError
from fastmcp.server.middleware import CallNext, Middleware, MiddlewareContext
from fastmcp.tools import ToolResult
from mcp.types import CallToolRequestParams
from pydantic import ValidationError as PydanticValidationError

from pangea_mcp import __version__
from pangea_mcp.audit_trail import AuditTrail
from pangea_mcp.backends import Backends
from pangea_mcp.cache import Clock, IntelCache
from pangea_mcp.client import PangeaClient, SleepFn
from pangea_mcp.config import Settings
from pangea_mcp.errors import argument_message
from pangea_mcp.guard import EXEMPT_TOOLS, AIGuard, guard_enabled
from pangea_mcp.http_limits import Readiness, ResponseLimit
from pangea_mcp.services import REGISTRARS
from pangea_mcp.vault import ServiceToken


def instructions(settings: Settings) -> str:
    """The server's MCP instructions: which tool answers which question, for the enabled modules only."""
    unredact = "; reverse format-preserving redaction with unredact" if settings.allow_unredact else ""
    writes = "; generate_key and delete_vault_item (asks the user first)" if settings.vault_writes else ""
    guide = {
        "ai_guard": "- Is a prompt, model answer or document safe (injection, PII, secrets)? prompt_guard.",
        "redact": f"- Strip personal data or secrets from text or data? redact, redact_structured{unredact}.",
        "audit": "- Record an event in the tamper-proof audit log? log_entry. Find and verify events? "
        "search_log (each event says whether its proofs verified); get_audit_root.",
        "ip_intel": "- Is an IP address dangerous? lookup_ip_address_reputation. Where is it? geolocate. "
        "Who runs it? lookup_domain_from_ip_address. Does it hide a user? is_vpn, is_proxy.",
        "domain_intel": "- Is a domain dangerous? lookup_domain_reputation. Who registered it, when? whois.",
        "url_intel": "- Is a URL dangerous? lookup_url_reputation.",
        "file_intel": "- Is a file (by its hash) known to be malicious? lookup_file_reputation.",
        "embargo": "- Is an IP or a country under trade embargo? check_ip_embargo, check_iso_code_embargo.",
        "user_intel": "- Was an email, username, phone, IP or domain in a breach? check_breached. "
        "Is a password known to be breached? check_password_breached (the password never leaves the server).",
        "vault": f"- What is in Pangea Vault? get_vault_item, list_vault_items (metadata){writes}.",
    }
    local_guide = {
        "redact": "- Strip personal data or secrets from text or data? redact, redact_structured (local "
        "recognisers: e-mail, phone, cards, IBAN, national ids, IP addresses, credentials).",
        "audit": "- Record an event in the local tamper-evident audit log? log_entry. Find and verify "
        "events? search_log (each event says whether its proofs verified); get_audit_root.",
        "ip_intel": "- Where is an IP address (country, network operator)? geolocate (offline data).",
        "domain_intel": "- Who registered a domain, when? whois (asks the registry over RDAP).",
    }
    lines = ["Pangea security tools. Which tool answers which question:"]
    for name in settings.services:
        if settings.service_backend(name) == "pangea":
            lines.append(guide[name])
        elif name in local_guide:
            lines.append(local_guide[name])
    lines += [
        "Lookup tools take lists (up to 100 items): batch items into one call. Private and reserved IP "
        "addresses are answered without a lookup. A verdict of `unknown` means no data, not safe.",
        "Errors say what to fix; quote the request_id when reporting a Pangea problem to the user.",
    ]
    return "\n".join(lines)


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
    clock: Clock | None = None,
    readiness: Readiness | None = None,
    outer_middleware: Sequence[Middleware] = (),
) -> FastMCP:
    """Build the server. `transport`, `sleep` and `clock` (the intel cache's monotonic clock) exist for
    tests (in-process fake Pangea, no real waits, no real expiry).

    The HTTP front end passes `readiness` (told when startup is done) and `outer_middleware` (the
    per-client rate limit, run before everything else)."""
    pangea = PangeaClient(settings, transport=transport, sleep=sleep)
    tokens = ServiceToken(settings, pangea)
    pangea.tokens = tokens
    backends = Backends(settings, pangea, IntelCache.from_settings(settings, clock=clock))
    trail = AuditTrail(settings, pangea, sleep=sleep) if settings.audit_trail else None
    middleware: list[Middleware] = [*outer_middleware, ArgumentErrors()]
    if trail is not None:
        # Outside the guard, so a call the guard blocked is still recorded (as an error).
        middleware.append(trail.middleware())
    if guard_enabled(settings):
        middleware.append(AIGuard(settings, pangea, server_name="pangea-mcp", exempt=EXEMPT_TOOLS))
    # Innermost: an oversize result is refused before the audit trail or AI Guard handle it.
    middleware.append(ResponseLimit(settings.mcp_max_response_bytes))
    # Whether anything here calls Pangea: then its token is loaded at startup (a bad one stops the
    # server at once) and readiness waits for it; a wholly local server has no token to wait for.
    needs_pangea = (
        any(not backends.is_local(service) for service in settings.services if backends.serves(service))
        or guard_enabled(settings)
        or (trail is not None and not backends.is_local("audit"))
    )

    @asynccontextmanager
    async def lifespan(_server: FastMCP) -> AsyncIterator[dict[str, object]]:
        async with pangea, AsyncExitStack() as stack:
            if needs_pangea:
                await tokens.start()
            if trail is not None:
                # Flushes the audit trail on the way out, while the client is still open.
                await stack.enter_async_context(trail.running())
            if readiness is not None:
                readiness.started(lambda: tokens.loaded or not needs_pangea)
            try:
                yield {}
            finally:
                if readiness is not None:
                    readiness.stopped()
                await backends.shutdown()

    mcp = FastMCP(
        "pangea-mcp",
        instructions=instructions(settings),
        version=__version__,
        lifespan=lifespan,
        mask_error_details=True,
        on_duplicate="error",
        middleware=middleware,
    )
    for name in settings.services:
        if backends.serves(name):
            REGISTRARS[name](mcp, backends)
    return mcp
