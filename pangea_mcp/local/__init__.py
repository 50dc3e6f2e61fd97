"""Local backend: the tools that can be answered honestly without a Pangea account.

Geolocation from an offline database, WHOIS over RDAP, redaction with local recognisers and a
tamper-evident audit log in SQLite. Everything else (reputation, AI Guard, breach data, embargo lists,
Vault) needs Pangea's data and is hidden rather than faked.
"""

from __future__ import annotations

from pangea_mcp.config import Settings

#: The tools each module offers on the local backend (the module's other tools are hidden there).
LOCAL_TOOLS: dict[str, tuple[str, ...]] = {
    "redact": ("redact", "redact_structured"),
    "audit": ("log_entry", "search_log", "get_audit_root"),
    "ip_intel": ("geolocate",),
    "domain_intel": ("whois",),
}
#: The tools of those modules that only Pangea can answer.
PANGEA_ONLY_TOOLS: dict[str, tuple[str, ...]] = {
    "redact": ("unredact",),
    "audit": (),
    "ip_intel": ("lookup_ip_address_reputation", "lookup_domain_from_ip_address", "is_vpn", "is_proxy"),
    "domain_intel": ("lookup_domain_reputation",),
}


def startup_notice(settings: Settings) -> str | None:
    """One stderr line at startup when some enabled module is answered locally; None when none is."""
    local = [name for name in settings.services if settings.service_backend(name) == "local"]
    if not local:
        return None
    served = [tool for name in local for tool in LOCAL_TOOLS.get(name, ())]
    hidden = [tool for name in local for tool in PANGEA_ONLY_TOOLS.get(name, ())]
    hidden += [f"all {name} tools" for name in local if name not in LOCAL_TOOLS]
    why = (
        "no Pangea token configured"
        if not settings.has_credentials
        else "PANGEA_BACKEND/PANGEA_LOCAL_SERVICES"
    )
    line = f"pangea-mcp: local backend ({why}): serving {', '.join(served) or 'no tools'}"
    if hidden:
        line += f"; hidden, since only Pangea can answer them (set PANGEA_TOKEN): {', '.join(hidden)}"
    return line
