"""What AI Guard reads of MCP content (arguments, results, resources, prompts, tool listings), and the
content rebuilt from AI Guard's processed copies."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from fastmcp.prompts.base import PromptResult
from fastmcp.resources.base import ResourceResult
from fastmcp.tools import Tool, ToolResult
from mcp.types import ContentBlock, EmbeddedResource, TextContent, TextResourceContents

from pangea_mcp.guard_client import Role, Unusable
from pangea_mcp.logs import SECRET_NAME

#: What AI Guard sees instead of a secret-named argument (check_password_breached's password, tokens...).
SECRET_PLACEHOLDER = "[secret withheld]"  # noqa: S105 - a placeholder, not a password

Location = tuple[str | int, ...]
Mirror = Callable[[Any], str]


def to_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def parse(text: str) -> Any:
    """AI Guard's processed copy of JSON text; Unusable when it no longer is JSON."""
    try:
        return json.loads(text)
    except ValueError:
        raise Unusable("it is no longer valid JSON") from None


# -- tool arguments --------------------------------------------------------------------------------


def mask(value: Any, path: Location = ()) -> tuple[Any, dict[Location, Any]]:
    """A copy with secret-named values replaced, and the originals by location (never sent anywhere)."""
    hidden: dict[Location, Any] = {}
    if isinstance(value, dict):
        copy: dict[str, Any] = {}
        for key, item in value.items():
            if SECRET_NAME.search(str(key)) and item not in (None, ""):
                copy[key] = SECRET_PLACEHOLDER
                hidden[(*path, key)] = item
            else:
                copy[key], inner = mask(item, (*path, key))
                hidden |= inner
        return copy, hidden
    if isinstance(value, list):
        items = []
        for index, item in enumerate(value):
            masked, inner = mask(item, (*path, index))
            items.append(masked)
            hidden |= inner
        return items, hidden
    return value, hidden


def unmask(value: Any, hidden: dict[Location, Any]) -> Any:
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


# -- content blocks --------------------------------------------------------------------------------


def text_of(block: ContentBlock) -> str | None:
    if isinstance(block, TextContent):
        return block.text
    if isinstance(block, EmbeddedResource) and isinstance(block.resource, TextResourceContents):
        return block.resource.text
    # Images, audio, blobs and resource links carry no text AI Guard's text detectors can read.
    return None


def with_text(block: ContentBlock, text: str) -> ContentBlock:
    if isinstance(block, EmbeddedResource) and isinstance(block.resource, TextResourceContents):
        return block.model_copy(update={"resource": block.resource.model_copy(update={"text": text})})
    return block.model_copy(update={"text": text})


def _wrapped(structured: Any) -> Any:
    if not (isinstance(structured, dict) and structured.keys() == {"result"}):
        raise Unusable("it no longer has the shape of the tool's result")
    return structured["result"]


def _loads(text: str) -> Any:
    if not text.lstrip().startswith(("{", "[", '"')):
        return _NOT_JSON
    try:
        return json.loads(text)
    except ValueError:
        return _NOT_JSON


_NOT_JSON = object()


def _mirror(text: str, structured: Any) -> Mirror | None:
    """How to rebuild a text block from the structured content, when it only repeats it; else None.

    FastMCP writes the structured content's JSON as the text, or for a wrapped value ({"result": x}) x itself.
    Such text is not sent to AI Guard a second time: it is rebuilt from the checked structured content.
    """
    value = _loads(text)
    if value == structured:
        return to_json
    if isinstance(structured, dict) and structured.keys() == {"result"}:
        if structured["result"] == text:
            return lambda new: str(_wrapped(new))
        if value is not _NOT_JSON and value == structured["result"]:
            return lambda new: to_json(_wrapped(new))
    return None


# -- results: the texts to check, and the result rebuilt from the processed texts ------------------


def tool_output(result: ToolResult) -> tuple[list[str], Callable[[list[str]], ToolResult]]:
    """The structured content's JSON first, then each text block that does not merely repeat it.

    Rebuilding raises Unusable when the processed structured content is no longer JSON of the same shape.
    """
    structured = result.structured_content
    has_structured = structured is not None
    texts: list[str] = [to_json(structured)] if has_structured else []
    mirrors: list[Mirror | None] = []
    for block in result.content:
        text = text_of(block)
        mirrors.append(_mirror(text, structured) if text is not None and has_structured else None)
        if text is not None and mirrors[-1] is None:
            texts.append(text)

    def rebuild(texts: list[str]) -> ToolResult:
        processed = iter(texts)
        new = parse(next(processed)) if has_structured else structured
        content = []
        for block, mirror in zip(result.content, mirrors, strict=True):
            if mirror is not None:
                content.append(with_text(block, mirror(new)))
            elif text_of(block) is not None:
                content.append(with_text(block, next(processed)))
            else:
                content.append(block)
        return result.model_copy(update={"content": content, "structured_content": new})

    return texts, rebuild


def resource_output(result: ResourceResult) -> tuple[list[str], Callable[[list[str]], ResourceResult]]:
    """Each text content of a resource read (binary contents pass as they are)."""

    def rebuild(texts: list[str]) -> ResourceResult:
        processed = iter(texts)
        contents = [
            c.model_copy(update={"content": next(processed)}) if isinstance(c.content, str) else c
            for c in result.contents
        ]
        return result.model_copy(update={"contents": contents})

    return [c.content for c in result.contents if isinstance(c.content, str)], rebuild


def prompt_output(
    result: PromptResult,
) -> tuple[list[tuple[Role, str]], Callable[[list[str]], PromptResult]]:
    """Each prompt message with text, under its role."""
    pieces = [(m.role, text_of(m.content)) for m in result.messages]
    messages: list[tuple[Role, str]] = [(role, text) for role, text in pieces if text is not None]

    def rebuild(texts: list[str]) -> PromptResult:
        processed = iter(texts)
        updated = [
            m.model_copy(update={"content": with_text(m.content, next(processed))})
            if text_of(m.content) is not None
            else m
            for m in result.messages
        ]
        return result.model_copy(update={"messages": updated})

    return messages, rebuild


# -- tool listings ---------------------------------------------------------------------------------


def listed(tool: Tool) -> dict[str, Any]:
    """What a model reads of a tool: its name, description and schemas (property descriptions included)."""
    entry: dict[str, Any] = {"name": tool.name, "description": tool.description or ""}
    if tool.title:
        entry["title"] = tool.title
    entry["inputSchema"] = tool.parameters
    if tool.output_schema:
        entry["outputSchema"] = tool.output_schema
    return entry


def fingerprint(entry: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(entry, sort_keys=True, default=str).encode()).hexdigest()
