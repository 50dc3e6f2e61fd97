"""Secure Audit Log search (Pangea's /v1/search and /v1/results, or the local log), every proof checked."""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastmcp import Context, FastMCP
from fastmcp.exceptions import ToolError
from pydantic import AfterValidator, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from pangea_mcp import audit_verify as av
from pangea_mcp.errors import argument_message, tool_errors
from pangea_mcp.models import PangeaResult
from pangea_mcp.services.audit_root import (
    SERVICE,
    AuditBackend,
    RootInfo,
    RootSet,
    SearchPage,
    SearchRequest,
    parse_root,
    read_hints,
)

TOOL = "search_log"
#: Distinct tree sizes whose roots one search may fetch; beyond that consistency is "not_available".
MAX_ROOTS = 256

# -- time range (DateTimeRel in the audit spec) ---------------------------------------------------

_UNITS = {
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), timedelta(seconds=1)),
    **dict.fromkeys(("mi", "min", "mins", "minute", "minutes"), timedelta(minutes=1)),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), timedelta(hours=1)),
    **dict.fromkeys(("d", "da", "day", "days"), timedelta(days=1)),
    **dict.fromkeys(("w", "week", "weeks"), timedelta(weeks=1)),
    **dict.fromkeys(("mo", "mon", "month", "months"), timedelta(days=30)),
    **dict.fromkeys(("y", "year", "years"), timedelta(days=365)),
}
_DURATION = re.compile(r"(\d+)([a-z]+)")
_ABSOLUTE = re.compile(
    r"(\d{4})-(\d{1,2})-(\d{1,2})T(\d{1,2}):(\d{1,2}):(\d{1,2})(?:\.(\d{1,6}))?"
    r"(Z|[+-]\d{1,2}(?::?\d{1,2})?)?"
)


def instant(value: str, now: datetime) -> datetime:
    """The moment a DateTimeRel stands for: an RFC 3339 time, or a duration back from now."""
    duration = _DURATION.fullmatch(value)
    if duration and duration.group(2) in _UNITS:
        return now - int(duration.group(1)) * _UNITS[duration.group(2)]
    match = _ABSOLUTE.fullmatch(value)
    if not match:
        raise ValueError(
            "must be an RFC 3339 time such as 2025-01-31T12:00:00Z or a duration back from now such as "
            "30mi, 12h, 7d, 2w, 1mo, 1y"
        )
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    micro = int((match.group(7) or "0").ljust(6, "0"))
    zone = match.group(8) or "Z"
    offset = timedelta(0)
    if zone != "Z":
        digits = zone[1:].replace(":", "")
        hours, minutes = int(digits[:2] if len(digits) > 2 else digits), int(digits[2:] or 0)
        offset = (-1 if zone[0] == "-" else 1) * timedelta(hours=hours, minutes=minutes)
    try:
        return datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC) - offset
    except ValueError as exc:
        raise ValueError(f"is not a real date and time ({exc})") from None


def _time(value: str | None) -> str | None:
    if value is not None:
        instant(value, datetime.now(UTC))
    return value


TimeArg = Annotated[
    str | None,
    Field(
        max_length=128,
        description="RFC 3339 time (2025-01-31T12:00:00Z) or a duration back from now "
        "(30mi, 12h, 7d, 2w, 1mo, 1y)",
    ),
    AfterValidator(_time),
]
OrderBy = Literal["received_at", "timestamp", "actor", "action", "message", "source", "status", "target"]


def invalid(tool: str, argument: str, problem: str) -> ToolError:
    """The same isError text as a schema violation, for a rule that spans two arguments."""
    details = [
        InitErrorDetails(type=PydanticCustomError("value_error", problem), loc=(argument,), input=None)
    ]
    message = argument_message(tool, ValidationError.from_exception_data(tool, details))
    return ToolError(message, log_level=logging.WARNING)


# -- models ---------------------------------------------------------------------------------------


class Verification(PangeaResult):
    hash: av.Status = Field(description="The envelope hashes to the record's hash: content unchanged")
    membership: av.Status = Field(description="The membership proof leads from the hash to the root")
    consistency: av.Status = Field(
        description="The root the event was published in extends the previous published root"
    )
    signature: av.SignatureStatus = Field(description="Client-side Ed25519 signature of the event")
    outcome: Literal["verified", "failed", "incomplete"] = Field(
        description="failed if any check failed; verified if hash, membership and (where there is an "
        "earlier root) consistency verified; incomplete otherwise (see notes)"
    )
    notes: list[str] = Field(description="Why each check that is not `verified` is what it is")

    @classmethod
    def of(cls, checks: av.Checks) -> Verification:
        return cls(
            hash=checks.hash,
            membership=checks.membership,
            consistency=checks.consistency,
            signature=checks.signature,
            outcome=checks.outcome,
            notes=list(checks.notes),
        )


class AuditEvent(PangeaResult):
    # Custom audit schemas add their own fields; they are the data, so they are kept.
    model_config = ConfigDict(extra="allow")

    @model_validator(mode="before")
    @classmethod
    def _as_text(cls, value: object) -> object:
        # A custom schema may give a standard field another JSON type: shown as its JSON text.
        if isinstance(value, dict):
            return {
                k: v if v is None or isinstance(v, str) or k not in cls.model_fields else json.dumps(v)
                for k, v in value.items()
            }
        return value

    message: str | None = None
    actor: str | None = None
    action: str | None = None
    target: str | None = None
    status: str | None = None
    source: str | None = None
    old: str | None = None
    new: str | None = None
    tenant_id: str | None = None
    timestamp: str | None = None


class EventError(PangeaResult):
    field: str | None = None
    error: str | None = None


class AuditRecord(PangeaResult):
    event: AuditEvent | None = None
    received_at: str | None = Field(default=None, description="When Pangea received the event")
    hash: str | None = Field(default=None, description="SHA-256 of the stored envelope")
    published: bool | None = Field(default=None, description="Whether a published root covers it yet")
    leaf_index: int | None = None
    imported: bool | None = None
    signed: bool = Field(description="Whether the event carries a client-side signature")
    errors: list[EventError] = Field(default_factory=list, description="Problems Pangea found in the event")
    verification: Verification | None = Field(default=None, description="Null when verify was false")


class VerificationSummary(PangeaResult):
    verified: int
    failed: int
    incomplete: int
    notes: list[str]


class SearchReport(PangeaResult):
    count: int = Field(description="Matches Pangea found (capped by maxResults)")
    events: list[AuditRecord] = Field(description="The events returned, in the order asked for")
    search_id: str | None = Field(default=None, description="Pangea's id of this search (pas_...)")
    expires_at: str | None = None
    root: RootInfo | None = Field(default=None, description="Latest published root")
    unpublished_root: RootInfo | None = None
    verification: VerificationSummary | None = Field(default=None, description="Null when verify was false")
    request_id: str | None = None


def _sizes(pages: list[SearchPage]) -> list[int]:
    wanted: set[int] = set()
    for page in pages:
        root = parse_root(page.root)
        if root is not None and root.size is not None:
            wanted.add(root.size)
        for record in page.events:
            index = record.get("leaf_index")
            if (
                record.get("published")
                and isinstance(index, int)
                and not isinstance(index, bool)
                and index > 0
            ):
                wanted.update((index, index + 1))
    return sorted(wanted)


def _record(raw: dict[str, Any], checks: av.Checks | None) -> AuditRecord:
    found = raw.get("envelope")
    envelope: dict[str, Any] = found if isinstance(found, dict) else {}
    event = envelope.get("event")
    return AuditRecord(
        event=AuditEvent.model_validate(event) if isinstance(event, dict) else None,
        received_at=envelope.get("received_at"),
        hash=raw.get("hash"),
        published=raw.get("published"),
        leaf_index=raw.get("leaf_index"),
        imported=raw.get("imported"),
        signed=envelope.get("signature") is not None,
        errors=[EventError.model_validate(e) for e in envelope.get("err") or [] if isinstance(e, dict)],
        verification=Verification.of(checks) if checks is not None else None,
    )


def _root_info(raw: dict[str, Any] | None) -> RootInfo | None:
    return RootInfo.model_validate(raw) if isinstance(raw, dict) else None


def _distrust(checks: av.Checks, raw: dict[str, Any], root: av.Root | None, roots: RootSet) -> av.Checks:
    """Fail the checks that rest on a root proven false (a local root with a bad signature)."""
    if not roots.forged:
        return checks
    notes = list(checks.notes)
    membership, consistency = checks.membership, checks.consistency
    if root is not None and root.size in roots.forged:
        membership = "failed"
        notes.append(f"membership: the root of size {root.size} {roots.forged[root.size]}")
    index = raw.get("leaf_index")
    if isinstance(index, int) and index > 0:
        for size in (index, index + 1):
            if size in roots.forged:
                consistency = "failed"
                notes.append(f"consistency: the root of size {size} {roots.forged[size]}")
    return dataclasses.replace(checks, membership=membership, consistency=consistency, notes=tuple(notes))


def register_search(mcp: FastMCP, backend: AuditBackend) -> None:

    @mcp.tool(name=TOOL, title="Search the audit log", annotations=read_hints(backend), tags={SERVICE})
    async def search_log(
        query: Annotated[
            str,
            Field(
                description="Space-separated case-sensitive terms, optionally field-prefixed (actor:, "
                'action:, message:, new:, old:, source:, status:, target:); quote phrases: actor:"Jane Doe"'
            ),
        ],
        ctx: Context,
        maxResults: Annotated[
            int, Field(ge=1, le=10000, description="Most matches Pangea counts (1-10000)")
        ] = 10,
        limit: Annotated[int, Field(ge=1, le=10000, description="Most events returned (1-10000)")] = 10,
        start: TimeArg = None,
        end: TimeArg = None,
        order: Annotated[Literal["asc", "desc"], Field(description="Sort direction")] = "desc",
        order_by: Annotated[OrderBy, Field(description="Field to sort by")] = "received_at",
        verify: Annotated[
            bool, Field(description="Check every event's hash, proofs and signature (default true)")
        ] = True,
    ) -> SearchReport:
        """Return audit log events matching a query, each labelled with its tamper-proof verification.

        With verify (the default) every event says whether its hash, its membership in the published
        (or unpublished) root, the consistency of that root with the previous one, and its signature
        were verified, failed, or could not be checked (and why). An event whose outcome is `failed` may
        have been tampered with. Time range defaults to the last 14 days; no events means no match.
        On the local log, the query supports field:value terms and free text (matched in message),
        all required; OR, parentheses and negation are refused.
        """
        now = datetime.now(UTC)
        if start and end and instant(start, now) > instant(end, now):
            raise invalid(TOOL, "start", f"{start!r} is after end {end!r}; start must come first")
        wanted = min(limit, maxResults)
        body = SearchRequest(
            query=query,
            start=start,
            end=end,
            max_results=maxResults,
            limit=wanted,
            order=order,
            order_by=order_by,
            verbose=verify,
        )
        with tool_errors():
            pages, request_id = await backend.search(body, wanted, ctx.report_progress)
        first = pages[0]
        fetched = sum(len(page.events) for page in pages)
        report = SearchReport(
            count=first.count,
            events=[],
            search_id=first.id,
            expires_at=first.expires_at,
            root=_root_info(pages[-1].root),
            unpublished_root=_root_info(pages[-1].unpublished_root),
            request_id=request_id,
        )
        if not verify:
            report.events = [_record(raw, None) for page in pages for raw in page.events][:wanted]
            return report

        sizes = _sizes(pages)
        notes = [backend.roots_note]
        if len(sizes) > MAX_ROOTS:
            notes.append(f"{len(sizes)} roots needed; only {MAX_ROOTS} fetched: narrow the search")
            sizes = sizes[:MAX_ROOTS]

        async def progress(done: int) -> None:
            await ctx.report_progress(
                fetched + done, fetched + len(sizes), f"fetched {done} of {len(sizes)} roots"
            )

        with tool_errors():
            known = await backend.roots(sizes, progress)
        notes += known.notes
        for page in pages:
            root, unpublished = parse_root(page.root), parse_root(page.unpublished_root)
            for raw in page.events:
                checks = av.check_record(raw, root=root, unpublished_root=unpublished, roots=known.found)
                report.events.append(_record(raw, _distrust(checks, raw, root, known)))
        report.events = report.events[:wanted]
        outcomes = [e.verification.outcome for e in report.events if e.verification is not None]
        report.verification = VerificationSummary(
            verified=outcomes.count("verified"),
            failed=outcomes.count("failed"),
            incomplete=outcomes.count("incomplete"),
            notes=notes,
        )
        return report
