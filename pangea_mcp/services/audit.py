"""Secure Audit Log: write events, search them, and check every proof on the client side."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastmcp import FastMCP
from mcp.types import ToolAnnotations
from pydantic import AfterValidator, BeforeValidator, Field

from pangea_mcp import audit_verify as av
from pangea_mcp.audit_trail import LIMITS, MAX_TEXT, signer_from
from pangea_mcp.backends import Backends
from pangea_mcp.errors import tool_errors
from pangea_mcp.local.audit_backend import LocalAudit
from pangea_mcp.models import PangeaRequest, PangeaResult
from pangea_mcp.services.audit_root import (
    SERVICE,
    AuditBackend,
    LogRequest,
    PangeaAudit,
    register_root,
)
from pangea_mcp.services.audit_search import Verification, register_search

# Appends to the log: not read-only, and a repeated call writes a second event.
_WRITE = ToolAnnotations(
    read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=True
)


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("is empty; describe what happened")
    return value


def _rfc3339(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError("must be an RFC 3339 time such as 2025-01-31T12:00:00Z") from None
    if moment.tzinfo is None or "T" not in value:
        raise ValueError("must be an RFC 3339 time with a time zone, such as 2025-01-31T12:00:00Z")
    return value


def _json_text(value: object) -> object:
    # The SDKs send nested values in old/new as canonical JSON strings (pangea-api.md 5.4).
    return av.canonical_json(value).decode("utf-8") if isinstance(value, dict | list) else value


def _text(limit: int, description: str) -> Any:
    return Field(default=None, max_length=limit, description=f"{description} (at most {limit} characters)")


class AuditEventInput(PangeaRequest):
    """One event in Pangea's standard audit schema; every field is checked against its limit."""

    message: Annotated[
        str,
        Field(max_length=MAX_TEXT, description=f"What happened, free text (required, at most {MAX_TEXT})"),
        AfterValidator(_not_blank),
    ]
    actor: str | None = _text(LIMITS["actor"], "Who did it, e.g. a user id or e-mail")
    action: str | None = _text(LIMITS["action"], "What was done, e.g. created, deleted, login")
    target: str | None = _text(LIMITS["target"], "What it was done to")
    status: str | None = _text(LIMITS["status"], "Outcome, e.g. success or failure")
    source: str | None = _text(LIMITS["source"], "Where the event comes from, e.g. an application")
    old: Annotated[str | None, BeforeValidator(_json_text)] = _text(
        MAX_TEXT, "Value before the change (JSON objects are sent as canonical JSON text)"
    )
    new: Annotated[str | None, BeforeValidator(_json_text)] = _text(
        MAX_TEXT, "Value after the change (JSON objects are sent as canonical JSON text)"
    )
    tenant_id: str | None = _text(LIMITS["tenant_id"], "Tenant the event belongs to")
    timestamp: Annotated[str | None, AfterValidator(_rfc3339)] = _text(
        128, "When it happened, RFC 3339 (default: when Pangea receives it)"
    )


class LogEntryReport(PangeaResult):
    hash: str | None = Field(description="SHA-256 of the stored envelope: the event's id in the log")
    received_at: str | None = Field(default=None, description="When the log received the event")
    signed: bool = Field(description="Whether this server signed the event (PANGEA_AUDIT_SIGNING_KEY)")
    unpublished_root: str | None = Field(default=None, description="Root of the log right after the write")
    verification: Verification
    request_id: str | None = None


def backend_for(backends: Backends) -> AuditBackend:
    """Pangea's Secure Audit Log, or the local store when audit is answered locally."""
    if backends.is_local(SERVICE):
        local = LocalAudit.from_settings(backends.settings)
        backends.on_shutdown(local.close)
        return local
    return PangeaAudit(backends.pangea, backends.settings.audit_config_id)


def register(mcp: FastMCP, backends: Backends) -> None:
    settings = backends.settings
    signer = signer_from(settings)
    backend = backend_for(backends)
    # The unpublished root of this server's last verified write: the next write proves it extends it.
    last_root: list[str] = []

    # The local log is a file on this machine: not open-world.
    write = _WRITE.model_copy(update={"open_world_hint": backend.open_world})

    @mcp.tool(name="log_entry", title="Write an audit log event", annotations=write, tags={SERVICE})
    async def log_entry(
        event: Annotated[AuditEventInput, Field(description="The event; only `message` is required")],
    ) -> LogEntryReport:
        """Record one event in the tamper-proof Secure Audit Log and return its hash, verified.

        Use it to leave evidence of something that happened (who did what to what, and the outcome).
        Each call writes a new event. The answer's `verification` says whether the stored envelope
        hashes to `hash`, whether its membership proof leads to the log's root, and whether that root
        extends the root of this server's previous write; `failed` means the log cannot be trusted.
        On the local backend the log is a SQLite file on this machine with the same hashes and proofs,
        its roots signed with the local key.
        """
        fields = event.model_dump(exclude_none=True)
        body = LogRequest(event=fields, verbose=True)
        if signer is not None:
            body.signature, body.public_key = signer.sign(fields), signer.public_key
        with tool_errors():
            prev_root = last_root[-1] if last_root else await backend.trusted_root()
            body.prev_root = prev_root
            response = await backend.log(body)
        result = response.result
        checks = av.check_log_result(result.model_dump(exclude_none=True), prev_root=prev_root)
        if checks.outcome != "failed" and result.unpublished_root:
            last_root[:] = [result.unpublished_root]
        envelope = result.envelope or {}
        return LogEntryReport(
            hash=result.hash,
            received_at=envelope.get("received_at"),
            signed=signer is not None,
            unpublished_root=result.unpublished_root,
            verification=Verification.of(checks),
            request_id=response.request_id,
        )

    register_search(mcp, backend)
    register_root(mcp, backend)
