"""Request/result base models, the response envelope, and the shared, validated parameter types."""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit, urlunsplit

import idna
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field


class PangeaRequest(BaseModel):
    """A request body. Unknown fields are a bug: many Pangea schemas are closed."""

    model_config = ConfigDict(extra="forbid", defer_build=True)


class PangeaResult(BaseModel):
    """A result (or part of one). Unknown fields are dropped so tool output stays small and stable."""

    model_config = ConfigDict(extra="ignore", defer_build=True)


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

#: A list of strings that Pangea may also send as null (the SDKs type these Optional).
StrList = Annotated[list[str], BeforeValidator(lambda value: [] if value is None else value)]


class Reputation(PangeaResult):
    """One indicator's verdict, as every intel reputation endpoint (IP, domain, URL, file) returns it."""

    verdict: Verdict | None = Field(default=None, description="malicious, suspicious, unknown or benign")
    score: int | None = Field(default=None, description="0 (harmless) to 100 (malicious)")
    category: StrList = Field(default_factory=list, description="Threat categories, e.g. Malware, Phishing")


class ReputationMap(PangeaResult):
    """A v2 reputation result: indicator as sent -> verdict."""

    data: dict[str, Reputation] = Field(default_factory=dict)


def dedupe(items: list[str]) -> list[str]:
    """Order-preserving de-duplication."""
    return list(dict.fromkeys(items))


def _shown(value: str, limit: int = 80) -> str:
    """repr() of user input for an error message, shortened so a huge argument is not echoed whole."""
    return repr(value if len(value) <= limit else value[:limit] + "…")


# --- URLs ---------------------------------------------------------------------------------------

# Like _LABEL, plus "_": real (and malicious) host names use it, and Pangea should still see them.
_URL_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _url_host(host: str, value: str) -> str:
    """Lower-case ASCII host of a URL (IDNA/punycode for international names, IPv6 bracketed)."""
    if ":" in host:
        try:
            return f"[{ipaddress.IPv6Address(host).compressed}]"
        except ValueError:
            raise ValueError(f"{_shown(value)} has an invalid IPv6 host") from None
    host = host.rstrip(".")
    labels = host.split(".")
    if all(label.isdigit() for label in labels):
        try:
            return str(ipaddress.IPv4Address(host))
        except ValueError:
            raise ValueError(f"{_shown(value)} has an invalid IPv4 host {host!r}") from None
    if not host.isascii():
        try:
            host = idna.encode(host, uts46=True, transitional=False).decode("ascii")
        except (idna.IDNAError, UnicodeError) as exc:
            raise ValueError(f"{_shown(value)} has an invalid host name ({exc})") from None
        labels = host.split(".")
    if len(host) > 253 or len(labels) < 2 or not all(_URL_LABEL.match(label) for label in labels):
        raise ValueError(
            f"{_shown(value)} has no valid public host name: it needs at least two dot-separated labels "
            "of letters, digits and hyphens (e.g. https://example.com/path)"
        )
    return host


def normalise_url(value: str) -> str:
    """Canonical form of an http(s) URL: scheme and host lower-cased, IDNA host in punycode,
    default port and fragment dropped. Path and query are kept byte for byte."""
    text = value.strip()
    if not text:
        raise ValueError("URL is empty")
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in text):
        raise ValueError(f"{_shown(value)} contains spaces or control characters; percent-encode them")
    if "://" not in text:
        raise ValueError(f"{_shown(value)} has no http:// or https:// scheme; write the URL in full")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"{_shown(value)} is not a valid URL ({exc})") from None
    if parts.scheme not in _DEFAULT_PORTS:
        raise ValueError(
            f"{_shown(value)} uses the {parts.scheme or 'empty'} scheme; only http and https URLs "
            "can be looked up"
        )
    if not parts.hostname:
        raise ValueError(f"{_shown(value)} has no host; write it like https://example.com/path")
    host = _url_host(parts.hostname, value)
    userinfo, at, _ = parts.netloc.rpartition("@")
    netloc = userinfo + at + host
    if port is not None and port != _DEFAULT_PORTS[parts.scheme]:
        netloc += f":{port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))


Url = Annotated[
    str,
    AfterValidator(normalise_url),
    Field(description="An http or https URL, e.g. https://example.com/login"),
]

UrlList = Annotated[
    list[Url],
    Field(
        min_length=1,
        max_length=100,
        description="1 to 100 http(s) URLs, each with its scheme (https://...). "
        "Duplicates are looked up once.",
    ),
]

# --- File hashes --------------------------------------------------------------------------------

HashType = Literal["sha256", "sha", "md5"]

#: Hex length -> Pangea's hash_type name ("sha" is SHA-1).
HASH_TYPE_BY_LENGTH: dict[int, HashType] = {32: "md5", 40: "sha", 64: "sha256"}
_HEX = re.compile(r"^[0-9a-f]+$")


def normalise_hash(value: str) -> str:
    """Lower-case hex digest; MD5, SHA-1 or SHA-256 by length."""
    text = value.strip().lower()
    if not _HEX.match(text):
        raise ValueError(f"{_shown(value)} is not a hexadecimal hash digest")
    if len(text) not in HASH_TYPE_BY_LENGTH:
        raise ValueError(
            f"{_shown(value)} has {len(text)} hex digits; expected 32 (MD5), 40 (SHA-1) or 64 (SHA-256)"
        )
    return text


FileHash = Annotated[
    str,
    AfterValidator(normalise_hash),
    Field(description="A file's MD5, SHA-1 or SHA-256 digest in hex, e.g. 142b638c...cf6e (64 digits)"),
]

FileHashList = Annotated[
    list[FileHash],
    Field(
        min_length=1,
        max_length=100,
        description="1 to 100 hex file digests, all of one type (MD5, SHA-1 or SHA-256). "
        "Duplicates are looked up once.",
    ),
]

# --- Email addresses and phone numbers ----------------------------------------------------------

_EMAIL_LOCAL = re.compile(r'^[^\s@"(),:;<>\[\]\\]{1,64}$')


def normalise_email(value: str) -> str:
    """name@domain with the domain in lower-case ASCII (IDNA); the local part is kept as given."""
    text = value.strip()
    local, at, domain = text.rpartition("@")
    if not at or not local or not domain:
        raise ValueError(f"{_shown(value)} is not an email address; use the form name@example.com")
    if not _EMAIL_LOCAL.match(local) or local.startswith(".") or local.endswith(".") or ".." in local:
        raise ValueError(f"{_shown(value)} is not a valid email address: bad part before the @")
    try:
        ascii_domain = normalise_domain(domain)
    except ValueError:
        raise ValueError(f"{_shown(value)} is not a valid email address: bad domain after the @") from None
    return f"{local}@{ascii_domain}"


Email = Annotated[
    str,
    AfterValidator(normalise_email),
    Field(description="An email address, e.g. jane@example.com"),
]

_PHONE_SEPARATORS = re.compile(r"[\s\-.()/]")


def normalise_phone(value: str) -> str:
    """Digits only: separators (spaces, - . ( ) /) and a leading + removed; 7 to 15 digits."""
    digits = _PHONE_SEPARATORS.sub("", value.strip()).removeprefix("+")
    if not digits.isascii() or not digits.isdigit():
        raise ValueError(
            f"{_shown(value)} is not a phone number: use digits with optional spaces, dashes, dots, "
            "brackets and a leading +"
        )
    if not 7 <= len(digits) <= 15:
        raise ValueError(f"{_shown(value)} has {len(digits)} digits; a phone number has 7 to 15")
    return digits


PhoneNumber = Annotated[
    str,
    AfterValidator(normalise_phone),
    Field(description="A phone number with country code, e.g. +1 800 555 0123 (7 to 15 digits)"),
]
