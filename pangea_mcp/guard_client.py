"""AI Guard's /v1/guard (pangea-api.md 5.1): the request, the verdict, and fail-open/closed handling."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from fastmcp.exceptions import PromptError, ResourceError, ToolError
from pydantic import Field
from pydantic import ValidationError as PydanticValidationError

from pangea_mcp.client import PangeaClient
from pangea_mcp.config import Settings
from pangea_mcp.detectors import AccessRule, Detector, findings
from pangea_mcp.errors import PangeaAPIError, PangeaError, PangeaUnavailable
from pangea_mcp.logs import scrub
from pangea_mcp.models import PangeaRequest, PangeaResult

# The middleware's logger: its records keep the name they had before this module was split out.
log = logging.getLogger("pangea_mcp.guard")

SERVICE = "ai-guard"
PATH = "v1/guard"

EventType = Literal["input", "output", "tool_input", "tool_output", "tool_listing"]
Role = Literal["system", "user", "assistant", "tool"]


class _Message(PangeaRequest):
    role: Role
    content: str


class _Input(PangeaRequest):
    messages: list[_Message]
    # tools/list entries, for event_type tool_listing (the official proxy's shape).
    tools: list[dict[str, Any]] | None = None


class _GuardRequest(PangeaRequest):
    input: _Input
    recipe: str
    event_type: EventType
    app_id: str | None = None
    extra_info: dict[str, Any]


class _OutputMessage(PangeaResult):
    role: str | None = None
    content: Any = None


class _Output(PangeaResult):
    messages: list[_OutputMessage] = Field(default_factory=list)


class _GuardResult(PangeaResult):
    # Required, as in the spec: an answer without detectors fails closed instead of reading as "clean".
    # Read (into Detector) only to explain a block.
    detectors: dict[str, dict[str, Any]]
    blocked: bool = False
    transformed: bool = False
    output: _Output | None = None
    access_rules: dict[str, AccessRule] = Field(default_factory=dict)


@dataclass(frozen=True)
class Verdict:
    blocked: bool
    transformed: bool
    #: The checked texts, in order: AI Guard's processed copies when transformed, else the originals.
    texts: list[str]
    request_id: str | None
    detectors: dict[str, dict[str, Any]]
    access_rules: dict[str, AccessRule]

    @property
    def found(self) -> str:
        """What fired (names, entity types, counts), never the detected values."""
        try:
            detectors = {name: Detector.model_validate(data) for name, data in self.detectors.items()}
        except PydanticValidationError:
            return "AI Guard's detector report could not be read"
        return findings(detectors, self.access_rules)

    @property
    def rid(self) -> str:
        return f"\nrequest_id: {self.request_id}" if self.request_id else ""


class Unusable(Exception):
    """AI Guard transformed the content into something that cannot stand in for it."""


def failure(exc: PangeaError) -> str:
    """Why AI Guard gave no verdict, fit for a log line or an error message."""
    if isinstance(exc, PangeaAPIError):
        text = f"it answered {exc.status} (HTTP {exc.http_status})"
        return text + (f", request_id {exc.request_id}" if exc.request_id else "")
    if isinstance(exc, PangeaUnavailable):
        return exc.reason
    return type(exc).__name__


class GuardClient:
    """Calls /v1/guard for one MCP server (its name and the app's settings go into every request)."""

    def __init__(self, settings: Settings, pangea: PangeaClient, *, server_name: str) -> None:
        self._settings = settings
        self._pangea = pangea
        self._server_name = server_name

    async def check(
        self,
        event: EventType,
        messages: Sequence[tuple[Role, str]],
        *,
        recipe: str,
        extra: dict[str, Any],
        tools: list[dict[str, Any]] | None = None,
    ) -> Verdict:
        """One AI Guard call for all the texts; raises PangeaError when AI Guard gives no verdict."""
        # Built from typed values only: no need to validate them again on every call.
        body = _GuardRequest.model_construct(
            input=_Input.model_construct(
                messages=[_Message.model_construct(role=role, content=text) for role, text in messages],
                tools=tools,
            ),
            recipe=recipe,
            event_type=event,
            app_id=self._settings.guard_app_id,
            extra_info={"app_name": self._settings.guard_app_name, "mcp_server_name": self._server_name}
            | extra,
        )
        response = await self._pangea.call(SERVICE, PATH, body, _GuardResult)
        result = response.result
        texts = [text for _, text in messages]
        if result.transformed and not result.blocked:
            out = result.output.messages if result.output is not None else []
            if len(out) != len(texts) or not all(isinstance(m.content, str) for m in out):
                raise Unusable("AI Guard returned a processed copy that does not match what was sent")
            texts = [m.content for m in out]
        return Verdict(
            blocked=result.blocked,
            transformed=result.transformed and not result.blocked,
            texts=texts,
            request_id=response.request_id,
            detectors=result.detectors,
            access_rules=result.access_rules,
        )

    async def verdict(
        self,
        event: EventType,
        messages: Sequence[tuple[Role, str]],
        *,
        recipe: str,
        subject: str,
        consequence: str,
        error: type[ToolError | ResourceError | PromptError],
        **extra: Any,
    ) -> Verdict | None:
        """The verdict, or None when AI Guard failed and PANGEA_GUARD_FAIL_OPEN lets the content through."""
        try:
            verdict = await self.check(event, messages, recipe=recipe, extra=extra)
        except PangeaError as exc:
            reason = failure(exc)
            if self._settings.guard_fail_open:
                log.warning("AI Guard unavailable (%s); fail-open: %s passes unchecked", reason, subject)
                return None
            log.warning("AI Guard unavailable (%s); %s refused (fail closed)", reason, subject)
            raise error(
                scrub(f"Pangea AI Guard is unavailable ({reason}), so {consequence}. Try again shortly."),
                log_level=logging.WARNING,
            ) from None
        except Unusable as exc:
            log.warning("AI Guard output unusable for %s: %s", subject, exc)
            raise error(f"Pangea AI Guard could not check {subject} ({exc}), so {consequence}.") from None
        if verdict.blocked:
            log.warning("AI Guard blocked %s: %s (request_id=%s)", subject, verdict.found, verdict.request_id)
        elif verdict.transformed:
            log.info("AI Guard transformed %s (request_id=%s)", subject, verdict.request_id)
        return verdict
