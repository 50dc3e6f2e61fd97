"""AI Guard middleware: tool arguments and results, resources, prompts and (proxied) tool lists, checked."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NoReturn

from fastmcp.exceptions import PromptError, ResourceError, ToolError
from fastmcp.exceptions import ValidationError as ArgumentsError
from fastmcp.prompts.base import InputRequiredPromptResult, PromptResult
from fastmcp.resources.base import InputRequiredResourceResult, ResourceResult
from fastmcp.server.middleware import CallNext, Middleware, MiddlewareContext
from fastmcp.tools import Tool, ToolResult
from fastmcp.tools.base import InputRequiredToolResult
from mcp.shared.exceptions import MCPError
from mcp.types import (
    INTERNAL_ERROR,
    CallToolRequestParams,
    ContentBlock,
    EmbeddedResource,
    GetPromptRequestParams,
    ListToolsRequest,
    ReadResourceRequestParams,
    TextContent,
    TextResourceContents,
)
from pydantic import Field
from pydantic import ValidationError as PydanticValidationError

from pangea_mcp.audit_trail import _SECRET_NAME as SECRET_NAME
from pangea_mcp.client import PangeaClient
from pangea_mcp.config import Settings
from pangea_mcp.detectors import AccessRule, Detector, findings
from pangea_mcp.errors import PangeaAPIError, PangeaError, PangeaUnavailable
from pangea_mcp.logs import scrub
from pangea_mcp.models import PangeaRequest, PangeaResult

log = logging.getLogger(__name__)

SERVICE = "ai-guard"
PATH = "v1/guard"
#: The AI Guard tool is a checker of suspicious text by design: guarding its own input would block its job.
EXEMPT_TOOLS = frozenset({"prompt_guard"})
#: What AI Guard sees instead of a secret-named argument (check_password_breached's password, tokens...).
SECRET_PLACEHOLDER = "[secret withheld]"  # noqa: S105 - a placeholder, not a password

Forward = Callable[[MiddlewareContext[CallToolRequestParams]], Awaitable[ToolResult]]
EventType = Literal["input", "output", "tool_input", "tool_output", "tool_listing"]
Role = Literal["system", "user", "assistant", "tool"]


def guard_enabled(settings: Settings) -> bool:
    """PANGEA_GUARD when set, else on whenever a Pangea token is configured."""
    return settings.guard if settings.guard is not None else settings.has_credentials


# -- AI Guard /v1/guard (pangea-api.md 5.1) --------------------------------------------------------------


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


class _Unusable(Exception):
    """AI Guard transformed the content into something that cannot stand in for it."""


# -- helpers ---------------------------------------------------------------------------------------


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def _parse(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        raise _Unusable("it is no longer valid JSON") from None


Location = tuple[str | int, ...]


def _mask(value: Any, path: Location = ()) -> tuple[Any, dict[Location, Any]]:
    """A copy with secret-named values replaced, and the originals by location (never sent anywhere)."""
    hidden: dict[Location, Any] = {}
    if isinstance(value, dict):
        copy: dict[str, Any] = {}
        for key, item in value.items():
            if SECRET_NAME.search(str(key)) and item not in (None, ""):
                copy[key] = SECRET_PLACEHOLDER
                hidden[(*path, key)] = item
            else:
                copy[key], inner = _mask(item, (*path, key))
                hidden |= inner
        return copy, hidden
    if isinstance(value, list):
        items = []
        for index, item in enumerate(value):
            masked, inner = _mask(item, (*path, index))
            items.append(masked)
            hidden |= inner
        return items, hidden
    return value, hidden


def _unmask(value: Any, hidden: dict[Location, Any]) -> Any:
    """Put the secrets back where AI Guard saw placeholders."""
    for path, original in hidden.items():
        node = value
        for step in path[:-1]:
            try:
                node = node[step]
            except (KeyError, IndexError, TypeError):
                break
        else:
            if isinstance(node, dict) or (isinstance(node, list) and isinstance(path[-1], int)):
                node[path[-1]] = original  # type: ignore[index]
    return value


def _text_of(block: ContentBlock) -> str | None:
    if isinstance(block, TextContent):
        return block.text
    if isinstance(block, EmbeddedResource) and isinstance(block.resource, TextResourceContents):
        return block.resource.text
    # Images, audio, blobs and resource links carry no text AI Guard's text detectors can read.
    return None


def _with_text(block: ContentBlock, text: str) -> ContentBlock:
    if isinstance(block, EmbeddedResource) and isinstance(block.resource, TextResourceContents):
        return block.model_copy(update={"resource": block.resource.model_copy(update={"text": text})})
    return block.model_copy(update={"text": text})


def _wrapped(structured: Any) -> Any:
    if not (isinstance(structured, dict) and structured.keys() == {"result"}):
        raise _Unusable("it no longer has the shape of the tool's result")
    return structured["result"]


def _loads(text: str) -> Any:
    if not text.lstrip().startswith(("{", "[", '"')):
        return _NOT_JSON
    try:
        return json.loads(text)
    except ValueError:
        return _NOT_JSON


_NOT_JSON = object()
Mirror = Callable[[Any], str]


def _mirror(text: str, structured: Any) -> Mirror | None:
    """How to rebuild a text block from the structured content, when it only repeats it; else None.

    FastMCP writes the structured content's JSON as the text, or for a wrapped value ({"result": x}) x itself.
    Such text is not sent to AI Guard a second time: it is rebuilt from the checked structured content.
    """
    value = _loads(text)
    if value == structured:
        return _json
    if isinstance(structured, dict) and structured.keys() == {"result"}:
        if structured["result"] == text:
            return lambda new: str(_wrapped(new))
        if value is not _NOT_JSON and value == structured["result"]:
            return lambda new: _json(_wrapped(new))
    return None


def _listed(tool: Tool) -> dict[str, Any]:
    """What a model reads of a tool: its name, description and schemas (property descriptions included)."""
    entry: dict[str, Any] = {"name": tool.name, "description": tool.description or ""}
    if tool.title:
        entry["title"] = tool.title
    entry["inputSchema"] = tool.parameters
    if tool.output_schema:
        entry["outputSchema"] = tool.output_schema
    return entry


def _fingerprint(entry: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(entry, sort_keys=True, default=str).encode()).hexdigest()


def _failure(exc: PangeaError) -> str:
    if isinstance(exc, PangeaAPIError):
        text = f"it answered {exc.status} (HTTP {exc.http_status})"
        return text + (f", request_id {exc.request_id}" if exc.request_id else "")
    if isinstance(exc, PangeaUnavailable):
        return exc.reason
    return type(exc).__name__


# -- the middleware --------------------------------------------------------------------------------


class AIGuard(Middleware):
    """Checks what flows to and from tools with Pangea AI Guard (POST /v1/guard).

    - Tool calls: the arguments (event_type tool_input, the input recipe) before the tool runs, and the
      result's structured content and text together (tool_output, the output recipe) before it is returned.
      Blocked: an isError naming what fired, never the detected values; the tool does not run, or its result
      is withheld. Transformed: the processed arguments or result are used, text and structured content alike.
    - Resource reads and prompt results: checked like tool results (the official proxy leaves them out).
    - With `listing` (the proxy): each tool's description and schemas (tool_listing); a blocked tool is hidden
      and refused on its own, the others stay.
    - AI Guard failing or unreachable: the request fails (closed) unless PANGEA_GUARD_FAIL_OPEN is set.

    `forward`, when given, runs a checked tool call instead of the rest of the chain (the proxy's direct
    path to its upstream session).
    """

    def __init__(
        self,
        settings: Settings,
        pangea: PangeaClient,
        *,
        server_name: str,
        exempt: frozenset[str] = frozenset(),
        listing: bool = False,
        forward: Forward | None = None,
    ) -> None:
        self._settings = settings
        self._pangea = pangea
        self._server_name = server_name
        self._exempt = exempt
        self._listing = listing
        self._forward = forward
        #: tool name -> (fingerprint of what was checked, what fired when blocked, else None)
        self._screened: dict[str, tuple[str, str | None]] = {}

    # -- the AI Guard call ---------------------------------------------------------------------------

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
                raise _Unusable("AI Guard returned a processed copy that does not match what was sent")
            texts = [m.content for m in out]
        return Verdict(
            blocked=result.blocked,
            transformed=result.transformed and not result.blocked,
            texts=texts,
            request_id=response.request_id,
            detectors=result.detectors,
            access_rules=result.access_rules,
        )

    async def _verdict(
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
            reason = _failure(exc)
            if self._settings.guard_fail_open:
                log.warning("AI Guard unavailable (%s); fail-open: %s passes unchecked", reason, subject)
                return None
            log.warning("AI Guard unavailable (%s); %s refused (fail closed)", reason, subject)
            raise error(
                scrub(f"Pangea AI Guard is unavailable ({reason}), so {consequence}. Try again shortly."),
                log_level=logging.WARNING,
            ) from None
        except _Unusable as exc:
            log.warning("AI Guard output unusable for %s: %s", subject, exc)
            raise error(f"Pangea AI Guard could not check {subject} ({exc}), so {consequence}.") from None
        if verdict.blocked:
            log.warning("AI Guard blocked %s: %s (request_id=%s)", subject, verdict.found, verdict.request_id)
        elif verdict.transformed:
            log.info("AI Guard transformed %s (request_id=%s)", subject, verdict.request_id)
        return verdict

    # -- tool calls ----------------------------------------------------------------------------------

    async def on_call_tool(
        self,
        context: MiddlewareContext[CallToolRequestParams],
        call_next: CallNext[CallToolRequestParams, ToolResult],
    ) -> ToolResult:
        name = context.message.name
        if name in self._exempt:
            return await call_next(context)
        if self._listing:
            await self._refuse_hidden(context)
        arguments = context.message.arguments or {}
        changed = False
        if arguments:
            masked, hidden = _mask(arguments)
            verdict = await self._verdict(
                "tool_input",
                [("user", _json(masked))],
                recipe=self._settings.guard_input_recipe,
                subject=f"the arguments of {name}",
                consequence="the tool did not run",
                error=ToolError,
                tool_name=name,
            )
            if verdict is not None and verdict.blocked:
                raise ToolError(
                    f"Pangea AI Guard blocked the arguments of {name}, so the tool did not run. "
                    f"Found: {verdict.found}.{verdict.rid}",
                    log_level=logging.WARNING,
                )
            if verdict is not None and verdict.transformed:
                processed = self._arguments(name, verdict.texts[0], hidden)
                if processed != arguments:
                    changed = True
                    message = context.message.model_copy(update={"arguments": processed})
                    context = context.copy(message=message)
        try:
            result = await (self._forward or call_next)(context)
        except ArgumentsError:
            if not changed:
                raise
            raise ToolError(
                f"Pangea AI Guard redacted the arguments of {name} and the redacted arguments are not valid "
                "for the tool, so it did not run. Rephrase the request without the sensitive values.",
                log_level=logging.WARNING,
            ) from None
        if isinstance(result, InputRequiredToolResult):
            return result
        return await self._tool_result(name, result)

    def _arguments(self, name: str, text: str, hidden: dict[Location, Any]) -> dict[str, Any]:
        try:
            processed = _parse(text)
        except _Unusable as exc:
            raise self._unusable(name, str(exc)) from None
        if not isinstance(processed, dict):
            raise self._unusable(name, "they are no longer an object")
        return dict(_unmask(processed, hidden))

    @staticmethod
    def _unusable(name: str, why: str) -> ToolError:
        log.warning("AI Guard's redacted arguments of %s are unusable: %s", name, why)
        return ToolError(
            f"Pangea AI Guard redacted the arguments of {name} and {why}, so the tool did not run.",
            log_level=logging.WARNING,
        )

    async def _tool_result(self, name: str, result: ToolResult) -> ToolResult:
        structured = result.structured_content
        has_structured = structured is not None
        texts: list[str] = [_json(structured)] if has_structured else []
        mirrors: list[Mirror | None] = []
        for block in result.content:
            text = _text_of(block)
            mirrors.append(_mirror(text, structured) if text is not None and has_structured else None)
            if text is not None and mirrors[-1] is None:
                texts.append(text)
        if not texts:
            return result
        verdict = await self._verdict(
            "tool_output",
            [("tool", text) for text in texts],
            recipe=self._settings.guard_output_recipe,
            subject=f"the result of {name}",
            consequence="its result is withheld",
            error=ToolError,
            tool_name=name,
        )
        if verdict is None or not (verdict.blocked or verdict.transformed):
            return result
        if verdict.blocked:
            raise ToolError(
                f"Pangea AI Guard blocked the result of {name}, so it is withheld. "
                f"Found: {verdict.found}.{verdict.rid}",
                log_level=logging.WARNING,
            )
        processed = iter(verdict.texts)
        content = []
        try:
            if has_structured:
                structured = _parse(next(processed))
            for block, mirror in zip(result.content, mirrors, strict=True):
                if mirror is not None:
                    content.append(_with_text(block, mirror(structured)))
                elif _text_of(block) is not None:
                    content.append(_with_text(block, next(processed)))
                else:
                    content.append(block)
        except _Unusable as exc:
            log.warning("AI Guard's redacted result of %s is unusable: %s", name, exc)
            raise ToolError(
                f"Pangea AI Guard redacted the result of {name} and {exc}, so it is withheld.",
                log_level=logging.WARNING,
            ) from None
        return result.model_copy(update={"content": content, "structured_content": structured})

    # -- resources and prompts -----------------------------------------------------------------------

    async def on_read_resource(
        self,
        context: MiddlewareContext[ReadResourceRequestParams],
        call_next: CallNext[ReadResourceRequestParams, ResourceResult],
    ) -> ResourceResult:
        result = await super().on_read_resource(context, call_next)
        if isinstance(result, InputRequiredResourceResult):
            return result
        uri = str(context.message.uri)
        texts = [c.content for c in result.contents if isinstance(c.content, str)]
        if not texts:
            return result
        verdict = await self._verdict(
            "tool_output",
            [("tool", text) for text in texts],
            recipe=self._settings.guard_output_recipe,
            subject=f"resource {uri}",
            consequence="its content is withheld",
            error=ResourceError,
            resource_uri=uri,
        )
        if verdict is None or not (verdict.blocked or verdict.transformed):
            return result
        if verdict.blocked:
            raise ResourceError(
                f"Pangea AI Guard blocked resource {uri}, so its content is withheld. "
                f"Found: {verdict.found}.{verdict.rid}"
            )
        processed = iter(verdict.texts)
        contents = [
            c.model_copy(update={"content": next(processed)}) if isinstance(c.content, str) else c
            for c in result.contents
        ]
        return result.model_copy(update={"contents": contents})

    async def on_get_prompt(
        self,
        context: MiddlewareContext[GetPromptRequestParams],
        call_next: CallNext[GetPromptRequestParams, PromptResult],
    ) -> PromptResult:
        result = await call_next(context)
        if isinstance(result, InputRequiredPromptResult):
            return result
        name = context.message.name
        pieces = [(m.role, _text_of(m.content)) for m in result.messages]
        messages: list[tuple[Role, str]] = [(role, text) for role, text in pieces if text is not None]
        if not messages:
            return result
        verdict = await self._verdict(
            "input",
            messages,
            recipe=self._settings.guard_output_recipe,
            subject=f"prompt {name}",
            consequence="it is withheld",
            error=PromptError,
            prompt_name=name,
        )
        if verdict is None or not (verdict.blocked or verdict.transformed):
            return result
        if verdict.blocked:
            raise PromptError(
                f"Pangea AI Guard blocked prompt {name}, so it is withheld. "
                f"Found: {verdict.found}.{verdict.rid}"
            )
        processed = iter(verdict.texts)
        updated = [
            m.model_copy(update={"content": _with_text(m.content, next(processed))})
            if _text_of(m.content) is not None
            else m
            for m in result.messages
        ]
        return result.model_copy(update={"messages": updated})

    # -- tool lists (proxy) --------------------------------------------------------------------------

    async def on_list_tools(
        self,
        context: MiddlewareContext[ListToolsRequest],
        call_next: CallNext[ListToolsRequest, Sequence[Tool]],
    ) -> Sequence[Tool]:
        tools = await call_next(context)
        if not self._listing:
            return tools
        if not await self._screen(tools):
            return tools  # AI Guard failed and fail-open is set
        return [tool for tool in tools if self._screened[tool.name][1] is None]

    async def _screen(self, tools: Sequence[Tool]) -> bool:
        """Check the descriptions not checked yet; False when AI Guard failed and fail-open lets them pass."""
        entries = {tool.name: _listed(tool) for tool in tools}
        prints = {name: _fingerprint(entry) for name, entry in entries.items()}
        fresh = [n for n in entries if self._screened.get(n, ("", None))[0] != prints[n]]
        if not fresh:
            return True
        try:
            # One call for the whole list; only when it blocks are the tools checked one by one, so a single
            # poisoned description hides that tool instead of all of them.
            verdict = await self._check_listing([entries[n] for n in fresh])
            if not verdict.blocked:
                self._screened |= {n: (prints[n], None) for n in fresh}
                return True
            if len(fresh) == 1:
                verdicts = [verdict]
            else:
                verdicts = list(await asyncio.gather(*(self._check_listing([entries[n]]) for n in fresh)))
        except (PangeaError, _Unusable) as exc:
            reason = _failure(exc) if isinstance(exc, PangeaError) else str(exc)
            if self._settings.guard_fail_open:
                log.warning("AI Guard unavailable (%s); fail-open: the tool list passes unchecked", reason)
                return False
            log.warning("AI Guard unavailable (%s); the tool list is refused (fail closed)", reason)
            # A JSON-RPC error the client sees as such (FastMCP would mask any other exception).
            raise MCPError(
                code=INTERNAL_ERROR,
                message=scrub(
                    f"Pangea AI Guard is unavailable ({reason}), so the tool list cannot be checked. "
                    "Try again shortly."
                ),
            ) from None
        for name, each in zip(fresh, verdicts, strict=True):
            self._screened[name] = (prints[name], each.found if each.blocked else None)
            if each.blocked:
                log.warning(
                    "AI Guard blocked the description of tool %s: %s (request_id=%s); that tool is hidden",
                    name,
                    each.found,
                    each.request_id,
                )
        return True

    async def _check_listing(self, entries: list[dict[str, Any]]) -> Verdict:
        names = [entry["name"] for entry in entries]
        return await self.check(
            "tool_listing",
            [],
            recipe=self._settings.guard_output_recipe,
            extra={"mcp_tools": [{"server_name": self._server_name, "tools": names}]},
            tools=entries,
        )

    async def _refuse_hidden(self, context: MiddlewareContext[CallToolRequestParams]) -> None:
        name = context.message.name
        if name not in self._screened and context.fastmcp_context is not None:
            # Called without a listing first: check this tool's description now.
            tool = await context.fastmcp_context.fastmcp.get_tool(name)
            if tool is not None and not await self._screen([tool]):
                return
        found = self._screened.get(name, ("", None))[1]
        if found is not None:
            _refuse(name, found)


def _refuse(name: str, found: str) -> NoReturn:
    raise ToolError(
        f"Tool {name} is hidden: Pangea AI Guard blocked its description. Found: {found}.",
        log_level=logging.WARNING,
    )
