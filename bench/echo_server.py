"""Baseline for the benchmarks: a bare FastMCP server with one `echo` tool, over stdio.

Run as `python bench/echo_server.py`. It does the minimum a FastMCP stdio server can do, so the
difference between it and `pangea-mcp` is what pangea-mcp itself adds.
"""

from __future__ import annotations

import os

# The same quiet-stdio settings pangea-mcp's CLI sets before FastMCP is imported.
os.environ.setdefault("FASTMCP_SHOW_SERVER_BANNER", "false")
os.environ.setdefault("FASTMCP_ENABLE_RICH_TRACEBACKS", "false")
os.environ.setdefault("FASTMCP_ENABLE_RICH_LOGGING", "false")
os.environ.setdefault("FASTMCP_CHECK_FOR_UPDATES", "off")

from fastmcp import FastMCP

mcp = FastMCP("echo")


@mcp.tool
def echo(text: str) -> str:
    """Return the text unchanged."""
    return text


if __name__ == "__main__":
    mcp.run(transport="stdio", show_banner=False)
