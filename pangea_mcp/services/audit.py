"""Secure Audit Log: being written (issue 5); registers no tool yet."""

from fastmcp import FastMCP

from pangea_mcp.client import PangeaClient


def register(mcp: FastMCP, pangea: PangeaClient) -> None:
    return None
