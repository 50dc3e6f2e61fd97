"""Redact: remove sensitive values from text and JSON, and reverse format-preserving encryption."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Protocol

from fastmcp import Context, FastMCP
from mcp.types import ToolAnnotations
from pydantic import AfterValidator, BeforeValidator, Field

from pangea_mcp.backends import Backends
from pangea_mcp.client import PangeaClient, ProgressFn
from pangea_mcp.errors import invalid_arguments, tool_errors
from pangea_mcp.models import PangeaRequest, PangeaResult, dedupe
from pangea_mcp.services.redact_args import (
    MAX_FPE_CONTEXT,
    Debug,
    Json,
    ReturnResult,
    RuleNames,
    RulesetNames,
    base64_context,
    json_path,
    not_blank,
    redacted_input,
    structured,
)

if TYPE_CHECKING:
    from pangea_mcp.local.redaction import Redaction

SERVICE = "redact"
# Computes a redacted copy; nothing is stored or changed on the user's side.
_REDACT = ToolAnnotations(
    read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=True
)
# Not marked read-only on purpose: it writes nothing, but it discloses the protected originals, and
# clients run read-only tools without asking. Keeping it out of that class keeps a human in the loop.
_UNREDACT = ToolAnnotations(
    read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=True
)


class _Options(PangeaRequest):
    config_id: str | None = None
    rules: list[str] | None = None
    rulesets: list[str] | None = None
    return_result: bool | None = None
    debug: bool | None = None


class _RedactRequest(_Options):
    text: str


class _StructuredRequest(_Options):
    data: Json
    jsonp: list[str] | None = None


class _UnredactRequest(PangeaRequest):
    config_id: str | None = None
    redacted_data: str | Json
    fpe_context: str


class RecognizerHit(PangeaResult):
    # Pangea also sends `text`, the matched original; it is dropped here on purpose (never returned).
    field_type: str = Field(description="Entity type, e.g. US_SSN")
    score: float = Field(description="Confidence 0 to 1")
    start: int = Field(description="Start offset of the match")
    end: int = Field(description="End offset of the match")
    redacted: bool = Field(description="Whether this match was redacted")
    data_key: str | None = Field(default=None, description="JSON key of the field (structured data)")


class DebugReport(PangeaResult):
    summary_counts: dict[str, int] = Field(default_factory=dict, description="Redactions per entity type")
    recognizer_results: list[RecognizerHit] = Field(default_factory=list)


class _Common(PangeaResult):
    count: int = Field(description="Number of values redacted")
    report: DebugReport | None = Field(default=None, description="Only with debug true")
    fpe_context: str | None = Field(
        default=None,
        description="Present when values were format-preserving encrypted (Pangea backend only): needed "
        "to unredact them. Treat it as a secret: keep it with the redacted data, never display or log it.",
    )


class _RedactResult(_Common):
    redacted_text: str | None = None


class _StructuredResult(_Common):
    redacted_data: Json | None = None


class _UnredactResult(PangeaResult):
    data: str | Json


class RedactReport(_RedactResult):
    redacted_text: str | None = Field(default=None, description="The text with values redacted")
    request_id: str | None = Field(default=None, description="Pangea request id (null on the local backend)")


class StructuredRedactReport(_StructuredResult):
    redacted_data: Json | None = Field(default=None, description="The JSON with values redacted in place")
    request_id: str | None = Field(default=None, description="Pangea request id (null on the local backend)")


class UnredactReport(PangeaResult):
    data: str | Json = Field(description="The input with FPE-encrypted values decrypted")
    request_id: str | None = Field(default=None, description="Pangea request id")


class RedactBackend(Protocol):
    """Who answers redact and redact_structured: Pangea Redact, or the local recognisers."""

    async def redact(self, request: _RedactRequest, progress: ProgressFn | None) -> RedactReport: ...

    async def redact_structured(
        self, request: _StructuredRequest, progress: ProgressFn | None
    ) -> StructuredRedactReport: ...


@dataclass
class PangeaRedact:
    """Pangea Redact `/v1/redact` and `/v1/redact_structured`, with the project's configuration."""

    pangea: PangeaClient

    async def redact(self, request: _RedactRequest, progress: ProgressFn | None) -> RedactReport:
        with tool_errors():
            response = await self.pangea.call(SERVICE, "v1/redact", request, _RedactResult, progress=progress)
        return RedactReport(**dict(response.result), request_id=response.request_id)

    async def redact_structured(
        self, request: _StructuredRequest, progress: ProgressFn | None
    ) -> StructuredRedactReport:
        with tool_errors():
            response = await self.pangea.call(
                SERVICE, "v1/redact_structured", request, _StructuredResult, progress=progress
            )
        return StructuredRedactReport(**dict(response.result), request_id=response.request_id)


def _types(tool: str, request: _Options) -> frozenset[str]:
    from pangea_mcp.local import redaction

    try:
        return redaction.entity_types(request.rules, request.rulesets)
    except redaction.UnknownNames as exc:
        raise invalid_arguments(tool, exc.problems) from None


def _report(found: Redaction) -> DebugReport:
    # Like Pangea's debug report minus the matched text, which is never returned.
    hits = [
        RecognizerHit(
            field_type=hit.field_type,
            score=hit.score,
            start=hit.start,
            end=hit.end,
            redacted=True,
            data_key=key,
        )
        for hit, key in zip(found.hits, found.keys, strict=True)
    ]
    return DebugReport(summary_counts=found.summary_counts, recognizer_results=hits)


class LocalRedact:
    """The local recognisers (pangea_mcp.local.redaction): every value found becomes <ENTITY_TYPE>, as with
    Pangea's default replacement. No configuration, no FPE (so no fpe_context), no request id.

    The recognisers (phonenumbers, python-stdnum, detect-secrets: about 0.2 s of imports) are imported
    when a local call first needs them, so a server on Pangea's backend never pays for them."""

    async def redact(self, request: _RedactRequest, progress: ProgressFn | None) -> RedactReport:
        from pangea_mcp.local import redaction

        types = _types("redact", request)
        # Pure CPU, but a long text takes a while: off the event loop.
        found = await asyncio.to_thread(redaction.redact_text, request.text, types)
        return RedactReport(
            redacted_text=found.redacted if request.return_result is not False else None,
            count=len(found.hits),
            report=_report(found) if request.debug else None,
        )

    async def redact_structured(
        self, request: _StructuredRequest, progress: ProgressFn | None
    ) -> StructuredRedactReport:
        from pangea_mcp.local import redaction

        types = _types("redact_structured", request)
        for i, path in enumerate(request.jsonp or []):
            try:
                redaction.check_jsonpath(path)
            except redaction.JsonPathError as exc:
                raise invalid_arguments("redact_structured", {("jsonp", i): str(exc)}) from None
        found = await asyncio.to_thread(redaction.redact_data, request.data, request.jsonp, types)
        return StructuredRedactReport(
            redacted_data=found.redacted if request.return_result is not False else None,
            count=len(found.hits),
            report=_report(found) if request.debug else None,
        )


def register(mcp: FastMCP, backends: Backends) -> None:
    local = backends.is_local(SERVICE)
    backend: RedactBackend = LocalRedact() if local else PangeaRedact(backends.pangea)
    settings = backends.settings
    # config_id comes from the server's configuration, never from the model (many projects hold one).
    # The local backend has no configuration: it ignores it.
    config_id = None if local else settings.redact_config_id

    def options(
        rules: list[str] | None, rulesets: list[str] | None, return_result: bool, debug: bool
    ) -> dict[str, Any]:
        return {
            "config_id": config_id,
            "rules": rules,
            "rulesets": rulesets,
            "return_result": None if return_result else False,
            "debug": True if debug else None,
        }

    @mcp.tool(name="redact", title="Redact text", annotations=_REDACT, tags={SERVICE})
    async def redact(
        ctx: Context,
        text: Annotated[
            str, Field(min_length=1, description="The text to redact"), AfterValidator(not_blank)
        ],
        rules: RuleNames = None,
        rulesets: RulesetNames = None,
        return_result: ReturnResult = True,
        debug: Debug = False,
    ) -> RedactReport:
        """Return the text with sensitive values redacted, the number of redactions, and any fpe_context.

        Sensitive values are names, e-mail addresses, phone, card and ID numbers, secrets and the like.
        Use it before storing, logging or sharing text, or before sending it to another model or tool.
        With Pangea, what is redacted and how (masking, replacement, hashing, format-preserving
        encryption) is set in the Pangea Redact configuration; `rules` and `rulesets` narrow it for one
        call. The local backend (no Pangea account) replaces each value with <ENTITY_TYPE> and knows
        e-mail, phone, card, IBAN, national ID and IP address patterns and credentials, but not names or
        postal addresses; it never returns fpe_context. count 0 means no rule matched, not that the text
        is free of sensitive data. `fpe_context` is present only when values were encrypted reversibly.
        """
        body = _RedactRequest(text=text, **options(rules, rulesets, return_result, debug))
        return await backend.redact(body, ctx.report_progress)

    @mcp.tool(name="redact_structured", title="Redact JSON", annotations=_REDACT, tags={SERVICE})
    async def redact_structured(
        ctx: Context,
        data: Annotated[
            Json,
            BeforeValidator(structured),
            Field(description="The JSON object or array to redact"),
        ],
        jsonp: Annotated[
            list[Annotated[str, Field(max_length=512), AfterValidator(json_path)]] | None,
            Field(
                min_length=1,
                max_length=100,
                description="JSONPath expressions of the fields to redact, e.g. $.user.email or $..ssn. "
                "Omit to scan every field.",
            ),
        ] = None,
        rules: RuleNames = None,
        rulesets: RulesetNames = None,
        return_result: ReturnResult = True,
        debug: Debug = False,
    ) -> StructuredRedactReport:
        """Return the JSON data with sensitive values redacted in place (same shape), and how many.

        Use it for records, API payloads or tool results where the structure must survive; use redact
        for plain text. `jsonp` limits redaction to the given fields. count 0 means no rule matched.
        `fpe_context` is present only when values were encrypted reversibly (never on the local backend,
        which scans string and integer values, not keys, and supports JSONPath without filters).
        """
        body = _StructuredRequest(
            data=data,
            jsonp=dedupe(jsonp) if jsonp else None,
            **options(rules, rulesets, return_result, debug),
        )
        return await backend.redact_structured(body, ctx.report_progress)

    # Locally there is no format-preserving encryption, so nothing to reverse.
    if local or not settings.allow_unredact:
        return
    pangea = backends.pangea

    @mcp.tool(name="unredact", title="Reveal redacted data", annotations=_UNREDACT, tags={SERVICE})
    async def unredact(
        ctx: Context,
        redacted_data: Annotated[
            str | Json,
            BeforeValidator(redacted_input),
            Field(description="The redacted text or JSON, as redact or redact_structured returned it"),
        ],
        fpe_context: Annotated[
            str,
            Field(min_length=4, max_length=MAX_FPE_CONTEXT, description="The fpe_context redact returned"),
            AfterValidator(base64_context),
        ],
    ) -> UnredactReport:
        """Return the data with its original sensitive values: decrypts what redact encrypted with FPE.

        This reveals the values redaction was meant to hide. Use it only when the user explicitly asks
        to see the original data and is entitled to it; never to answer a question that the redacted
        data already answers. Only FPE-redacted values come back; masked, replaced or hashed values
        stay as they are.
        """
        body = _UnredactRequest(config_id=config_id, redacted_data=redacted_data, fpe_context=fpe_context)
        with tool_errors():
            response = await pangea.call(
                SERVICE, "v1/unredact", body, _UnredactResult, progress=ctx.report_progress
            )
        return UnredactReport(data=response.result.data, request_id=response.request_id)
