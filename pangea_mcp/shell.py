"""`pangea-mcp tools` and `pangea-mcp call TOOL --args JSON`: the server's tools from a shell.

Both run the real server in-process behind FastMCP's in-memory MCP client, so what they show is exactly
what an MCP client gets: the same tool list, argument checks, guardrails and results. Results go to stdout
as JSON (the structured result), errors to stderr; the exit status says which happened.
"""

from __future__ import annotations

import json
import sys
from typing import Any, TextIO

from fastmcp import Client
from mcp.types import CallToolResult, TextContent, Tool

from pangea_mcp.config import Settings
from pangea_mcp.logs import scrub
from pangea_mcp.server import build_server

#: Exit statuses of `call`: 0 result printed, 1 the tool reported an error, 2 the command line was wrong.
OK, TOOL_ERROR, USAGE = 0, 1, 2


def _first_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0] if (text or "").strip() else ""


def _hints(tool: Tool) -> str:
    notes = tool.annotations
    if notes is None:
        return ""
    flags = []
    if notes.read_only_hint:
        flags.append("read-only")
    if notes.destructive_hint:
        flags.append("destructive")
    return f" [{', '.join(flags)}]" if flags else ""


def format_tools(tools: list[Tool]) -> str:
    """One block per tool: name, flags, first line of its description, and its arguments."""
    lines = []
    for tool in tools:
        lines.append(f"{tool.name}{_hints(tool)}: {_first_line(tool.description)}")
        properties: dict[str, Any] = tool.input_schema.get("properties", {})
        required = set(tool.input_schema.get("required", []))
        if properties:
            args = ", ".join(f"{name}{'' if name in required else '?'}" for name in properties)
            lines.append(f"    arguments: {args}")
    return "\n".join(lines)


async def list_tools(settings: Settings, out: TextIO = sys.stdout, *, as_json: bool = False) -> int:
    async with Client(build_server(settings)) as client:
        tools = await client.list_tools()
    if as_json:
        listing = [tool.model_dump(mode="json", by_alias=True, exclude_none=True) for tool in tools]
        json.dump(listing, out, indent=2)
        out.write("\n")
    else:
        out.write(format_tools(tools) + "\n")
    return OK


def parse_arguments(text: str) -> dict[str, Any]:
    """The --args value: a JSON object (a file with @path)."""
    if text.startswith("@"):
        with open(text[1:], encoding="utf-8") as file:
            text = file.read()
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"--args is not valid JSON ({exc.msg} at character {exc.pos})") from None
    if not isinstance(value, dict):
        raise ValueError('--args must be a JSON object of argument names to values, e.g. {"text": "..."}')
    return value


def _text(result: CallToolResult) -> str:
    parts = [block.text for block in result.content if isinstance(block, TextContent)]
    return "\n".join(parts) or "the tool reported an error without a message"


async def call_tool(
    settings: Settings,
    name: str,
    arguments: dict[str, Any],
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    """Call one tool; print its structured result (or its text) as JSON on `out`."""
    async with Client(build_server(settings)) as client:
        names = [tool.name for tool in await client.list_tools()]
        if name not in names:
            err.write(f"pangea-mcp: no tool named {name!r} here; available: {', '.join(names)}\n")
            return USAGE
        result = await client.call_tool(name, arguments, raise_on_error=False)
    if result.is_error:
        err.write(f"pangea-mcp: {name} failed: {scrub(_text(result))}\n")
        return TOOL_ERROR
    if result.structured_content is not None:
        json.dump(result.structured_content, out, indent=2, ensure_ascii=False)
        out.write("\n")
    else:
        out.write(_text(result) + "\n")
    return OK
