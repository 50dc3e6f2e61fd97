"""Redact tool arguments: the validators and shared parameter types of redact, redact_structured and
unredact. Messages never echo fpe_context (it reverses the encryption)."""

from __future__ import annotations

import json
import re
from typing import Annotated, Any

from pydantic import AfterValidator, Field

NAME_PATTERN = r"^[A-Za-z0-9_.-]{1,128}$"
MAX_FPE_CONTEXT = 64 * 1024
# Standard base64 with canonical padding (what Pangea sends as fpe_context).
_BASE64 = re.compile(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")

Json = dict[str, Any] | list[Any]


def not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("text is empty; pass the text to redact")
    return value


def _unique(values: list[str] | None) -> list[str] | None:
    if values is None:
        return None
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise ValueError(f"{value!r} is listed twice; list each name once")
        seen.add(value)
    return values


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def structured(value: object) -> object:
    """Accept a JSON object or array, or a string holding one (models often send JSON as text)."""
    if isinstance(value, str):
        try:
            value = json.loads(value, parse_constant=_reject_constant)
        except ValueError:
            raise ValueError("is a string that is not valid JSON; pass a JSON object or array") from None
    if not isinstance(value, dict | list):
        raise ValueError("must be a JSON object or array; use the redact tool for plain text")
    if not value:
        raise ValueError("is empty; there is nothing to redact")
    return value


def redacted_input(value: object) -> object:
    if isinstance(value, str) and not value.strip():
        raise ValueError("is empty; pass the redacted text or JSON that redact returned")
    if not isinstance(value, str | dict | list):
        raise ValueError("must be the redacted text (a string) or the redacted JSON object or array")
    if not value:
        raise ValueError("is empty; pass the redacted text or JSON that redact returned")
    return value


def json_path(value: str) -> str:
    """Basic JSONPath syntax: starts at the root `$`, brackets and quotes balanced, no dangling dot."""
    if not value.startswith("$"):
        raise ValueError(f"{value!r} is not a JSONPath: it must start with $, e.g. $.user.email or $..ssn")
    if len(value) > 1 and value[1] not in ".[":
        raise ValueError(f"{value!r} is not a JSONPath: $ must be followed by . or [")
    if value.endswith(".") or any(c in value for c in "\r\n\t"):
        raise ValueError(f"{value!r} is not a complete JSONPath")
    depth, quote = 0, ""
    for char in value:
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
            if depth < 0:
                break
    if depth or quote:
        raise ValueError(f"{value!r} is not a JSONPath: brackets or quotes are unbalanced")
    return value


def base64_context(value: str) -> str:
    # Never echo the value: it is what reverses the encryption.
    if not _BASE64.fullmatch(value):
        raise ValueError("is not valid base64; pass fpe_context exactly as redact returned it")
    return value


RuleNames = Annotated[
    list[Annotated[str, Field(pattern=NAME_PATTERN)]] | None,
    Field(
        min_length=1,
        max_length=100,
        json_schema_extra={"uniqueItems": True},
        description="Redact rule names to apply instead of the configuration's defaults, each once, "
        "e.g. EMAIL_ADDRESS, PHONE_NUMBER, US_SSN, CREDIT_CARD, PERSON, IP_ADDRESS. Omit to use the "
        "configuration (on the local backend: every local recogniser; PERSON and other NLP rules are "
        "Pangea-only).",
    ),
    AfterValidator(_unique),
]
RulesetNames = Annotated[
    list[Annotated[str, Field(pattern=NAME_PATTERN)]] | None,
    Field(
        min_length=1,
        max_length=100,
        json_schema_extra={"uniqueItems": True},
        description="Redact ruleset names to apply, each once, e.g. PII, SECRETS (the two the local "
        "backend knows). Omit to use the configuration.",
    ),
    AfterValidator(_unique),
]
ReturnResult = Annotated[
    bool,
    Field(description="false returns only the count of redactions, not the redacted content"),
]
Debug = Annotated[
    bool,
    Field(
        description="true adds a report of which rules matched where (types, positions, scores; never "
        "the matched text)"
    ),
]
