"""Service modules: one register(mcp, pangea) function per Pangea service, in tool-list order."""

from collections.abc import Callable

from fastmcp import FastMCP

from pangea_mcp.client import PangeaClient
from pangea_mcp.services import domain_intel, ip_intel

Registrar = Callable[[FastMCP, PangeaClient], None]

#: Keyed by the names PANGEA_SERVICES accepts (see config.SERVICE_MODULES).
REGISTRARS: dict[str, Registrar] = {
    "ip_intel": ip_intel.register,
    "domain_intel": domain_intel.register,
}
