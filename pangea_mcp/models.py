"""Request/result base models, the response envelope, and the shared, validated parameter types."""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any, Literal

import idna
from pydantic import AfterValidator, BaseModel, ConfigDict, Field


class PangeaRequest(BaseModel):
    """A request body. Unknown fields are a bug: many Pangea schemas are closed."""

    model_config = ConfigDict(extra="forbid")


class PangeaResult(BaseModel):
    """A result (or part of one). Unknown fields are dropped so tool output stays small and stable."""

    model_config = ConfigDict(extra="ignore")


class Envelope(BaseModel):
    """The outer shape of every Pangea response."""

    model_config = ConfigDict(extra="ignore")

    request_id: str | None = None
    request_time: str | None = None
    response_time: str | None = None
    status: str = ""
    summary: str = ""
    result: Any = None


class AcceptedResult(PangeaResult):
    ttl_mins: int | None = None
    retry_counter: int | None = None
    location: str | None = None


# --- IP addresses -------------------------------------------------------------------------------

Scope = Literal[
    "public", "private", "loopback", "link_local", "multicast", "reserved", "unspecified", "shared"
]

_SCOPE_NOTES: dict[str, str] = {
    "private": "private network address (RFC 1918 / RFC 4193)",
    "loopback": "loopback address (this host)",
    "link_local": "link-local address",
    "multicast": "multicast address",
    "reserved": "reserved or documentation address",
    "unspecified": "unspecified address",
    "shared": "carrier-grade NAT shared address (RFC 6598)",
}


def _parse_ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    text = value.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise ValueError(
            f"{value!r} is not a valid IPv4 or IPv6 address (e.g. 190.28.74.251 or 2001:db8::1); "
            "pass addresses only, without ports, masks or host names"
        ) from None


def normalise_ip(value: str) -> str:
    """Canonical text of an address (IPv6 compressed; IPv4-mapped IPv6 unwrapped)."""
    ip = _parse_ip(value)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.compressed


def ip_scope(value: str) -> Scope:
    """Where an address is routable. Only `public` addresses have internet reputation or location."""
    ip = ipaddress.ip_address(value)
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link_local"
    if ip.is_multicast:
        return "multicast"
    if isinstance(ip, ipaddress.IPv4Address) and ip in ipaddress.ip_network("100.64.0.0/10"):
        return "shared"
    if ip.is_private:
        # is_private also covers documentation and benchmarking ranges; name those "reserved".
        private_nets = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")
        if any(ip in ipaddress.ip_network(n) for n in private_nets):
            return "private"
        return "reserved"
    if ip.is_reserved or not ip.is_global:
        return "reserved"
    return "public"


def scope_note(scope: Scope) -> str | None:
    if scope == "public":
        return None
    return (
        f"Not looked up: {_SCOPE_NOTES[scope]}. It is not routable on the public internet, so Pangea has "
        "no reputation, location or ownership data for it."
    )


IpAddress = Annotated[
    str,
    AfterValidator(normalise_ip),
    Field(description="An IPv4 or IPv6 address, e.g. 190.28.74.251"),
]

IpAddressList = Annotated[
    list[IpAddress],
    Field(
        min_length=1,
        max_length=100,
        description="1 to 100 IPv4 or IPv6 addresses. Private and reserved addresses are answered "
        "without a lookup; duplicates are looked up once.",
    ),
]

# --- Domains ------------------------------------------------------------------------------------

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def normalise_domain(value: str) -> str:
    """Lower-case ASCII (IDNA/punycode) form of a domain name, without a trailing dot."""
    text = value.strip().rstrip(".").lower()
    if not text:
        raise ValueError("domain name is empty")
    if "://" in text or "/" in text or "@" in text or ":" in text:
        raise ValueError(f"{value!r} is not a bare domain name; pass only the host part, e.g. example.com")
    try:
        ipaddress.ip_address(text)
    except ValueError:
        pass
    else:
        raise ValueError(f"{value!r} is an IP address, not a domain name; use the IP tools for it")
    try:
        ascii_name = idna.encode(text, uts46=True, transitional=False).decode("ascii")
    except (idna.IDNAError, UnicodeError) as exc:
        raise ValueError(f"{value!r} is not a valid domain name ({exc})") from None
    labels = ascii_name.split(".")
    if len(ascii_name) > 253 or len(labels) < 2 or not all(_LABEL.match(label) for label in labels):
        raise ValueError(
            f"{value!r} is not a valid domain name: it needs at least two dot-separated labels of "
            "letters, digits and hyphens (e.g. example.com, münchen.de)"
        )
    if labels[-1].isdigit():
        raise ValueError(f"{value!r} is not a valid domain name: the top-level label cannot be numeric")
    return ascii_name


Domain = Annotated[
    str,
    AfterValidator(normalise_domain),
    Field(description="A domain name, e.g. example.com (internationalised names are accepted)"),
]

DomainList = Annotated[
    list[Domain],
    Field(
        min_length=1,
        max_length=100,
        description="1 to 100 domain names, e.g. example.com. Duplicates are looked up once.",
    ),
]

Verdict = Literal["malicious", "suspicious", "unknown", "benign"]


def dedupe(items: list[str]) -> list[str]:
    """Order-preserving de-duplication."""
    return list(dict.fromkeys(items))
