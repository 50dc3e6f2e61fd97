"""RDAP domain objects (as whoisit parsed them, and as sent) -> WhoisData: dates, registrant, registrar.

Registrant details that registries withhold (RFC 9537 redaction, or placeholder text) come back as None.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, Final

from pydantic import Field

from pangea_mcp.models import PangeaResult, StrList

# Values registries put in place of withheld contact data (RFC 9537 "replacementValue", or older text).
_WITHHELD = re.compile(r"redact|not disclosed|data protected|non-public", re.IGNORECASE)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# whoisit's names for the registration, last-changed and expiration events.
_DATES: Final = ("registration_date", "last_changed_date", "expiration_date")
#: A domain object as whoisit parsed it, and as the server sent it.
Record = tuple[dict[str, Any], dict[str, Any]]


class WhoisData(PangeaResult):
    """A domain's registration record from RDAP, in the field names of domain_intel's WhoisResult."""

    found: bool = Field(description="Whether the registry has the domain (false: RDAP answered 404)")
    domain_name: str | None = Field(default=None, description="The domain as the registry spells it")
    domain_availability: str | None = Field(
        default=None, description="UNAVAILABLE when registered; null when the registry has no record"
    )
    created_date: str | None = Field(default=None, description="Registration (ISO 8601, UTC)")
    updated_date: str | None = Field(default=None, description="Last change (ISO 8601, UTC)")
    expires_date: str | None = Field(default=None, description="Expiration (ISO 8601, UTC)")
    host_names: StrList = Field(default_factory=list, description="Name servers")
    ips: StrList = Field(
        default_factory=list, description="Always empty: RDAP publishes no addresses for the domain itself"
    )
    registrar_name: str | None = None
    contact_email: str | None = Field(default=None, description="Registrant email, when not redacted")
    estimated_domain_age: int | None = Field(default=None, description="Days since registration")
    registrant_organization: str | None = Field(default=None, description="When not redacted")
    registrant_country: str | None = Field(
        default=None, description="Country code (or name) of the registrant, when not redacted"
    )
    status: StrList = Field(default_factory=list, description="EPP status, e.g. client transfer prohibited")
    rdap_url: str = Field(description="The registry RDAP URL that was queried")
    registrar_rdap_url: str | None = Field(
        default=None, description="The registrar's RDAP URL that was also queried, if any"
    )
    note: str | None = Field(default=None, description="Missing data or partial failures, when any")


def _when(value: object) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _iso(value: datetime | None) -> str | None:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


def _disclosed(value: object) -> str | None:
    """A contact value, or None when it is empty or a redaction placeholder."""
    if not isinstance(value, str):
        return None
    text = " ".join(value.split())
    return text if text and not _WITHHELD.search(text) else None


def _entity(parsed: dict[str, Any], role: str) -> dict[str, Any]:
    found = parsed.get("entities", {}).get(role) or [{}]
    return found[0] if isinstance(found[0], dict) else {}


def _vcard_country_code(raw: dict[str, Any], role: str) -> str | None:
    """The `cc` parameter (RFC 8605) of a role's vCard address: gTLD registrars send the code there."""
    for entity in raw.get("entities") or []:
        if not isinstance(entity, dict):
            continue
        if role in (entity.get("roles") or []):
            card = entity.get("vcardArray")
            fields = (
                card[1] if isinstance(card, list) and len(card) == 2 and isinstance(card[1], list) else []
            )
            for item in fields:
                if (
                    isinstance(item, list)
                    and len(item) == 4
                    and item[0] == "adr"
                    and isinstance(item[1], dict)
                ):
                    code = _disclosed(item[1].get("cc"))
                    if code:
                        return code.upper()
        nested = _vcard_country_code({"entities": entity.get("entities")}, role)
        if nested:
            return nested
    return None


def _registrant(parsed: dict[str, Any], raw: dict[str, Any]) -> tuple[str | None, str | None, str | None]:
    """(organisation, country, email) of the registrant, each None when absent or redacted."""
    person = _entity(parsed, "registrant")
    organisation = _disclosed(person.get("organisation"))
    if organisation is None and person.get("kind") == "org":
        organisation = _disclosed(person.get("name"))
    address = person.get("address")
    if not isinstance(address, dict):
        address = {}
    country = _vcard_country_code(raw, "registrant") or _disclosed(address.get("country"))
    email = _disclosed(person.get("email"))
    return organisation, country, email if email and _EMAIL.match(email) else None


def whois_data(
    name: str,
    url: str,
    registry: Record,
    related_url: str | None,
    registrar: Record | None,
    notes: list[str],
) -> WhoisData:
    """The record from the registry's answer, completed by the registrar's (thin registries), if any."""
    parsed, raw = registry
    dates = [_when(parsed.get(key)) for key in _DATES]
    registrar_name = _disclosed(_entity(parsed, "registrar").get("name"))
    organisation, country, email = _registrant(parsed, raw)
    if registrar is not None:
        # The registry stays authoritative (dates, status, name servers); the registrar's record fills
        # in what a thin registry does not hold, above all the registrant.
        more_parsed, more_raw = registrar
        more = _registrant(more_parsed, more_raw)
        organisation, country, email = organisation or more[0], country or more[1], email or more[2]
        registrar_name = registrar_name or _disclosed(_entity(more_parsed, "registrar").get("name"))
        dates = [mine or _when(more_parsed.get(key)) for mine, key in zip(dates, _DATES, strict=True)]
    created, updated, expires = dates
    if not (organisation or country or email):
        notes.append("Registrant details are redacted or not published.")
    age = (datetime.now(UTC) - created).days if created else None
    return WhoisData(
        found=True,
        domain_name=str(parsed.get("name") or name).rstrip(".").lower(),
        domain_availability="UNAVAILABLE",
        created_date=_iso(created),
        updated_date=_iso(updated),
        expires_date=_iso(expires),
        host_names=[str(ns).rstrip(".").lower() for ns in parsed.get("nameservers") or []],
        registrar_name=registrar_name,
        contact_email=email,
        estimated_domain_age=age if age is not None and age >= 0 else None,
        registrant_organization=organisation,
        registrant_country=country,
        status=[str(s) for s in parsed.get("status") or []],
        rdap_url=url,
        registrar_rdap_url=related_url,
        note=" ".join(notes) or None,
    )


def not_found(name: str, url: str, host: str) -> WhoisData:
    """The answer when the registry's server says 404."""
    note = (
        f"The registry's RDAP server {host} has no record of {name} (HTTP 404). Most likely it is not "
        "registered; reserved and blocked names also answer 404, so this does not prove it can be "
        "registered."
    )
    if name.count(".") >= 2:
        note += (
            " RDAP knows registered domains only: for a host name such as www.example.com, look up "
            "example.com."
        )
    return WhoisData(found=False, domain_name=name, rdap_url=url, note=note)
