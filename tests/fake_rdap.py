"""A local fake RDAP server (RFC 7480 / 9082 / 9083) on 127.0.0.1, answering the way registries do.

- Layout of real servers: a registry under a path prefix (`/com/v1`, like https://rdap.verisign.com/com/v1/)
  and a registrar under `/rdap` (like https://rdap.markmonitor.com/rdap/); lookups are GET
  <prefix>/domain/<name>, matched case-insensitively.
- Objects are shaped on published answers: Verisign's thin .com record (registrar entity with its IANA id
  and abuse contact, "last update of RDAP database" event, upper-case names, a `related` link to the
  registrar), a registrar's thick record with RFC 9537 redactions and an RFC 8605 `cc` address
  parameter, and a thick registry (.org style) whose contacts say "REDACTED FOR PRIVACY".
- Unknown names get 404 with an RFC 9083 error object; names that are not LDH (A-label) ASCII get 400,
  as an RDAP server does for a malformed query. Replies can be scripted per path: 429 with Retry-After,
  5xx, a non-JSON body, or a delay.
- `{REGISTRAR}` in an object is replaced, when served, by the registrar base URL (default: this server).
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from tests.asgi_thread import serve_asgi

RDAP_JSON = "application/rdap+json"
_LDH = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)(\.(?!-)[a-z0-9-]{1,63}(?<!-))+$")
_REGISTRAR = "{REGISTRAR}"


@dataclass
class Reply:
    http: int = 200
    body: Any = None  # JSON; None: the default answer for the path
    raw: bytes | None = None  # a body that is not JSON
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class Recorded:
    method: str
    path: str
    host: str
    headers: dict[str, str]


def error_object(code: int, title: str, *description: str) -> dict[str, Any]:
    """An RFC 9083 section 6 error response body."""
    return {
        "rdapConformance": ["rdap_level_0"],
        "errorCode": code,
        "title": title,
        "description": list(description),
    }


def _vcard(*fields: list[Any]) -> list[Any]:
    return ["vcard", [["version", {}, "text", "4.0"], *fields]]


_VERISIGN_NOTICES = [
    {
        "title": "Terms of Use",
        "description": ["Service subject to Terms of Use."],
        "links": [
            {
                "href": "https://www.verisign.com/domain-names/registration-data-access-protocol/terms-service/index.xhtml",
                "type": "text/html",
            }
        ],
    },
    {
        "title": "Status Codes",
        "description": ["For more information on domain status codes, please visit https://icann.org/epp"],
        "links": [{"href": "https://icann.org/epp", "type": "text/html"}],
    },
]


def verisign_domain(
    name: str,
    *,
    registrar: str = "MarkMonitor Inc.",
    iana_id: str = "292",
    registered: str = "1997-09-15T04:00:00Z",
    expires: str = "2028-09-14T04:00:00Z",
    nameservers: tuple[str, ...] = ("NS1.GOOGLE.COM", "NS2.GOOGLE.COM"),
    related: bool = True,
) -> dict[str, Any]:
    """A thin .com registry record as https://rdap.verisign.com/com/v1/ sends it (no registrant)."""
    upper = name.upper()
    links: list[dict[str, str]] = [
        {
            "value": f"https://rdap.verisign.com/com/v1/domain/{upper}",
            "rel": "self",
            "href": f"https://rdap.verisign.com/com/v1/domain/{upper}",
            "type": RDAP_JSON,
        }
    ]
    if related:
        links.append(
            {
                "value": f"{_REGISTRAR}/rdap/domain/{upper}",
                "rel": "related",
                "href": f"{_REGISTRAR}/rdap/domain/{upper}",
                "type": RDAP_JSON,
            }
        )
    return {
        "objectClassName": "domain",
        "handle": "2138514_DOMAIN_COM-VRSN",
        "ldhName": upper,
        "links": links,
        "status": [
            "client delete prohibited",
            "client transfer prohibited",
            "client update prohibited",
            "server delete prohibited",
            "server transfer prohibited",
            "server update prohibited",
        ],
        "entities": [
            {
                "objectClassName": "entity",
                "handle": iana_id,
                "roles": ["registrar"],
                "publicIds": [{"type": "IANA Registrar ID", "identifier": iana_id}],
                "vcardArray": _vcard(["fn", {}, "text", registrar]),
                "entities": [
                    {
                        "objectClassName": "entity",
                        "roles": ["abuse"],
                        "vcardArray": _vcard(
                            ["fn", {}, "text", ""],
                            ["tel", {"type": "voice"}, "uri", "tel:+1.2083895740"],
                            ["email", {}, "text", "abusecomplaints@markmonitor.com"],
                        ),
                    }
                ],
            }
        ],
        "events": [
            {"eventAction": "registration", "eventDate": registered},
            {"eventAction": "expiration", "eventDate": expires},
            {"eventAction": "last update of RDAP database", "eventDate": "2026-11-20T09:34:01Z"},
        ],
        "secureDNS": {"delegationSigned": False},
        "nameservers": [{"objectClassName": "nameserver", "ldhName": ns} for ns in nameservers],
        "rdapConformance": [
            "rdap_level_0",
            "icann_rdap_technical_implementation_guide_1",
            "icann_rdap_response_profile_1",
        ],
        "notices": _VERISIGN_NOTICES,
    }


def registrar_domain(
    name: str,
    *,
    organisation: str = "Google LLC",
    region: str = "CA",
    country_code: str = "US",
    last_changed: str = "2024-08-02T02:17:33Z",
) -> dict[str, Any]:
    """A registrar's thick record (ICANN RDAP profile): registrant name and email redacted (RFC 9537),
    organisation, region and country published, country code in the `cc` parameter (RFC 8605)."""
    upper = name.upper()
    return {
        "objectClassName": "domain",
        "ldhName": upper,
        "links": [
            {"rel": "self", "href": f"{_REGISTRAR}/rdap/domain/{upper}", "type": RDAP_JSON},
        ],
        "status": ["client delete prohibited", "client transfer prohibited", "client update prohibited"],
        "entities": [
            {
                "objectClassName": "entity",
                "handle": "292",
                "roles": ["registrar"],
                "publicIds": [{"type": "IANA Registrar ID", "identifier": "292"}],
                "vcardArray": _vcard(["fn", {}, "text", "MarkMonitor Inc."]),
            },
            {
                "objectClassName": "entity",
                "roles": ["registrant"],
                "vcardArray": _vcard(
                    ["fn", {}, "text", ""],
                    ["org", {}, "text", organisation],
                    ["adr", {"cc": country_code}, "text", ["", "", "", "", region, "", ""]],
                ),
            },
            {
                "objectClassName": "entity",
                "roles": ["technical"],
                "vcardArray": _vcard(
                    ["fn", {}, "text", ""],
                    ["email", {}, "text", "https://domains.markmonitor.com/whois/contact"],
                ),
            },
        ],
        "events": [
            {"eventAction": "registration", "eventDate": "1997-09-15T07:00:00Z"},
            {"eventAction": "expiration", "eventDate": "2028-09-13T07:00:00Z"},
            {"eventAction": "last changed", "eventDate": last_changed},
        ],
        "nameservers": [
            {"objectClassName": "nameserver", "ldhName": "ns1.google.com"},
            {"objectClassName": "nameserver", "ldhName": "ns2.google.com"},
        ],
        "rdapConformance": ["rdap_level_0", "redacted", "icann_rdap_response_profile_1"],
        "redacted": [
            {
                "name": {"type": "Registrant Name"},
                "postPath": "$.entities[?(@.roles[0]=='registrant')].vcardArray[1][?(@[0]=='fn')][3]",
                "pathLang": "jsonpath",
                "method": "emptyValue",
                "reason": {"type": "Server policy"},
            },
            {
                "name": {"type": "Registrant Email"},
                "prePath": "$.entities[?(@.roles[0]=='registrant')].vcardArray[1][?(@[0]=='email')]",
                "pathLang": "jsonpath",
                "method": "removal",
                "reason": {"type": "Server policy"},
            },
        ],
        "notices": [
            {
                "title": "Terms of Use",
                "description": ["By submitting an RDAP query, you agree to the terms of use."],
                "links": [
                    {"href": "https://www.markmonitor.com/legal/domain-management-terms-and-conditions"}
                ],
            }
        ],
    }


def thick_registry_domain(name: str) -> dict[str, Any]:
    """A thick registry record (.org style): contacts in the registry answer, the name and email
    replaced by "REDACTED FOR PRIVACY" text as many registries still do, country code published."""
    return {
        "objectClassName": "domain",
        "handle": "D402200000000012345-LROR",
        "ldhName": name.lower(),
        "status": ["client transfer prohibited"],
        "entities": [
            {
                "objectClassName": "entity",
                "handle": "146",
                "roles": ["registrar"],
                "publicIds": [{"type": "IANA Registrar ID", "identifier": "146"}],
                "vcardArray": _vcard(["fn", {}, "text", "GoDaddy.com, LLC"]),
            },
            {
                "objectClassName": "entity",
                "handle": "REDACTED FOR PRIVACY",
                "roles": ["registrant"],
                "vcardArray": _vcard(
                    ["fn", {}, "text", "REDACTED FOR PRIVACY"],
                    ["org", {}, "text", "Example Nonprofit Society"],
                    ["adr", {"cc": "ca"}, "text", ["", "", "REDACTED FOR PRIVACY", "", "QC", "", ""]],
                    ["email", {}, "text", "REDACTED FOR PRIVACY"],
                ),
            },
        ],
        "events": [
            {"eventAction": "registration", "eventDate": "2003-05-21T18:11:42Z"},
            {"eventAction": "last changed", "eventDate": "2026-05-06T10:01:02Z"},
            {"eventAction": "expiration", "eventDate": "2027-05-21T18:11:42Z"},
        ],
        "nameservers": [
            {"objectClassName": "nameserver", "ldhName": "ns-1.example-dns.net"},
            {"objectClassName": "nameserver", "ldhName": "ns-2.example-dns.net"},
        ],
        "rdapConformance": ["rdap_level_0", "icann_rdap_response_profile_0"],
    }


class FakeRdap:
    """Registries by path prefix, each a map of lower-case name -> RDAP domain object."""

    def __init__(self, *, registrar_base: str | None = None) -> None:
        self.registries: dict[str, dict[str, dict[str, Any]]] = {
            "/com/v1": {"google.com": verisign_domain("google.com")},
            "/rdap": {"google.com": registrar_domain("google.com")},
            "/org": {"example.org": thick_registry_domain("example.org")},
        }
        self.registrar_base = registrar_base
        self.url = ""  # set by serve()
        self.requests: list[Recorded] = []
        self._replies: dict[str, Reply] = {}

    def on(self, path: str, reply: Reply) -> None:
        """Answer GET `path` (e.g. /com/v1/domain/google.com, any case) with `reply` from now on."""
        self._replies[path.lower()] = reply

    def paths(self) -> list[str]:
        return [r.path for r in self.requests]

    @contextmanager
    def serve(self) -> Iterator[str]:
        """Serve on 127.0.0.1 (ephemeral port) in a background thread; yields http://127.0.0.1:<port>."""
        with serve_asgi(
            self.app, name="the fake RDAP server", interface="asgi3", timeout_graceful_shutdown=1
        ) as url:
            self.url = url
            yield url

    async def app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        response = await self._handle(request)
        await response(scope, receive, send)

    def _json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
        text = json.dumps(body).replace(_REGISTRAR, self.registrar_base or self.url)
        return Response(text, status_code=status, media_type=RDAP_JSON, headers=headers)

    async def _handle(self, request: Request) -> Response:
        path = request.url.path
        self.requests.append(
            Recorded(request.method, path, request.headers.get("host", ""), dict(request.headers))
        )
        if request.method not in ("GET", "HEAD"):
            return self._json(405, error_object(405, "Method Not Allowed", "RDAP queries use GET."))
        reply = self._replies.get(path.lower())
        if reply is not None:
            if reply.delay:
                await asyncio.sleep(reply.delay)
            if reply.raw is not None:
                return Response(reply.raw, status_code=reply.http, headers=reply.headers)
            if reply.body is not None or reply.http != 200:
                body = reply.body if reply.body is not None else error_object(reply.http, "Error")
                return self._json(reply.http, body, reply.headers)
        prefix, _, name = path.rpartition("/domain/")
        if not name:
            return self._json(400, error_object(400, "Bad Request", "Unsupported query."))
        if not name.isascii() or not _LDH.match(name.lower()):
            return self._json(400, error_object(400, "Bad Request", "Domain names must be LDH A-labels."))
        found = self.registries.get(prefix, {}).get(name.lower())
        if found is None:
            return self._json(
                404,
                error_object(404, "Not Found", f"The domain {name.upper()} was not found in this registry."),
            )
        return self._json(200, copy.deepcopy(found))
