"""AI Guard: check prompts, model output and ingested text for injection, PII, secrets and bad content."""

from __future__ import annotations

import json
from typing import Annotated, Literal

from fastmcp import Context, FastMCP
from mcp.types import ToolAnnotations
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from pangea_mcp.backends import Backends
from pangea_mcp.detectors import AccessRule, Detector, DetectorSummary, summarise
from pangea_mcp.errors import invalid_arguments, tool_errors
from pangea_mcp.models import PangeaRequest, PangeaResult

SERVICE = "ai-guard"
TOOL = "prompt_guard"
# Pangea's limit for /v1/text/guard: 20 KiB of text, or of the messages as JSON.
MAX_BYTES = 20 * 1024
# It only returns a verdict (Pangea may note the check in AI Guard's own activity log).
_CHECK = ToolAnnotations(
    read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=True
)

RECIPES = {
    "pangea_prompt_guard": "a user's prompt before it reaches a model (the default)",
    "pangea_llm_response_guard": "a model's final answer before the user sees it",
    "pangea_ingestion_guard": "data being ingested, e.g. documents for RAG",
    "pangea_agent_pre_plan_guard": "an agent's input before it plans",
    "pangea_agent_pre_tool_guard": "tool arguments before a tool runs",
    "pangea_agent_post_tool_guard": "a tool's result before an agent uses it",
}


def _utf8_size(value: str) -> int:
    return len(value.encode("utf-8"))


def _check_text(value: str | None) -> str | None:
    if value is None:
        return None
    if not value.strip():
        raise ValueError("text is empty; pass the text to check")
    if _utf8_size(value) > MAX_BYTES:
        raise ValueError(
            f"text is {_utf8_size(value)} bytes; AI Guard checks at most {MAX_BYTES} bytes (20 KiB) per "
            "call, so split it and check each part"
        )
    return value


class ChatMessage(BaseModel):
    """One chat message in Pangea's message format."""

    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "user", "assistant", "tool"] = Field(description="Who wrote the message")
    content: str = Field(max_length=MAX_BYTES, description="The message text")


def _check_messages(value: list[ChatMessage] | None) -> list[ChatMessage] | None:
    if value is None:
        return None
    if not any(m.content.strip() for m in value):
        raise ValueError("every message is empty; there is nothing to check")
    size = _utf8_size(_messages_json(value))
    if size > MAX_BYTES:
        raise ValueError(
            f"messages are {size} bytes as JSON; AI Guard checks at most {MAX_BYTES} bytes (20 KiB) per "
            "call, so send fewer or shorter messages"
        )
    return value


def _messages_json(messages: list[ChatMessage]) -> str:
    # Compact JSON, as httpx sends it.
    data = [m.model_dump() for m in messages]
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


GuardText = Annotated[
    # maxLength only informs the schema; the byte limit is checked with a clearer message below.
    Annotated[str, Field(json_schema_extra={"maxLength": MAX_BYTES})] | None,
    Field(description="The text to check, up to 20 KiB. Pass either text or messages."),
    AfterValidator(_check_text),
]

GuardMessages = Annotated[
    list[ChatMessage] | None,
    Field(
        min_length=1,
        max_length=200,
        description="A conversation to check instead of text: a list of {role, content}, up to 20 KiB "
        "as JSON. Pass either text or messages.",
    ),
    AfterValidator(_check_messages),
]

Recipe = Annotated[
    str,
    Field(
        pattern=r"^[A-Za-z0-9_.-]{1,128}$",
        description="Which AI Guard recipe (set of detectors) to apply. Built in: "
        + "; ".join(f"{key} for {use}" for key, use in RECIPES.items())
        + ". A custom recipe key configured in the Pangea project is accepted too.",
    ),
]


class _GuardRequest(PangeaRequest):
    text: str | None = None
    messages: list[ChatMessage] | None = None
    recipe: str


# -- what Pangea returns (detector shapes in pangea_mcp.detectors) ---------------------------------


class _Message(PangeaResult):
    role: str
    content: str


class _GuardResult(PangeaResult):
    # Required (as in the spec): an answer without detectors must fail closed, never read as "clean".
    detectors: dict[str, Detector]
    blocked: bool = False
    transformed: bool = False
    recipe: str | None = None
    prompt_text: str | None = None
    prompt_messages: list[_Message] | None = None
    access_rules: dict[str, AccessRule] = Field(default_factory=dict)
    fpe_context: str | None = None


# -- what the tool returns -------------------------------------------------------------------------


class AccessRuleSummary(PangeaResult):
    name: str
    matched: bool
    action: str = Field(description="allowed, blocked or reported")


class GuardedMessage(PangeaResult):
    role: str
    content: str


class GuardReport(PangeaResult):
    blocked: bool = Field(description="True: a blocking detector fired; do not use the content")
    transformed: bool = Field(description="True: values were masked or changed; use `text`/`messages`")
    recipe: str = Field(description="The recipe AI Guard applied")
    text: str | None = Field(
        default=None, description="The checked text, redacted where AI Guard changed it; null when blocked"
    )
    messages: list[GuardedMessage] | None = Field(
        default=None, description="The checked messages, redacted where changed; null when blocked"
    )
    detectors: list[DetectorSummary] = Field(description="Every detector the recipe ran")
    access_rules: list[AccessRuleSummary] = Field(default_factory=list)
    fpe_applied: bool = Field(
        description="True when values were replaced by format-preserving encryption (the context to "
        "reverse it is not returned)"
    )
    request_id: str | None = Field(default=None, description="Pangea request id")


def _content(result: _GuardResult, body: _GuardRequest) -> tuple[str | None, list[GuardedMessage] | None]:
    """The text or messages to hand back: Pangea's processed copy; none at all when blocked."""
    if result.blocked:
        return None, None
    # Pangea may leave the processed copy out when nothing changed; the input is then the answer.
    unchanged = not result.transformed
    if body.messages is not None:
        source = result.prompt_messages or (body.messages if unchanged else None)
        if source is None:
            return None, None
        return None, [GuardedMessage(role=m.role, content=m.content) for m in source]
    if result.prompt_text is not None:
        return result.prompt_text, None
    return (body.text if unchanged else None), None


def _report(result: _GuardResult, body: _GuardRequest, request_id: str | None) -> GuardReport:
    out_text, out_messages = _content(result, body)
    return GuardReport(
        blocked=result.blocked,
        transformed=result.transformed,
        recipe=result.recipe or body.recipe,
        text=out_text,
        messages=out_messages,
        detectors=[summarise(name, d) for name, d in result.detectors.items()],
        access_rules=[
            AccessRuleSummary(name=r.name, matched=r.matched, action=r.action)
            for r in result.access_rules.values()
        ],
        fpe_applied=bool(result.fpe_context),
        request_id=request_id,
    )


def register(mcp: FastMCP, backends: Backends) -> None:
    pangea = backends.pangea

    @mcp.tool(name=TOOL, title="AI Guard", annotations=_CHECK, tags={SERVICE})
    async def prompt_guard(
        ctx: Context,
        text: GuardText = None,
        messages: GuardMessages = None,
        recipe: Recipe = "pangea_prompt_guard",
    ) -> GuardReport:
        """Return whether AI Guard blocks a text or conversation, the redacted version, and what it found.

        Use it before passing a user prompt to a model, before trusting a model's answer or a tool's
        result, or before ingesting a document; pick the matching recipe. `blocked` true means do not use
        the content. `transformed` true means sensitive values were masked: use the returned `text` or
        `messages` instead of the original. Each detector reports whether it fired and which entity types
        and categories it saw (never the sensitive values). blocked false with nothing detected means the
        recipe's detectors found nothing, not that the content is safe in every respect.
        """
        if text is None and messages is None:
            raise invalid_arguments(
                TOOL, {("text",): "required: pass the text to check (or messages for a conversation)"}
            )
        if text is not None and messages is not None:
            raise invalid_arguments(TOOL, {("messages",): "pass either text or messages, not both"})
        body = _GuardRequest(text=text, messages=messages, recipe=recipe)
        with tool_errors():
            response = await pangea.call(
                SERVICE, "v1/text/guard", body, _GuardResult, progress=ctx.report_progress
            )
        return _report(response.result, body, response.request_id)
