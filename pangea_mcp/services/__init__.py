"""Service modules: one register(mcp, backends) function per Pangea service, in tool-list order."""

from collections.abc import Callable

from fastmcp import FastMCP

from pangea_mcp.backends import Backends
from pangea_mcp.services import (
    ai_guard,
    audit,
    domain_intel,
    embargo,
    file_intel,
    ip_intel,
    redact,
    url_intel,
    user_intel,
    vault,
)

Registrar = Callable[[FastMCP, Backends], None]

#: Keyed by the names PANGEA_SERVICES accepts (config.SERVICE_MODULES), in tool-list order.
REGISTRARS: dict[str, Registrar] = {
    "ai_guard": ai_guard.register,
    "redact": redact.register,
    "audit": audit.register,
    "ip_intel": ip_intel.register,
    "domain_intel": domain_intel.register,
    "url_intel": url_intel.register,
    "file_intel": file_intel.register,
    "embargo": embargo.register,
    "user_intel": user_intel.register,
    "vault": vault.register,
}
