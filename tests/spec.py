"""Pangea's official OpenAPI specs (../shared/pangea-openapi) as request and response validators.

For services Pangea publishes no spec for (Domain, URL, File and User Intel, Embargo), the contract is
the one written down in ../shared/pangea-api.md, transcribed below as JSON Schema.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SHARED_DIR = Path(
    os.environ.get("PANGEA_MCP_SHARED_DIR", Path(__file__).resolve().parents[1] / ".." / "shared")
)
SPEC_DIR = SHARED_DIR / "pangea-openapi"

SPEC_FILES = {
    "ai-guard": "ai-guard.openapi.json",
    "audit": "audit.openapi.json",
    "ip-intel": "ip-intel.openapi.json",
    "prompt-guard": "prompt-guard.openapi.json",
    "redact": "redact.openapi.json",
    "vault": "vault.openapi.json",
}

_INTEL_OPTIONS = {
    "verbose": {"type": "boolean"},
    "raw": {"type": "boolean"},
    "provider": {"type": "string"},
}
_RESULT_MAP = {
    "type": "object",
    "additionalProperties": {
        "type": "object",
        "properties": {
            "category": {"type": "array", "items": {"type": "string"}},
            "score": {"type": "integer"},
            "verdict": {"enum": ["malicious", "suspicious", "unknown", "benign"]},
        },
    },
}
_WHOIS_DATA = {
    "type": "object",
    "required": ["domain_name", "domain_availability"],
    "properties": {
        "domain_name": {"type": "string"},
        "domain_availability": {"type": "string"},
        "created_date": {"type": "string"},
        "updated_date": {"type": "string"},
        "expires_date": {"type": "string"},
        # Optional in the SDKs (Python Optional[List[str]], Node `host_names?`): null is possible.
        "host_names": {"type": ["array", "null"], "items": {"type": "string"}},
        "ips": {"type": ["array", "null"], "items": {"type": "string"}},
        "registrar_name": {"type": "string"},
        "contact_email": {"type": "string"},
        "estimated_domain_age": {"type": "integer"},
        "registrant_organization": {"type": "string"},
        "registrant_country": {"type": "string"},
    },
}


def _envelope(result: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["request_id", "request_time", "response_time", "status", "summary", "result"],
        "properties": {"result": result},
    }


@cache
def _ip_intel_components() -> dict[str, Any]:
    schemas: dict[str, Any] = json.loads((SPEC_DIR / SPEC_FILES["ip-intel"]).read_text())["components"][
        "schemas"
    ]
    return schemas


def _shared(name: str) -> dict[str, Any]:
    """A User Intel parameter schema from ip-intel.openapi.json's components, its $refs inlined."""

    def inline(node: Any) -> Any:
        if isinstance(node, list):
            return [inline(item) for item in node]
        if not isinstance(node, dict):
            return node
        node = {key: inline(value) for key, value in node.items()}
        ref = node.pop("$ref", None)
        if isinstance(ref, str):
            node["allOf"] = [inline(_ip_intel_components()[ref.removeprefix("#/components/schemas/")])]
        return node

    schema: dict[str, Any] = inline(_ip_intel_components()[name])
    return schema


def _closed(required: list[str], properties: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "required": required,
        "additionalProperties": False,
        "properties": properties,
        **extra,
    }


def _list_of(item: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "minItems": 1, "maxItems": 100, "items": item}


_REPUTATION = _RESULT_MAP["additionalProperties"]
_NON_EMPTY = {"type": "string", "minLength": 1}


def _reputation_api(
    single: str, plural: str, item: dict[str, Any], options: dict[str, Any], **common: Any
) -> dict[tuple[str, str], tuple[dict[str, Any], dict[str, Any]]]:
    """v1 (one indicator) and v2 (a list) reputation endpoints of URL and File Intel (pangea-api.md 5.7-5.8)."""
    required = list(common)
    return {
        ("post", "/v1/reputation"): (
            _closed([single, *required], {single: item, **common, **options}),
            _envelope({"type": "object", "required": ["data"], "properties": {"data": _REPUTATION}}),
        ),
        ("post", "/v2/reputation"): (
            _closed([plural, *required], {plural: _list_of(item), **common, **options}),
            _envelope({"type": "object", "required": ["data"], "properties": {"data": _RESULT_MAP}}),
        ),
    }


_SANCTION = {
    "type": "object",
    "required": [
        "list_name",
        "embargoed_country_name",
        "embargoed_country_iso_code",
        "issuing_country",
        "annotations",
    ],
    "properties": {
        "list_name": {"type": "string"},
        "embargoed_country_name": {"type": "string"},
        "embargoed_country_iso_code": {"type": "string"},
        "issuing_country": {"type": "string"},
        "annotations": {"type": "object"},
    },
}
# `result: null` is a documented Success answer (SDK unit-test mock for 127.0.0.1).
_EMBARGO_RESULT = _envelope(
    {
        "type": ["object", "null"],
        "required": ["count", "sanctions"],
        "properties": {"count": {"type": "integer"}, "sanctions": {"type": "array", "items": _SANCTION}},
    }
)

_BREACH = {
    "type": "object",
    "required": ["found_in_breach", "breach_count"],
    "properties": {"found_in_breach": {"type": "boolean"}, "breach_count": {"type": "integer"}},
}
_USER_OPTIONS = {name: _shared(name) for name in ("verbose", "raw", "provider")}
_USER_FILTERS = {name: _shared(name) for name in ("start", "end", "severity")}
_PASSWORD_HASH_TYPE = {"type": "string", "enum": ["sha256", "sha1", "sha512", "ntlm"]}


def _breach_result(data: dict[str, Any]) -> dict[str, Any]:
    return _envelope(
        {
            "type": "object",
            "required": ["data"],
            "properties": {"data": data, "parameters": {"type": "object"}, "raw_data": {"type": "object"}},
        }
    )


#: pangea-api.md section 5.6 (Domain Intel has no published OpenAPI document).
HAND_WRITTEN: dict[str, dict[tuple[str, str], tuple[dict[str, Any], dict[str, Any]]]] = {
    "domain-intel": {
        ("post", "/v1/reputation"): (
            {
                "type": "object",
                "required": ["domain"],
                "additionalProperties": False,
                "properties": {"domain": {"type": "string", "minLength": 1}, **_INTEL_OPTIONS},
            },
            _envelope(
                {
                    "type": "object",
                    "required": ["data"],
                    "properties": {"data": _RESULT_MAP["additionalProperties"]},
                }
            ),
        ),
        ("post", "/v2/reputation"): (
            {
                "type": "object",
                "required": ["domains"],
                "additionalProperties": False,
                "properties": {
                    "domains": {
                        "type": "array",
                        "minItems": 1,
                        "maxItems": 100,
                        "items": {"type": "string", "minLength": 1},
                    },
                    **_INTEL_OPTIONS,
                },
            },
            _envelope({"type": "object", "required": ["data"], "properties": {"data": _RESULT_MAP}}),
        ),
        ("post", "/v1/whois"): (
            {
                "type": "object",
                "required": ["domain"],
                "additionalProperties": False,
                "properties": {"domain": {"type": "string", "minLength": 1}, **_INTEL_OPTIONS},
            },
            _envelope({"type": "object", "required": ["data"], "properties": {"data": _WHOIS_DATA}}),
        ),
    },
    # pangea-api.md 5.7: provider `crowdstrike` is the only one.
    "url-intel": _reputation_api(
        "url",
        "urls",
        _NON_EMPTY,
        {**_INTEL_OPTIONS, "provider": {"type": "string", "enum": ["crowdstrike"]}},
    ),
    # pangea-api.md 5.8: hash_type is required on both versions; `sha` is SHA-1.
    "file-intel": _reputation_api(
        "hash",
        "hashes",
        _NON_EMPTY,
        {**_INTEL_OPTIONS, "provider": {"type": "string", "enum": ["reversinglabs", "crowdstrike"]}},
        hash_type={"type": "string", "enum": ["sha256", "sha", "md5"]},
    ),
    # pangea-api.md 5.9.
    "embargo": {
        ("post", "/v1/ip/check"): (
            _closed(["ip"], {"ip": {"type": "string", "format": "ip-address"}}),
            _EMBARGO_RESULT,
        ),
        ("post", "/v1/iso/check"): (
            _closed(["iso_code"], {"iso_code": {"type": "string", "minLength": 2, "maxLength": 2}}),
            _EMBARGO_RESULT,
        ),
    },
    # pangea-api.md 5.10; parameter schemas from ip-intel.openapi.json's components.
    "user-intel": {
        ("post", "/v1/user/breached"): (
            _closed(
                [],
                {
                    **{name: _shared(name) for name in ("email", "username", "ip", "phone_number", "cursor")},
                    **_USER_FILTERS,
                    **_USER_OPTIONS,
                },
                oneOf=[{"required": [name]} for name in ("email", "username", "ip", "phone_number")],
            ),
            _breach_result(_BREACH),
        ),
        ("post", "/v2/user/breached"): (
            _closed(
                [],
                {
                    **{
                        name: _shared(name)
                        for name in ("emails", "usernames", "ips", "phone_numbers", "domains")
                    },
                    **_USER_FILTERS,
                    **_USER_OPTIONS,
                },
                # Pangea answers MustProvideOne without any of the lists.
                anyOf=[
                    {"required": [name]}
                    for name in ("emails", "usernames", "ips", "phone_numbers", "domains")
                ],
            ),
            _breach_result({"type": "object", "additionalProperties": _BREACH}),
        ),
        ("post", "/v1/password/breached"): (
            _closed(
                ["hash_type", "hash_prefix"],
                {"hash_type": _PASSWORD_HASH_TYPE, "hash_prefix": _NON_EMPTY, **_USER_OPTIONS},
            ),
            _breach_result(_BREACH),
        ),
        ("post", "/v2/password/breached"): (
            _closed(
                ["hash_type", "hash_prefixes"],
                {
                    "hash_type": _PASSWORD_HASH_TYPE,
                    "hash_prefixes": {"type": "array", "minItems": 1, "items": _NON_EMPTY},
                    **_USER_OPTIONS,
                },
            ),
            _breach_result({"type": "object", "additionalProperties": _BREACH}),
        ),
        ("post", "/v1/breach"): (
            _closed(
                [],
                {
                    "breach_id": {"type": "string"},
                    "verbose": _USER_OPTIONS["verbose"],
                    "provider": _USER_OPTIONS["provider"],
                    "cursor": _shared("cursor"),
                    **_USER_FILTERS,
                },
            ),
            _envelope(
                {
                    "type": "object",
                    "required": ["found"],
                    "properties": {
                        "found": {"type": "boolean"},
                        "data": {"type": "object"},
                        "parameters": {"type": "object"},
                    },
                }
            ),
        ),
    },
}

_FORMATS = FormatChecker()


@_FORMATS.checks("ip-address", raises=ValueError)
def _is_ip(value: object) -> bool:
    if isinstance(value, str):
        ipaddress.ip_address(value)
    return True


@cache
def _load(service: str) -> tuple[dict[str, Any], Registry] | None:
    name = SPEC_FILES.get(service)
    if name is None:
        return None
    spec = json.loads((SPEC_DIR / name).read_text())
    registry: Registry = Registry().with_resource(
        f"urn:pangea:{service}", Resource.from_contents(spec, default_specification=DRAFT202012)
    )
    return spec, registry


def _pointer(*parts: str) -> str:
    return "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


def _match_path(spec: dict[str, Any], path: str) -> str | None:
    if path in spec["paths"]:
        return path
    for template in spec["paths"]:
        pattern = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$"
        if re.match(pattern, path):
            return template
    return None


def known(service: str) -> bool:
    return service in SPEC_FILES or service in HAND_WRITTEN


def has_operation(service: str, method: str, path: str) -> bool:
    if method == "get" and re.fullmatch(r"/request/[^/]+", path):
        return True  # every service answers result polling (pangea-api.md 3.3)
    loaded = _load(service)
    if loaded is not None:
        template = _match_path(loaded[0], path)
        return template is not None and method in loaded[0]["paths"][template]
    return (method, path) in HAND_WRITTEN.get(service, {})


@cache
def _validator(service: str, method: str, path: str, where: str) -> Draft202012Validator | None:
    """where: 'request' or the response code as text ('200', '202', '400')."""
    loaded = _load(service)
    if loaded is None:
        pair = HAND_WRITTEN.get(service, {}).get((method, path))
        if pair is None:
            return None
        schema = pair[0] if where == "request" else pair[1] if where in ("200", "202") else None
        return Draft202012Validator(schema, format_checker=_FORMATS) if schema is not None else None
    spec, registry = loaded
    template = _match_path(spec, path)
    if template is None or method not in spec["paths"][template]:
        return None
    operation = spec["paths"][template][method]
    if where == "request":
        if "requestBody" not in operation:
            return None
        parts = ("paths", template, method, "requestBody", "content", "application/json", "schema")
    else:
        if where not in operation.get("responses", {}):
            return None
        content = operation["responses"][where].get("content", {})
        if "application/json" not in content:
            return None
        parts = ("paths", template, method, "responses", where, "content", "application/json", "schema")
    ref = {"$ref": f"urn:pangea:{service}#/" + _pointer(*parts)}
    return Draft202012Validator(ref, registry=registry, format_checker=_FORMATS)


def request_errors(service: str, method: str, path: str, body: Any) -> list[dict[str, str]]:
    """Pangea-style error items (code, detail, source) for a request body that breaks the spec."""
    validator = _validator(service, method, path, "request")
    if validator is None:
        return []
    errors = []
    for err in sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path)):
        source = "/" + "/".join(str(p) for p in err.absolute_path)
        errors.append({"code": _code(err.validator), "detail": err.message, "source": source})
    return errors


def response_errors(service: str, method: str, path: str, http: int, body: Any) -> list[str]:
    validator = _validator(service, method, path, str(http))
    if validator is None:
        return []
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(body)
        # The specs' envelope enumerates only "Success"; Pangea sends every other status too.
        if not (list(e.absolute_path) == ["status"] and e.validator == "enum")
    ]


def _code(keyword: object) -> str:
    return {
        "required": "FieldRequired",
        "additionalProperties": "UnexpectedProperty",
        "minItems": "BelowMinItems",
        "maxItems": "AboveMaxItems",
        "maxLength": "AboveMaxLength",
        "minLength": "BelowMinLength",
        "pattern": "DoesNotMatchPattern",
        "enum": "NotEnumMember",
        "format": "BadFormat",
        "type": "InvalidType",
    }.get(str(keyword), "InvalidValue")
