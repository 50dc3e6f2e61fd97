"""AI Guard middleware: tool arguments and results, resources, prompts and (proxied) tool lists, checked."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, NoReturn, TypeVar

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
    GetPromptRequestParams,
    ListToolsRequest,
    ReadResourceRequestParams,
)

from pangea_mcp.client import PangeaClient
from pangea_mcp.config import Settings
from pangea_mcp.errors import PangeaError
from pangea_mcp.guard_client import EventType, GuardClient, Role, Unusable, Verdict, failure
from pangea_mcp.guard_content import (
    SECRET_PLACEHOLDER,
    Location,
    fingerprint,
    listed,
    mask,
    parse,
    prompt_output,
    resource_output,
    to_json,
    tool_output,
    unmask,
)
from pangea_mcp.logs import scrub

__all__ = ["EXEMPT_TOOLS", "SECRET_PLACEHOLDER", "AIGuard", "Forward", "Verdict", "guard_enabled"]

log = logging.getLogger(__name__)

#: The AI Guard tool is a checker of suspicious text by design: guarding its own input would block its job.
EXEMPT_TOOLS = frozenset({"prompt_guard"})

Forward = Callable[[MiddlewareContext[CallToolRequestParams]], Awaitable[ToolResult]]
_Result = TypeVar("_Result", ToolResult, ResourceResult, PromptResult)


def guard_enabled(settings: Settings) -> bool:
    """PANGEA_GUARD when set, else on whenever a Pangea token is configured."""
    return settings.guard if settings.guard is not None else settings.has_credentials


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
        self._client = GuardClient(settings, pangea, server_name=server_name)
        self._server_name = server_name
        self._exempt = exempt
        self._listing = listing
        self._forward = forward
        #: tool name -> (fingerprint of what was checked, what fired when blocked, else None)
        self._screened: dict[str, tuple[str, str | None]] = {}

    async def _output(
        self,
        result: _Result,
        event: EventType,
        messages: Sequence[tuple[Role, str]],
        rebuild: Callable[[list[str]], _Result],
        *,
        subject: str,
        consequence: str,
        withheld: str,
        error: type[ToolError | ResourceError | PromptError],
        log_level: int,
        **extra: Any,
    ) -> _Result:
        """`result` as it is, rebuilt from AI Guard's processed copies, or `error` when AI Guard blocks it.

        `consequence` explains a refusal when AI Guard gives no verdict, `withheld` one when it blocks.
        """
        if not messages:
            return result
        verdict = await self._client.verdict(
            event,
            messages,
            recipe=self._settings.guard_output_recipe,
            subject=subject,
            consequence=consequence,
            error=error,
            **extra,
        )
        if verdict is None or not (verdict.blocked or verdict.transformed):
            return result
        if verdict.blocked:
            raise error(
                f"Pangea AI Guard blocked {subject}, so {withheld}. Found: {verdict.found}.{verdict.rid}",
                log_level=log_level,
            )
        return rebuild(verdict.texts)

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
            masked, hidden = mask(arguments)
            verdict = await self._client.verdict(
                "tool_input",
                [("user", to_json(masked))],
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
            processed = parse(text)
        except Unusable as exc:
            raise self._unusable(name, str(exc)) from None
        if not isinstance(processed, dict):
            raise self._unusable(name, "they are no longer an object")
        return dict(unmask(processed, hidden))

    @staticmethod
    def _unusable(name: str, why: str) -> ToolError:
        log.warning("AI Guard's redacted arguments of %s are unusable: %s", name, why)
        return ToolError(
            f"Pangea AI Guard redacted the arguments of {name} and {why}, so the tool did not run.",
            log_level=logging.WARNING,
        )

    async def _tool_result(self, name: str, result: ToolResult) -> ToolResult:
        texts, rebuild = tool_output(result)
        try:
            return await self._output(
                result,
                "tool_output",
                [("tool", text) for text in texts],
                rebuild,
                subject=f"the result of {name}",
                consequence="its result is withheld",
                withheld="it is withheld",
                error=ToolError,
                log_level=logging.WARNING,
                tool_name=name,
            )
        except Unusable as exc:  # only the rebuild raises it: the AI Guard call's own is a ToolError
            log.warning("AI Guard's redacted result of %s is unusable: %s", name, exc)
            raise ToolError(
                f"Pangea AI Guard redacted the result of {name} and {exc}, so it is withheld.",
                log_level=logging.WARNING,
            ) from None

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
        texts, rebuild = resource_output(result)
        return await self._output(
            result,
            "tool_output",
            [("tool", text) for text in texts],
            rebuild,
            subject=f"resource {uri}",
            consequence="its content is withheld",
            withheld="its content is withheld",
            error=ResourceError,
            log_level=logging.ERROR,  # FastMCP's default, as before
            resource_uri=uri,
        )

    async def on_get_prompt(
        self,
        context: MiddlewareContext[GetPromptRequestParams],
        call_next: CallNext[GetPromptRequestParams, PromptResult],
    ) -> PromptResult:
        result = await call_next(context)
        if isinstance(result, InputRequiredPromptResult):
            return result
        name = context.message.name
        messages, rebuild = prompt_output(result)
        return await self._output(
            result,
            "input",
            messages,
            rebuild,
            subject=f"prompt {name}",
            consequence="it is withheld",
            withheld="it is withheld",
            error=PromptError,
            log_level=logging.ERROR,
            prompt_name=name,
        )

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
        entries = {tool.name: listed(tool) for tool in tools}
        prints = {name: fingerprint(entry) for name, entry in entries.items()}
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
        except (PangeaError, Unusable) as exc:
            reason = failure(exc) if isinstance(exc, PangeaError) else str(exc)
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
        return await self._client.check(
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
