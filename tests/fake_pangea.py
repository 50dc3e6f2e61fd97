"""A local fake of the Pangea API, checked against Pangea's official OpenAPI specs.

- Served in-process through httpx.ASGITransport (`fake.transport`) or on 127.0.0.1 (`fake.serve()`).
- URLs follow the template http://127.0.0.1:<port>/{SERVICE_NAME}: the first path segment is the service.
- Every request body is validated against the service's spec (tests/spec.py); a violation is answered
  with a Pangea ValidationError *and* recorded in `fake.violations`, which the test fixtures assert empty.
- Every response the fake sends is checked against the spec's response schema, so scripted answers
  cannot drift from what Pangea sends.
- Bearer tokens are checked like Pangea does: the Vault token only for Vault, service tokens everywhere.
- Multi-item intel calls answer 202 and are completed by polling GET /<service>/request/<id>, as the API does.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
import string
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tests import spec
from tests.asgi_thread import serve_asgi

SERVICE_TOKEN = "pts_" + "s" * 28 + "0001"
VAULT_TOKEN = "pts_" + "v" * 28 + "0001"
VAULT_ITEM_ID = "pvi_" + "a" * 32
# What geolocate answers for every address (unless scripted otherwise).
GEOLOCATION = {
    "country": "Colombia",
    "city": "Bogota",
    "latitude": 4.6,
    "longitude": -74.08,
    "postal_code": "110111",
    "country_code": "CO",
}

HTTP_FOR_STATUS = {
    "Success": 200,
    "Accepted": 202,
    "ValidationError": 400,
    "MissingConfigID": 400,
    "Unauthorized": 401,
    "NoCredit": 402,
    "ServiceNotEnabled": 403,
    "ForbiddenVaultOperation": 403,
    "NotFound": 404,
    "VaultItemNotFound": 404,
    "TooManyRequests": 429,
    "InternalError": 500,
    "ProviderError": 502,
    "ServiceNotAvailable": 503,
}
STATUS_FOR_HTTP = {v: k for k, v in reversed(HTTP_FOR_STATUS.items())}


def request_id() -> str:
    return "prq_" + "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(32))


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


@dataclass
class Reply:
    http: int = 200
    status: str | None = None
    summary: str | None = None
    result: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    raw: bytes | None = None  # a body that is not a Pangea envelope
    accepted_polls: int = 0  # answer 202 first, and this many polls more with 202


@dataclass
class Recorded:
    method: str
    service: str
    path: str
    headers: dict[str, str]
    body: Any
    raw: bytes


@dataclass
class GuardRule:
    contains: str
    action: str  # "block" or "redact"
    event_type: str | None
    detector: str
    replacement: str
    entity_type: str


@dataclass
class _Pending:
    service: str
    path: str
    token: str
    polls_left: int
    reply: Reply


class FakePangea:
    def __init__(self, *, service_token: str = SERVICE_TOKEN, vault_token: str = VAULT_TOKEN) -> None:
        self.service_tokens = {service_token}
        self.vault_token = vault_token
        self.requests: list[Recorded] = []
        self.violations: list[str] = []
        self._scripts: dict[tuple[str, str], deque[Reply]] = {}
        self._pending: dict[str, _Pending] = {}
        self.vault_items: dict[str, dict[str, Any]] = {}
        self.guard_rules: list[GuardRule] = []
        self.put_token_item(VAULT_ITEM_ID, service_token)
        self.transport = httpx.ASGITransport(app=self.app)

    # -- scripting -------------------------------------------------------------------------------

    def on(
        self,
        service: str,
        path: str,
        *,
        http: int | None = None,
        status: str | None = None,
        summary: str | None = None,
        result: Any = None,
        headers: dict[str, str] | None = None,
        delay: float = 0.0,
        raw: bytes | None = None,
        accepted_polls: int = 0,
        times: int = 1,
    ) -> None:
        """Queue `times` scripted replies for POST <service>/<path>; then the default behaviour resumes."""
        if http is None:
            http = HTTP_FOR_STATUS.get(status or "Success", 200)
        reply = Reply(http, status, summary, result, headers or {}, delay, raw, accepted_polls)
        self._scripts.setdefault((service, path.strip("/")), deque()).extend([reply] * times)

    def guard_blocks(
        self, contains: str, *, event_type: str | None = None, detector: str = "malicious_prompt"
    ) -> None:
        """AI Guard /v1/guard blocks any request whose input contains `contains` (optionally: of one event type).

        `detector` decides how the finding is reported: malicious_prompt (an analyzer score) or an entity
        detector such as confidential_and_pii_entity or secret_and_key_entity (the matched value, as Pangea
        reports it, which the code under test must never echo).
        """
        self.guard_rules.append(GuardRule(contains, "block", event_type, detector, "", ""))

    def guard_redacts(
        self,
        contains: str,
        replacement: str,
        *,
        event_type: str | None = None,
        entity_type: str = "EMAIL_ADDRESS",
        detector: str = "confidential_and_pii_entity",
    ) -> None:
        """AI Guard /v1/guard replaces `contains` by `replacement` in every message it is sent (transformed)."""
        self.guard_rules.append(GuardRule(contains, "redact", event_type, detector, replacement, entity_type))

    def put_token_item(self, item_id: str, token: str, *, version: int = 1, **extra: Any) -> None:
        now = _now()
        self.vault_items[item_id] = {
            "id": item_id,
            "type": "pangea_token",
            "name": "pangea-mcp service token",
            "folder": "/",
            "metadata": {},
            "tags": [],
            "num_versions": version,
            "enabled": True,
            "created_at": now,
            "rotation_state": "destroyed",
            "rotation_grace_period": "1d",
            "item_versions": [{"version": version, "state": "active", "created_at": now, "token": token}],
            **extra,
        }

    def rotate_token(self, item_id: str = VAULT_ITEM_ID) -> str:
        """Rotate the Vault item: the new token works, the old one is refused at once (no grace)."""
        item = self.vault_items[item_id]
        old = item["item_versions"][0]["token"]
        new = "pts_" + "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(32))
        self.service_tokens.discard(old)
        self.service_tokens.add(new)
        self.put_token_item(item_id, new, version=item["item_versions"][0]["version"] + 1)
        return new

    # -- inspection ------------------------------------------------------------------------------

    def calls(self, service: str, path: str, method: str = "POST") -> list[Recorded]:
        path = path.strip("/")
        return [r for r in self.requests if (r.method, r.service, r.path) == (method, service, path)]

    def bodies(self, service: str, path: str) -> list[Any]:
        return [r.body for r in self.calls(service, path)]

    def body(self, service: str, path: str) -> Any:
        bodies = self.bodies(service, path)
        assert bodies, f"no request reached {service}/{path}"
        return bodies[-1]

    # -- serving ---------------------------------------------------------------------------------

    @contextmanager
    def serve(self) -> Iterator[str]:
        """Serve on 127.0.0.1 (ephemeral port) in a background thread; yields the URL template."""
        with serve_asgi(self.app, name="the fake Pangea", interface="asgi3") as url:
            yield f"{url}/{{SERVICE_NAME}}"

    async def app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        response = await self._handle(request)
        await response(scope, receive, send)

    async def _handle(self, request: Request) -> Response:
        raw = await request.body()
        parts = request.url.path.strip("/").split("/", 1)
        service, path = parts[0], parts[1] if len(parts) > 1 else ""
        method = request.method.upper()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        self.requests.append(Recorded(method, service, path, dict(request.headers), body, raw))

        if not spec.known(service) or not spec.has_operation(service, method.lower(), "/" + path):
            return self._envelope(service, method, path, Reply(404, "NotFound", f"no such endpoint /{path}"))
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        # The Vault-scoped token works for Vault only; service tokens stand for all-service tokens.
        allowed = self.service_tokens | {self.vault_token} if service == "vault" else self.service_tokens
        if token not in allowed:
            return self._envelope(service, method, path, Reply(401, "Unauthorized", "Not authorized"))
        if method == "GET":
            return self._poll(service, path, token)

        errors = spec.request_errors(service, "post", "/" + path, body)
        if errors:
            self.violations.append(
                f"{service}/{path}: " + "; ".join(f"{e['source']} {e['detail']}" for e in errors)
            )
            return self._envelope(
                service,
                method,
                path,
                Reply(
                    400, "ValidationError", "There was an error validating the request", {"errors": errors}
                ),
            )
        script = self._scripts.get((service, path))
        reply = script.popleft() if script else self._default(service, path, body)
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if reply.accepted_polls or (reply.http == 200 and _is_bulk(body)):
            rid = request_id()
            self._pending[rid] = _Pending(service, path, token, reply.accepted_polls, reply)
            return self._accepted(service, path, rid)
        return self._envelope(service, method, path, reply)

    def _poll(self, service: str, path: str, token: str) -> Response:
        rid = path.removeprefix("request/")
        pending = self._pending.get(rid)
        if pending is None or pending.service != service:
            return self._envelope(service, "GET", path, Reply(404, "NotFound", f"unknown request {rid}"))
        if pending.token != token:
            return self._envelope(service, "GET", path, Reply(401, "Unauthorized", "Not authorized"))
        if pending.polls_left > 0:
            pending.polls_left -= 1
            return self._accepted(service, path, rid)
        del self._pending[rid]
        # The final answer has the schema of the original endpoint.
        return self._envelope(service, "POST", pending.path, pending.reply, rid=rid)

    def _accepted(self, service: str, path: str, rid: str) -> Response:
        result = {"ttl_mins": 5760, "retry_counter": 0, "location": f"/{service}/request/{rid}"}
        return self._envelope(
            service, "GET", f"request/{rid}", Reply(202, "Accepted", "Accepted", result), rid=rid
        )

    def _envelope(
        self, service: str, method: str, path: str, reply: Reply, rid: str | None = None
    ) -> Response:
        rid = rid or request_id()
        headers = {"x-request-id": rid, **reply.headers}
        if reply.raw is not None:
            return Response(reply.raw, status_code=reply.http, headers=headers, media_type="text/html")
        status = reply.status or STATUS_FOR_HTTP.get(reply.http, "InternalError")
        body = {
            "request_id": rid,
            "request_time": _now(),
            "response_time": _now(),
            "status": status,
            "summary": reply.summary if reply.summary is not None else _summary(status),
            "result": reply.result,
        }
        problems = spec.response_errors(service, method.lower(), "/" + path, reply.http, body)
        if problems:
            # A scripted reply Pangea would never send: fail the test, not the code under test.
            self.violations.append(f"response {service}/{path} {reply.http}: " + "; ".join(problems[:5]))
        return JSONResponse(body, status_code=reply.http, headers=headers)

    # -- default behaviour: plausible, deterministic data ------------------------------------------

    def _default(self, service: str, path: str, body: Any) -> Reply:
        if service == "vault" and path == "v2/get":
            item = self.vault_items.get(body["id"])
            if item is None:
                return Reply(404, "VaultItemNotFound", f"Item {body['id']} not found")
            return Reply(result=item)
        if service == "ai-guard" and path == "v1/guard":
            return Reply(result=_guard(body, self.guard_rules))
        if service == "ip-intel" and path.startswith("v2/"):
            kind = path.removeprefix("v2/")
            return Reply(result={"data": {ip: _ip_data(kind, ip) for ip in body["ips"]}})
        if service == "domain-intel" and path == "v2/reputation":
            return Reply(result={"data": {d: _reputation(d) for d in body["domains"]}})
        if service == "domain-intel" and path == "v1/whois":
            return Reply(result={"data": _whois(body["domain"])})
        if service in ("url-intel", "file-intel") and path == "v1/reputation":
            return Reply(result={"data": _reputation(body["url" if service == "url-intel" else "hash"])})
        if service in ("url-intel", "file-intel") and path == "v2/reputation":
            items = body["urls" if service == "url-intel" else "hashes"]
            return Reply(result={"data": {item: _reputation(item) for item in items}})
        if service == "embargo" and path == "v1/ip/check":
            return Reply(result=_embargo(_IP_COUNTRY.get(body["ip"]) or _country_of(body["ip"])))
        if service == "embargo" and path == "v1/iso/check":
            return Reply(result=_embargo(body["iso_code"].upper()))
        if service == "user-intel" and path == "v1/user/breached":
            value = next(body[k] for k in ("email", "username", "ip", "phone_number") if k in body)
            return Reply(result={"data": _breach(value)})
        if service == "user-intel" and path == "v2/user/breached":
            values = [
                v for k in ("emails", "usernames", "ips", "phone_numbers", "domains") for v in body.get(k, [])
            ]
            return Reply(result={"data": {v: _breach(v) for v in values}})
        if service == "user-intel" and path == "v1/password/breached":
            return Reply(result=_password_prefix(body["hash_prefix"], raw=body.get("raw", False)))
        if service == "user-intel" and path == "v2/password/breached":
            results = {p: _password_prefix(p, raw=False)["data"] for p in body["hash_prefixes"]}
            return Reply(result={"data": results})
        return Reply(500, "InternalError", f"the fake has no default answer for {service}/{path}")


def _is_bulk(body: Any) -> bool:
    if not isinstance(body, dict):
        return False
    return any(
        isinstance(body.get(k), list) and len(body[k]) > 1 for k in ("ips", "domains", "urls", "hashes")
    )


def _summary(status: str) -> str:
    return {"Success": "Success", "Accepted": "Accepted"}.get(status, f"{status} (fake)")


def _digest(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big")


def _reputation(indicator: str) -> dict[str, Any]:
    score = _digest(indicator) % 101
    verdict = (
        "malicious" if score >= 80 else "suspicious" if score >= 50 else "benign" if score < 20 else "unknown"
    )
    category = ["Malware", "Phishing"] if verdict == "malicious" else []
    return {"category": category, "score": score, "verdict": verdict}


def _ip_data(kind: str, ip: str) -> dict[str, Any]:
    n = _digest(ip)
    if kind == "reputation":
        return _reputation(ip)
    if kind == "geolocate":
        return dict(GEOLOCATION)
    if kind == "domain":
        return (
            {"domain_found": n % 2 == 0, "domain": f"host{n % 97}.example.net"}
            if n % 2 == 0
            else {"domain_found": False}
        )
    if kind == "vpn":
        return {"is_vpn": n % 3 == 0}
    if kind == "proxy":
        return {"is_proxy": n % 5 == 0}
    raise AssertionError(kind)


def _whois(domain: str) -> dict[str, Any]:
    return {
        "domain_name": domain,
        "domain_availability": "UNAVAILABLE",
        "created_date": "1995-08-14T04:00:00Z",
        "updated_date": "2024-08-14T07:01:38Z",
        "expires_date": "2025-08-13T04:00:00Z",
        "host_names": [f"a.iana-servers.{domain}", f"b.iana-servers.{domain}"],
        "ips": ["93.184.215.14"],
        "registrar_name": "RESERVED-Internet Assigned Numbers Authority",
        "contact_email": "",
        "estimated_domain_age": 10727,
        "registrant_organization": "Internet Assigned Numbers Authority",
        "registrant_country": "US",
    }


# -- Embargo and User Intel defaults (pangea-api.md 5.9, 5.10) ---------------------------------------

_EMBARGOED = {
    "CU": "Cuba",
    "IR": "Iran",
    "KP": "North Korea/Democratic Peoples Republic of Korea",
    "RU": "Russia",
    "SY": "Syria",
}
#: The live-test example of pangea-api.md 5.9; other public addresses get a country from their digest.
_IP_COUNTRY = {"213.24.238.26": "RU"}


def _country_of(ip: str) -> str:
    return ["RU", "CU", "IR", "KP", "SY", "DE", "FR", "JP", "BR", "CA"][_digest(ip) % 10]


def _embargo(iso_code: str) -> dict[str, Any]:
    if iso_code not in _EMBARGOED:
        return {"count": 0, "sanctions": []}
    sanction = {
        "list_name": "US - ITAR",
        "embargoed_country_name": _EMBARGOED[iso_code],
        "embargoed_country_iso_code": iso_code,
        "issuing_country": "US",
        "annotations": {
            "reference": {"paragraph": "d1", "regulation": "CFR 126.1"},
            "restriction_name": "ITAR",
        },
    }
    return {"count": 1, "sanctions": [sanction]}


def _breach(value: str) -> dict[str, Any]:
    n = _digest(value.lower())
    found = n % 2 == 0
    return {"found_in_breach": found, "breach_count": 1 + n % 7 if found else 0}


#: Passwords the fake knows as breached; their SHA-256 hashes appear in raw_data for their prefix.
BREACHED_PASSWORDS = ("password", "123456", "qwerty", "letmein")


def _password_prefix(prefix: str, *, raw: bool) -> dict[str, Any]:
    prefix = prefix.lower()
    known = [hashlib.sha256(p.encode()).hexdigest() for p in BREACHED_PASSWORDS]
    filler = [prefix + hashlib.sha256(f"{prefix}-{i}".encode()).hexdigest()[len(prefix) :] for i in range(3)]
    hashes = [h for h in known if h.startswith(prefix)] + filler
    result: dict[str, Any] = {"data": {"found_in_breach": True, "breach_count": len(hashes)}}
    if raw:
        # Keys are the breached full hashes; the value (a count here) has an UNCONFIRMED layout (api.md 9).
        result["raw_data"] = {h: 1 + _digest(h) % 50 for h in hashes}
    return result


# -- AI Guard /v1/guard default (pangea-api.md 5.1) --------------------------------------------------

_ENTITY_DETECTORS = (
    "confidential_and_pii_entity",
    "secret_and_key_entity",
    "custom_entity",
    "malicious_entity",
)


def _strings(value: Any) -> Iterator[str]:
    """Every string in the input (message contents, tool names and descriptions, ...), as sent."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)


def _replace_strings(value: Any, old: str, new: str) -> Any:
    if isinstance(value, str):
        return value.replace(old, new)
    if isinstance(value, list):
        return [_replace_strings(v, old, new) for v in value]
    if isinstance(value, dict):
        return {k: _replace_strings(v, old, new) for k, v in value.items()}
    return value


def _guard(body: dict[str, Any], rules: list[GuardRule]) -> dict[str, Any]:
    """Not blocked, not transformed, `output` mirroring `input`; unless a scripted rule matches its input."""
    detectors: dict[str, Any] = {
        "malicious_prompt": {"detected": False, "data": {"action": "", "analyzer_responses": []}},
        "confidential_and_pii_entity": {"detected": False, "data": {"entities": []}},
        "secret_and_key_entity": {"detected": False, "data": {"entities": []}},
    }
    output = json.loads(json.dumps(body["input"]))
    texts = list(_strings(body["input"]))
    blocked = transformed = False
    for rule in rules:
        if rule.event_type not in (None, body.get("event_type", "input")):
            continue
        if not any(rule.contains in text for text in texts):
            continue
        action = "blocked" if rule.action == "block" else "redacted:replaced"
        if rule.detector in _ENTITY_DETECTORS:
            entity: dict[str, Any] = {"type": rule.entity_type or "SECRET", "value": rule.contains}
            if rule.detector != "malicious_entity":
                entity["action"] = action
            found = detectors.setdefault(rule.detector, {"detected": True, "data": {"entities": []}})
            found["detected"] = True
            found["data"]["entities"].append(entity)
        else:
            detectors[rule.detector] = {
                "detected": True,
                "data": {
                    "action": action,
                    "analyzer_responses": [{"analyzer": "PA4002", "confidence": 0.98}],
                },
            }
        if rule.action == "block":
            blocked = True
        else:
            transformed = True
            output = _replace_strings(output, rule.contains, rule.replacement)
    return {
        "recipe": body.get("recipe", "pangea_prompt_guard"),
        "blocked": blocked,
        "transformed": transformed,
        "output": output,
        "detectors": detectors,
    }
