"""User Intel: breached-credential checks for users and passwords."""

from __future__ import annotations

import hashlib
import logging
from typing import Annotated, Any, Literal

from fastmcp import Context, FastMCP
from fastmcp.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import AfterValidator, Field, SecretStr

from pangea_mcp.backends import Backends
from pangea_mcp.cache import CACHED, REQUEST_ID, Fetch, cache_scope
from pangea_mcp.client import PangeaClient
from pangea_mcp.errors import invalid_arguments, tool_errors
from pangea_mcp.models import Domain, Email, IpAddress, PangeaRequest, PangeaResult, PhoneNumber

SERVICE = "user-intel"
_LOOKUP = ToolAnnotations(
    read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=True
)

Identifier = Literal["email", "username", "phone_number", "ip", "domain"]
#: Tool argument -> the plural field of /v2/user/breached.
_FIELDS: dict[Identifier, str] = {
    "email": "emails",
    "username": "usernames",
    "phone_number": "phone_numbers",
    "ip": "ips",
    "domain": "domains",
}
#: The provider returns at most this many hashes per prefix (pangea-api.md 5.10).
_MAX_RAW_HASHES = 1000
_PREFIX_LENGTH = 5


def _username(value: str) -> str:
    text = value.strip()
    if not text or not text.isprintable():
        raise ValueError("a user name must be non-empty printable text")
    return text


Username = Annotated[
    str,
    Field(min_length=1, max_length=256, description="A user name or login, e.g. shortpatrick"),
    AfterValidator(_username),
]


class _UserBreached(PangeaRequest):
    # /v2/user/breached with one single-item list: v1 has no `domain` field, and one endpoint keeps one
    # code path. One item answers 200 (no polling).
    emails: list[str] | None = None
    usernames: list[str] | None = None
    phone_numbers: list[str] | None = None
    ips: list[str] | None = None
    domains: list[str] | None = None


class _PasswordBreached(PangeaRequest):
    hash_type: Literal["sha256"]
    hash_prefix: str
    # raw=true makes Pangea list every breached full hash sharing the prefix; the decision is made here.
    raw: bool


class _Breach(PangeaResult):
    found_in_breach: bool | None = None
    breach_count: int | None = None


class _UserResult(PangeaResult):
    data: dict[str, _Breach] = Field(default_factory=dict)


class _PasswordResult(PangeaResult):
    raw_data: dict[str, Any] | None = None


class BreachReport(PangeaResult):
    identifier: Identifier = Field(description="Which kind of identifier was checked")
    value: str = Field(description="The value as checked (normalised: lower-case domain, digits-only phone)")
    found_in_breach: bool | None = Field(default=None, description="True when it appears in a known breach")
    breach_count: int | None = Field(default=None, description="In how many breaches it appears")
    note: str | None = Field(default=None, description="Why data is missing, when it is")
    cached: bool = Field(default=False, description=CACHED)
    request_id: str | None = Field(default=None, description=REQUEST_ID)


class PasswordReport(PangeaResult):
    status: Literal["breached", "not_breached", "inconclusive"] = Field(
        description="breached: known to attackers; not_breached: not in the breach data; inconclusive: "
        "too many breached passwords share its hash prefix to tell"
    )
    breach_count: int | None = Field(
        default=None, description="How often it was seen in breaches, when breached and Pangea says"
    )
    request_id: str | None = Field(default=None, description="Pangea request id")


def _lookup(data: dict[str, _Breach], value: str) -> _Breach | None:
    if value in data:
        return data[value]
    folded = {key.casefold(): item for key, item in data.items()}
    return folded.get(value.casefold(), next(iter(data.values())) if len(data) == 1 else None)


def _count(entry: object) -> int | None:
    # The per-hash layout of raw_data is UNCONFIRMED (pangea-api.md section 9): a number is taken as a
    # count and a list as one record per breach; anything else leaves the count unknown.
    if isinstance(entry, int) and not isinstance(entry, bool):
        return entry
    if isinstance(entry, list):
        return len(entry)
    return None


def _breach_fetch(pangea: PangeaClient, ctx: Context, identifier: Identifier) -> Fetch[_Breach]:
    async def fetch(values: list[str]) -> tuple[dict[str, _Breach], str | None]:
        (value,) = values  # one identifier per call: one item answers 200, no polling
        body = _UserBreached.model_validate({_FIELDS[identifier]: [value]})
        response = await pangea.call(
            SERVICE, "v2/user/breached", body, _UserResult, progress=ctx.report_progress
        )
        found = _lookup(response.result.data, value)
        return ({value: found} if found is not None else {}), response.request_id

    return fetch


def register(mcp: FastMCP, backends: Backends) -> None:
    pangea = backends.pangea

    @mcp.tool(name="check_breached", title="Breached-user check", annotations=_LOOKUP, tags={SERVICE})
    async def check_breached(
        ctx: Context,
        email: Email | None = None,
        username: Username | None = None,
        phone_number: PhoneNumber | None = None,
        ip: IpAddress | None = None,
        domain: Annotated[
            Domain | None, Field(description="A domain, e.g. example.com: are accounts under it breached?")
        ] = None,
    ) -> BreachReport:
        """Return whether a user identifier appears in known data breaches (found_in_breach, breach_count).

        Pass exactly one of email, username, phone_number, ip or domain. Use it to decide whether an
        account's credentials may be exposed (then suggest a password reset and MFA). found_in_breach
        false means the provider has no breach record for it, not that it was never exposed. Recent
        answers come from this server's cache (`cached` true).
        """
        candidates: dict[Identifier, str | None] = {
            "email": email,
            "username": username,
            "phone_number": phone_number,
            "ip": ip,
            "domain": domain,
        }
        given = {name: value for name, value in candidates.items() if value is not None}
        if len(given) != 1:
            names = ", ".join(_FIELDS)
            problem = (
                f"give exactly one of {names}; got none"
                if not given
                else f"give exactly one of {names}; got {' and '.join(given)}"
            )
            raise invalid_arguments("check_breached", {(): problem})
        identifier, value = next(iter(given.items()))
        scope = cache_scope(backends.settings, SERVICE, "v2/user/breached", identifier=identifier)
        with tool_errors():
            answer = await backends.cache.lookup(scope, [value], _breach_fetch(pangea, ctx, identifier))
        found = answer.found.get(value)
        if found is None:
            return BreachReport(
                identifier=identifier,
                value=value,
                note="Pangea returned no data for this value",
                request_id=answer.request_id,
            )
        return BreachReport(
            identifier=identifier,
            value=value,
            cached=value in answer.cached,
            request_id=answer.request_id,
            **found.model_dump(),
        )

    @mcp.tool(
        name="check_password_breached", title="Breached-password check", annotations=_LOOKUP, tags={SERVICE}
    )
    async def check_password_breached(
        password: Annotated[
            SecretStr,
            Field(
                min_length=1,
                max_length=1024,
                description="The password to check. It is hashed here and never sent, logged or returned.",
            ),
        ],
        ctx: Context,
    ) -> PasswordReport:
        """Return whether a password is known from data breaches: breached, not_breached or inconclusive.

        Use it when the user asks whether a password is safe to use or must be changed. The password stays
        on this server: only the first 5 hex characters of its SHA-256 hash go to Pangea (k-anonymity), and
        the match against the breached hashes Pangea returns is made locally. breached means attackers
        have it in their lists: it must not be used. not_breached means it is not in the breach data (it
        can still be weak). inconclusive means too many breached passwords share its hash prefix to tell.
        """
        digest = hashlib.sha256(password.get_secret_value().encode("utf-8")).hexdigest()
        body = _PasswordBreached(hash_type="sha256", hash_prefix=digest[:_PREFIX_LENGTH], raw=True)
        with tool_errors():
            response = await pangea.call(
                SERVICE, "v1/password/breached", body, _PasswordResult, progress=ctx.report_progress
            )
        raw = response.result.raw_data
        if raw is None:
            raise ToolError(
                "user-intel answered without raw_data (the breached hashes for the prefix), so the password "
                "cannot be checked. This is a Pangea-side problem; try again later.\n"
                f"request_id: {response.request_id}",
                log_level=logging.WARNING,
            )
        # Letter case of the keys is UNCONFIRMED (pangea-api.md section 9): compare case-insensitively.
        matches = [entry for key, entry in raw.items() if key.lower() == digest]
        if matches:
            return PasswordReport(
                status="breached", breach_count=_count(matches[0]), request_id=response.request_id
            )
        status: Literal["not_breached", "inconclusive"] = (
            "inconclusive" if len(raw) >= _MAX_RAW_HASHES else "not_breached"
        )
        return PasswordReport(status=status, request_id=response.request_id)
